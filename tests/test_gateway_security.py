"""Keys, tenants, limits and errors, through the official ``openai`` SDK and raw HTTP."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import openai
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gateway_support import UPSTREAM_KEY, Harness, count, dump, harness
from srt.gateway.body import MAX_DEPTH
from srt.gateway.config import Config, ConfigError
from srt.gateway.records import Records


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(
        db_path,
        monkeypatch,
        open=False,
        requests_per_minute=1000,
        max_body_bytes=100_000,
        max_items=5,
    ) as h:
        yield h


def test_keys_are_stored_hashed_and_tenants_isolated(gw: Harness) -> None:
    records = Records(gw.rt.store)
    key_a, key_b = records.create_key("acme"), records.create_key("globex")
    raw = dump(gw.rt.path, "objects")
    assert key_a not in raw and key_b not in raw
    a, b = gw.client(key_a), gw.client(key_b)
    with pytest.raises(openai.AuthenticationError):
        gw.client("sk-wrong").responses.create(model="gpt-4o-mini", input="x")
    r = a.responses.create(model="gpt-4o-mini", input="acme's secret plan")
    conv = a.conversations.create(items=[{"role": "user", "content": "acme only"}])
    for call in (
        lambda: b.responses.retrieve(r.id),
        lambda: b.responses.input_items.list(r.id),
        lambda: b.responses.delete(r.id),
        lambda: b.conversations.retrieve(conv.id),
        lambda: b.conversations.items.list(conv.id),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    with pytest.raises(openai.BadRequestError):
        b.responses.create(model="gpt-4o-mini", input="x", previous_response_id=r.id)
    assert a.responses.retrieve(r.id).id == r.id
    usage = httpx.get(gw.url + "/usage", headers={"authorization": f"Bearer {key_a}"}).json()
    assert usage["tenant"] == "acme" and usage["requests"] == 1


def _post(gw: Harness, path: str, body: bytes, key: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    return httpx.post(gw.url + path, content=body, headers=headers)


def _is_openai_error(resp: httpx.Response) -> bool:
    data = resp.json()
    err = data.get("error")
    return (
        set(data) == {"error"}
        and set(err) == {"message", "type", "param", "code"}
        and isinstance(err["message"], str)
        and "Traceback" not in err["message"]
    )


def test_errors_are_openai_shaped(gw: Harness) -> None:
    key = Records(gw.rt.store).create_key("acme")
    cases = [
        (b"{not json", 400),
        (b'{"model": "gpt-4o-mini", "input": "", "text": {"": Infinity}}', 400),  # not JSON
        (b"[]", 400),
        (json.dumps({"model": "gpt-4o-mini", "input": "x", "bogus": 1}).encode(), 400),
        (json.dumps({"model": 5, "input": "x"}).encode(), 400),
        (json.dumps({"model": "gpt-4o-mini", "input": [{"role": "nobody"}]}).encode(), 400),
        (json.dumps({"model": "gpt-4o-mini", "input": ["x"] * 6}).encode(), 400),
        (json.dumps({"model": "gpt-4o-mini", "input": "x", "temperature": 9}).encode(), 400),
        (json.dumps({"model": "gpt-4o-mini", "input": "x" * 200_000}).encode(), 413),
        (
            json.dumps({"model": "gpt-4o-mini", "input": "x", "conversation": "conv_x"}).encode(),
            404,
        ),
    ]
    for body, status in cases:
        resp = _post(gw, "/responses", body, key)
        assert resp.status_code == status, (body[:60], resp.text)
        assert _is_openai_error(resp)
    huge = _post(gw, "/responses", b'{"model": "gpt-4o-mini", "input": "x", "top_p": 1e400}', key)
    assert huge.status_code == 400 and huge.json()["error"]["message"] == (
        "Invalid 'top_p': must be a finite number."
    )
    bad = _post(gw, "/responses", b"{}", "sk-nope")
    assert bad.status_code == 401 and _is_openai_error(bad)
    for path in ("/responses/resp_nope", "/conversations/conv_nope", "/nothing/here"):
        resp = httpx.get(gw.url + path, headers={"authorization": f"Bearer {key}"})
        assert resp.status_code == 404 and _is_openai_error(resp)


def test_rate_limit_per_key(db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with harness(db_path, monkeypatch, open=False, requests_per_minute=3) as h:
        key = Records(h.rt.store).create_key("acme")
        c = h.client(key)
        for _ in range(3):
            c.models.list()
        with pytest.raises(openai.RateLimitError) as e:
            c.models.list()
        assert e.value.response.headers.get("retry-after")


def test_upstream_credentials_never_leave(gw: Harness, caplog: pytest.LogCaptureFixture) -> None:
    key = Records(gw.rt.store).create_key("acme")
    c = gw.client(key)
    gw.srv.fault("*", "status", code=400, message=f"bad key {UPSTREAM_KEY} echoed")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(openai.BadRequestError) as e:
        c.responses.create(model="gpt-4o-mini", input="x")
    assert UPSTREAM_KEY not in e.value.response.text
    gw.srv.fault("*", "status", code=401)
    with pytest.raises(openai.APIStatusError) as e2:
        c.responses.create(model="gpt-4o-mini", input="x")
    assert e2.value.status_code == 502 and UPSTREAM_KEY not in e2.value.response.text
    assert UPSTREAM_KEY not in caplog.text
    ledger = dump(gw.rt.path, "calls")
    assert UPSTREAM_KEY not in ledger


def test_open_mode_only_on_loopback() -> None:
    with pytest.raises(ConfigError):
        Config(upstreams={}, routes=(), open=True, host="0.0.0.0")
    assert Config(upstreams={}, routes=()).host == "127.0.0.1"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=12,
)
_FIELDS = st.sampled_from(
    [
        "model",
        "input",
        "instructions",
        "previous_response_id",
        "conversation",
        "store",
        "tools",
        "tool_choice",
        "truncation",
        "max_output_tokens",
        "metadata",
        "temperature",
        "stream",
        "include",
        "text",
        "parallel_tool_calls",
        "background",
        "junk",
    ]
)
_ITEM = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool", "x"])},
    optional={"content": _JSON, "type": st.sampled_from(["message", "function_call", "x"])},
)
_BODIES = st.fixed_dictionaries(
    {"model": st.sampled_from(["gpt-4o-mini", "claude-sonnet-4-5", "nope", 3])},
    optional={"input": st.one_of(st.text(max_size=20), st.lists(_ITEM, max_size=3), _JSON)},
).flatmap(
    lambda base: st.dictionaries(_FIELDS, _JSON, max_size=3).map(lambda extra: {**extra, **base})
)


def test_random_bodies_get_a_response_or_an_openai_error(gw: Harness) -> None:
    key = Records(gw.rt.store).create_key("acme")
    seen: dict[int, int] = {}

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=_BODIES | _JSON)
    def check(body: object) -> None:
        raw = json.dumps(body).encode()
        resp = _post(gw, "/responses", raw, key)
        seen[resp.status_code] = seen.get(resp.status_code, 0) + 1
        assert resp.status_code < 500, resp.text
        if resp.status_code == 200:
            ctype = resp.headers["content-type"]
            if ctype.startswith("text/event-stream"):
                assert "response.completed" in resp.text or "response.failed" in resp.text
            else:
                assert resp.json()["object"] == "response"
        else:
            assert _is_openai_error(resp)

    check()
    assert seen.get(400, 0) > 0


@pytest.fixture
def roomy(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    """The gateway with room for a body nested 100,000 levels deep (500 kB)."""
    with harness(db_path, monkeypatch, open=False, max_body_bytes=1_000_000) as h:
        yield h


#: A string with one lone surrogate (Unicode category Cs) in it. Hypothesis's other
#: text has none, so no neighbour can pair with it; ``json.dumps`` spells it ``\udXXX``.
_LONE = st.tuples(st.text(max_size=6), st.characters(categories=["Cs"]), st.text(max_size=6)).map(
    "".join
)
_ROUTES = [
    "/responses",
    "/conversations",
    "/conversations/{cid}",
    "/conversations/{cid}/items",
    "/chat/completions",
]


def _where(key: str | int) -> str:
    """A path segment as the gateway names it (a key's lone surrogates as ``\\udXXX``)."""
    if isinstance(key, int):
        return f"[{key}]"
    return "." + key.encode("utf-8", "backslashreplace").decode("utf-8")


def _plant(data: st.DataObject, value: object, bad: str, path: str) -> tuple[object, str]:
    """``value`` with ``bad`` put at a drawn place in it (a string, or a key), and the
    path of that place."""
    if isinstance(value, dict) and value and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(value)))
        if data.draw(st.booleans()):
            inner, where = _plant(data, value[key], bad, path + _where(key))
            return {**value, key: inner}, where
        return {(bad if k == key else k): v for k, v in value.items()}, path + _where(bad)
    if isinstance(value, list) and value and data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(value) - 1))
        inner, where = _plant(data, value[i], bad, path + _where(i))
        return [*value[:i], inner, *value[i + 1 :]], where
    return bad, path


