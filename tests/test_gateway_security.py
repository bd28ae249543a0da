"""Keys, tenants, limits and errors, through the official ``openai`` SDK and raw HTTP."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_support import UPSTREAM_KEY, Harness, dump, harness
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