class _Unchanged:
    """What the store and the upstream hold, to compare after a refused request."""

    def __init__(self, gw: Harness) -> None:
        self.gw = gw
        self.before = self.now()

    def now(self) -> tuple[object, ...]:
        path = self.gw.rt.path
        sessions = [s.name for s in self.gw.rt.sessions()]
        tables = (count(path, t) for t in ("objects", "calls", "messages"))
        return (sessions, *tables, self.gw.srv.requests.total())

    def check(self) -> None:
        assert self.now() == self.before


def _refused(resp: httpx.Response, param: str | None, code: str) -> None:
    assert resp.status_code == 400, resp.text
    assert _is_openai_error(resp)
    err = resp.json()["error"]
    assert err["type"] == "invalid_request_error" and err["code"] == code
    assert err["param"] == param, err


def _strict(body: object) -> bytes:
    """``body`` as JSON; an example with an infinity (which JSON has not) is skipped."""
    try:
        return json.dumps(body, allow_nan=False).encode()
    except ValueError:
        assume(False)
        raise


def _conversation(gw: Harness, key: str) -> str:
    return str(gw.client(key).conversations.create(items=[{"role": "user", "content": "hi"}]).id)


def test_lone_surrogates_anywhere_are_refused_before_anything_is_written(gw: Harness) -> None:
    """A lone surrogate (JSON can spell one, UTF-8 cannot hold it) in any string or key
    of the body: a 400 naming where, on every POST route, and nothing stored or sent."""
    key = Records(gw.rt.store).create_key("acme")
    cid = _conversation(gw, key)
    store = _Unchanged(gw)
    assert store.before[-1] == 0

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        base=_BODIES,
        field=_FIELDS,
        bad=_LONE,
        route=st.sampled_from(_ROUTES),
        stream=st.booleans(),
        data=st.data(),
    )
    def check(
        base: dict[str, object],
        field: str,
        bad: str,
        route: str,
        stream: bool,
        data: st.DataObject,
    ) -> None:
        body = {**base, "stream": stream} if route == "/responses" else dict(base)
        if data.draw(st.booleans(), label="as the field's name"):
            body[bad] = body.pop(field, "x")
            where = _where(bad)[1:]
        else:
            body[field], where = _plant(data, body.get(field, data.draw(_JSON)), bad, field)
        resp = _post(gw, route.format(cid=cid), _strict(body), key)
        _refused(resp, where, "invalid_value")
        store.check()

    check()
    cases = {
        "instructions": {"instructions": "a\ud83d"},
        "metadata.k": {"metadata": {"k": "v\udc00"}},
        "metadata.\\ud800": {"metadata": {"\ud800": "v"}},
        "previous_response_id": {"previous_response_id": "resp_\ud800"},
        "conversation": {"conversation": "conv_\ud800"},
        "model": {"model": "gpt\udfff"},
        "input[0].content[0].text": {
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "\ud83d!"}]}]
        },
    }
    for where, fields in cases.items():
        for stream, background in ((False, False), (True, False), (True, True), (False, True)):
            body = {"model": "gpt-4o-mini", "input": "x", "stream": stream, **fields}
            if background:
                body["background"] = True
            resp = _post(gw, "/responses", json.dumps(body).encode(), key)
            _refused(resp, where, "invalid_value")
            store.check()


def _deep(depth: int, kind: str) -> str:
    """A JSON value nesting ``depth`` arrays or objects."""
    return "[" * depth + "]" * depth if kind == "array" else '{"a":' * depth + "1" + "}" * depth


def test_deeply_nested_bodies_are_refused_before_anything_is_written(roomy: Harness) -> None:
    """A body nesting arrays and objects more than ``MAX_DEPTH`` (64) levels deep, up to
    100,000 (far past the JSON parser's stack): a 400 naming the member, on every POST
    route, and nothing stored or sent. A tool's schema nesting the body 64 levels deep
    is taken (srt's own limit on a tool definition's nesting is not reached)."""
    gw = roomy
    key = Records(gw.rt.store).create_key("acme")
    cid = _conversation(gw, key)
    store = _Unchanged(gw)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        base=_BODIES,
        field=_FIELDS,
        depth=st.integers(MAX_DEPTH, 3000) | st.sampled_from([5000, 20_000, 100_000]),
        kind=st.sampled_from(["array", "object"]),
        route=st.sampled_from(_ROUTES),
    )
    def check(base: dict[str, object], field: str, depth: int, kind: str, route: str) -> None:
        rest = _strict({k: v for k, v in base.items() if k != field}).decode()
        raw = rest[:-1] + (", " if rest != "{}" else "") + f'"{field}": {_deep(depth, kind)}}}'
        resp = _post(gw, route.format(cid=cid), raw.encode(), key)
        _refused(resp, field, "nested_too_deeply")
        store.check()

    check()
    # the body's object is level 1: a tool's schema may nest it up to MAX_DEPTH levels
    for levels, status in ((MAX_DEPTH, 200), (MAX_DEPTH + 1, 400)):
        body = _nested_tool(levels)
        resp = _post(gw, "/responses", json.dumps(body).encode(), key)
        assert resp.status_code == status, resp.text
        if status == 400:
            _refused(resp, "tools", "nested_too_deeply")
        else:
            assert resp.json()["status"] == "completed"


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _nested_tool(levels: int) -> dict[str, object]:
    """A request whose function tool's JSON schema (arrays of arrays) makes the body
    ``levels`` deep."""
    schema: dict[str, object] = {"type": "string"}
    for _ in range(levels - 4):  # the body, its tools, the tool, and its schema: 4
        schema = {"type": "array", "items": schema}
    body = {
        "model": "gpt-4o-mini",
        "input": "x",
        "tools": [{"type": "function", "name": "f", "parameters": schema}],
    }
    assert _depth(body) == levels
    return body
