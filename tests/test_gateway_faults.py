"""A gateway worker killed mid-stream (a real process, SIGKILL); upstream oddities.

The client gets a clean error, the response is stored as ``failed`` with the text
that had arrived (checkpointed while streaming), and another conversation is untouched.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

import srt
import srt.gateway
import srt.providers.transport as transport_module
from gateway_support import UPSTREAM_KEY, Harness, config, free_port, harness, serving
from srt.gateway.records import Records
from srt.providers.http1 import Stop
from srt.providers.policy import RetryPolicy
from srt.testing import ProviderServer


def _config(tmp_path: Path, srv: ProviderServer, port: int, server: str) -> Path:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        f"[server]\nport = {port}\n{server}\n\n"
        f'[upstreams.up]\nkind = "openai"\napi_key_env = "SRT_GW_UP_KEY"\n'
        f'base_url = "{srv.url}/v1"\n\n[[routes]]\nmodel = "*"\nupstream = "up"\n'
    )
    return cfg


def _start(cfg: Path, db: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SRT_GW_UP_KEY": UPSTREAM_KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "srt", "--db", db, "serve", "--config", str(cfg)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
        assert proc.poll() is None, "the gateway exited"
    raise AssertionError("the gateway did not start")


def test_kill_a_worker_mid_stream(tmp_path: Path) -> None:
    port = free_port()
    db = str(tmp_path / "gw.db")
    with ProviderServer(api_key=UPSTREAM_KEY) as srv:
        cfg = _config(tmp_path, srv, port, "open = true")
        proc = _start(cfg, db, port)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
        try:
            other = client.conversations.create()
            client.responses.create(model="m", input="untouched", conversation=other.id)
            before = [i.id for i in client.conversations.items.list(other.id).data]
            srv.fault("*", "slow", interval=0.01)  # one byte every 10 ms: a long stream
            stream = client.responses.create(model="m", input="tell me a story", stream=True)
            seen, rid = [], None
            with pytest.raises((openai.APIConnectionError, httpx.TransportError)):
                t0 = time.monotonic()
                for event in stream:
                    if event.type == "response.created":
                        rid = event.response.id
                    if event.type == "response.output_text.delta":
                        seen.append(event.delta)
                    if len(seen) >= 3 and time.monotonic() - t0 > 1.5:
                        os.kill(proc.pid, signal.SIGKILL)
                        proc.wait(10)
            assert rid is not None and proc.returncode == -signal.SIGKILL
        finally:
            client.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        srv.clear()
        proc = _start(cfg, db, port)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
        try:
            stored = client.responses.retrieve(rid)  # failed, as OpenAI's unfinished ones
            assert (stored.status, stored.incomplete_details) == ("failed", None)
            assert stored.error is not None and stored.error.code == "server_error"
            partial = stored.output_text
            assert partial and "".join(seen).startswith(partial[: len("".join(seen)) // 2])
            assert [i.id for i in client.conversations.items.list(other.id).data] == before
            again = client.responses.create(model="m", input="still fine", conversation=other.id)
            assert again.status == "completed"
            assert len(client.conversations.items.list(other.id).data) == 4
        finally:
            client.close()
            proc.terminate()
            proc.wait(10)


def test_two_workers_share_one_database(tmp_path: Path) -> None:
    """``srt serve --workers 2``: turns of one conversation land on either worker."""
    port = free_port()
    db = str(tmp_path / "gw.db")
    with ProviderServer(api_key=UPSTREAM_KEY) as srv:
        cfg = _config(tmp_path, srv, port, "workers = 2")
        env = {**os.environ, "SRT_GW_UP_KEY": UPSTREAM_KEY}
        key = subprocess.run(
            [
                sys.executable,
                "-m",
                "srt",
                "--db",
                db,
                "serve",
                "--config",
                str(cfg),
                "--new-key",
                "acme",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        proc = _start(cfg, db, port)
        pids = set()
        try:
            with openai.OpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0
            ) as client:
                conv = client.conversations.create()
                for i in range(8):
                    # a new connection each time, so the kernel spreads them over the workers
                    with httpx.Client() as h:
                        r = h.post(
                            f"http://127.0.0.1:{port}/v1/responses",
                            json={"model": "m", "input": f"turn {i}", "conversation": conv.id},
                            headers={"authorization": f"Bearer {key}"},
                        )
                        assert r.status_code == 200, r.text
                items = client.conversations.items.list(conv.id, order="asc", limit=100).data
                assert [i.role for i in items] == ["user", "assistant"] * 8
                assert [i.content[0].text for i in items[::2]] == [f"turn {i}" for i in range(8)]
            children = subprocess.run(
                ["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True
            ).stdout.split()
            pids = {int(p) for p in children}
            assert len(pids) >= 2
        finally:
            proc.terminate()
            proc.wait(30)


def test_a_mounted_gateway_beats_without_a_lifespan(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starlette runs no lifespan of a mounted app: its first request starts the worker's
    heartbeat, which tells other workers an in-progress response of this one is alive."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    monkeypatch.setenv("SRT_GW_UP_KEY", UPSTREAM_KEY)
    with ProviderServer(api_key=UPSTREAM_KEY) as srv, srt.Runtime(db_path) as rt:
        inner = srt.gateway.app(config(srv, open=True), rt)
        outer = Starlette(routes=[Mount("/gw", app=inner)])
        with serving(outer) as url:
            assert rt.store.list_objects("gw.worker", socket.gethostname()) == []
            base = url.removesuffix("/v1") + "/gw/v1"
            with openai.OpenAI(base_url=base, api_key="k") as c:
                r = c.responses.create(model="gpt-4o-mini", input="hi")
            assert r.status == "completed"
            assert len(rt.store.list_objects("gw.worker", socket.gethostname())) == 1


def test_an_app_closes_the_runtime_it_opened(db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``srt.gateway.app(config)`` without a runtime opens its own (each worker of ``srt
    serve --workers N``) and closes it when its lifespan ends: the store then cuts the
    heap's preallocated last row to the pages its bytes use."""
    import dataclasses

    monkeypatch.setenv("SRT_GW_UP_KEY", UPSTREAM_KEY)
    with ProviderServer(api_key=UPSTREAM_KEY) as srv:
        app = srt.gateway.app(dataclasses.replace(config(srv, open=True), db=db_path))
        with serving(app) as url, openai.OpenAI(base_url=url, api_key="k") as c:
            prev = None
            for i in range(6):
                prev = c.responses.create(
                    model="gpt-4o-mini",
                    input=f"turn {i} " + "words " * 500,
                    previous_response_id=prev,
                ).id
    _assert_heap_tail_cut(db_path)


_MOUNTED = """
import dataclasses, sys, types
sys.path.insert(0, {tests!r})
import openai, srt, srt.gateway
from starlette.applications import Starlette
from starlette.routing import Mount
from gateway_support import config, serving

cfg = dataclasses.replace(config(types.SimpleNamespace(url={base!r}), open=True), db={db!r})
outer = Starlette(routes=[Mount("/gw", app=srt.gateway.app(cfg))])  # its lifespan only
with serving(outer) as url, openai.OpenAI(
    base_url=url.removesuffix("/v1") + "/gw/v1", api_key="k"
) as c:
    prev = None
    for i in range(6):
        prev = c.responses.create(
            model="gpt-4o-mini", input=f"turn {{i}} " + "words " * 500, previous_response_id=prev
        ).id
print("served")
"""


def test_a_mounted_app_closes_the_runtime_it_opened_at_exit(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mounted, an app that opened its own runtime gets no lifespan end (Starlette passes
    none to mounted apps), so it closes the runtime when the interpreter exits: the
    store cuts the heap's preallocated last row, as a lifespan's end would."""

    tests = str(Path(__file__).parent)
    with ProviderServer(api_key=UPSTREAM_KEY) as srv:
        script = _MOUNTED.format(tests=tests, base=srv.url, db=db_path)
        env = {**os.environ, "SRT_GW_UP_KEY": UPSTREAM_KEY}
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "served" and "Traceback" not in done.stderr
    _assert_heap_tail_cut(db_path)


def _assert_heap_tail_cut(db_path: str) -> None:
    """The store was closed after appending: the heap's last row holds only the pages its
    bytes use (the preallocated tail was cut)."""
    import apsw

    conn = apsw.Connection(db_path)
    try:
        page = conn.execute("PRAGMA page_size").get
        size, used = conn.execute(
            "SELECT length(data), instr(data, zeroblob(1)) - 1 FROM heap ORDER BY id DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    assert used > 0 and size - used < page  # only the last page's end is left unused


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


def _stored(h: Harness) -> dict[str, str]:
    """Every stored response's status, by id."""
    records = Records(h.rt.store)
    out = {}
    for row in h.rt.store.list_objects("gw.response", "default", limit=1000):
        found = records.get_response("default", row.key)
        assert found is not None
        out[row.key] = found[0]["response"]["status"]
    return out


def _ended(c: openai.OpenAI, rid: str) -> Any:
    """The background response ``rid`` once its worker has ended it (a bound on the wait,
    no time asserted: a response left in progress fails the test after it; four reads a
    second stay under the gateway's 600 requests a minute)."""
    deadline = time.monotonic() + 30
    while True:
        r = c.responses.retrieve(rid)
        if r.status not in ("in_progress", "queued") or time.monotonic() > deadline:
            return r
        time.sleep(0.25)


def _assert_openai_429(e: openai.APIStatusError) -> None:
    assert e.status_code == 429 and e.code == "upstream_rate_limited"
    err = e.response.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["type"] == "rate_limit_error"
    after = e.response.headers.get("retry-after")
    assert after is None or (after.isdigit() and 1 <= int(after) <= 3600), after


class _Waits:
    """The ``time`` module, its ``sleep`` recorded in ``waits`` instead of slept."""

    def __init__(self, waits: list[float]) -> None:
        self.sleep = waits.append

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def backoffs(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits of the upstream calls' retries, recorded instead of slept (a test of
    what the client gets spent seconds a call in backoff)."""
    waits: list[float] = []
    monkeypatch.setattr(Stop, "pause", lambda self, seconds: waits.append(seconds))
    monkeypatch.setattr(transport_module, "time", _Waits(waits))
    return waits


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "inf"},
        {"retry-after-ms": "1e400"},
        {"Retry-After": "nan"},
        {"Retry-After": "1e300"},
    ],
    ids=["retry-after-inf", "retry-after-ms-1e400", "retry-after-nan", "retry-after-1e300"],
)
def test_an_upstream_429_with_an_odd_retry_after_is_an_openai_429(
    gw: Harness, headers: dict[str, str], backoffs: list[float]
) -> None:
    """``Retry-After: inf`` (or ``retry-after-ms: 1e400``, NaN, 1e300) from the upstream:
    the client gets the OpenAI-shaped 429 (with no retry-after, or one of at most an
    hour), and no stored response is left in progress: plain, streamed and in the
    background. The upstream calls' retries back off without sleeping (their waits are
    recorded: 6 s of backoff a case before): each a finite wait of the policy's own,
    the odd header not honoured."""
    c = gw.client()
    gw.srv.fault("*", "status", count=None, code=429, headers=headers)  # every retry too
    with pytest.raises(openai.RateLimitError) as plain:
        c.responses.create(model="gpt-4o-mini", input="plain")
    _assert_openai_429(plain.value)
    with pytest.raises(openai.RateLimitError) as streamed:
        c.responses.create(model="gpt-4o-mini", input="streamed", stream=True)
    _assert_openai_429(streamed.value)
    assert _stored(gw) == {}  # nothing was answered: nothing kept
    bg = c.responses.create(model="gpt-4o-mini", input="in the background", background=True)
    final = _ended(c, bg.id)
    assert final.status == "failed"
    # a response's error takes the codes of the SDK's ResponseError (not the 429's own)
    assert final.error is not None and final.error.code == "rate_limit_exceeded"
    events = list(
        c.responses.create(model="gpt-4o-mini", input="bg stream", background=True, stream=True)
    )
    assert events[0].type == "response.created" and events[-1].type == "response.failed"
    rid = events[-1].response.id
    assert c.responses.retrieve(rid).status == "failed"
    assert _stored(gw) == {bg.id: "failed", rid: "failed"}
    # two retries of each of the four calls, none waiting what the header said: the
    # backoff (0.5 s, then 1 s, less jitter); "nan" is no wait at all, so the backoff
    # too, never an immediate retry
    least = 0.5 * (1.0 - RetryPolicy().jitter)
    assert len(backoffs) == 8 and all(least <= w <= 1.0 for w in backoffs), backoffs


class _Injected(RuntimeError):
    pass


def test_an_exception_in_the_finish_path_ends_the_response_failed(
    gw: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception where a turn renders its reply (``items_of``, in
    ``Gateway._finish``): a streamed or background response ends ``failed`` with an
    OpenAI-shaped error, the streamed client gets ``response.failed``; a plain request
    (its response committed with its reply) gets an OpenAI-shaped 500. No response stays
    in progress."""
    import srt.gateway.items as items

    real = items.items_of
    armed = [True]

    def items_of(*args: Any, **kw: Any) -> Any:
        if armed[0]:
            raise _Injected("injected")
        return real(*args, **kw)

    monkeypatch.setattr(items, "items_of", items_of)
    c = gw.client()
    events = list(c.responses.create(model="gpt-4o-mini", input="streamed", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.failed"
    failed = events[-1].response
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "server_error" and "injected" not in failed.error.message
    bg = c.responses.create(model="gpt-4o-mini", input="in the background", background=True)
    bg_events = list(
        c.responses.create(model="gpt-4o-mini", input="bg stream", background=True, stream=True)
    )
    assert bg_events[-1].type == "response.failed"
    with pytest.raises(openai.InternalServerError) as plain:
        c.responses.create(model="gpt-4o-mini", input="plain")
    assert set(plain.value.response.json()["error"]) == {"message", "type", "param", "code"}
    ended = _ended(c, bg.id)
    armed[0] = False
    for rid in (failed.id, bg.id, bg_events[-1].response.id):
        stored = c.responses.retrieve(rid)
        assert stored.status == "failed" and stored.error is not None, rid
        assert stored.error.code == "server_error"
    assert ended.status == "failed"
    statuses = _stored(gw)
    assert "in_progress" not in statuses.values()
    assert sorted(statuses.values()) == ["completed", "failed", "failed", "failed"]


def test_an_exception_before_the_first_event_leaves_no_response_in_progress(
    gw: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception before a stream's first event (``Events.start``): the
    streamed request is an OpenAI-shaped 500 and keeps no response; a background one
    ends ``failed``."""
    from srt.gateway.events import Events

    def start(self: Events, response: dict[str, Any]) -> None:
        raise _Injected("injected")

    monkeypatch.setattr(Events, "start", start)
    c = gw.client()
    with pytest.raises(openai.InternalServerError) as streamed:
        c.responses.create(model="gpt-4o-mini", input="streamed", stream=True)
    assert set(streamed.value.response.json()["error"]) == {"message", "type", "param", "code"}
    assert _stored(gw) == {}
    bg = c.responses.create(model="gpt-4o-mini", input="in the background", background=True)
    final = _ended(c, bg.id)
    assert final.status == "failed" and final.error is not None
    assert final.error.code == "server_error"
    assert _stored(gw) == {bg.id: "failed"}


def test_a_final_write_that_fails_removes_the_response(
    gw: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store refuses a streamed response's final write (and the failed record after
    it): the response in progress is removed rather than left ``in_progress``."""
    real = Records.put_response

    def put_response(self: Records, tenant: str, rec: dict[str, Any], node: Any) -> None:
        if rec["response"]["status"] != "in_progress":
            raise _Injected("the store refused the write")
        real(self, tenant, rec, node)

    monkeypatch.setattr(Records, "put_response", put_response)
    c = gw.client()
    events = list(c.responses.create(model="gpt-4o-mini", input="streamed", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.failed"
    bg = c.responses.create(model="gpt-4o-mini", input="in the background", background=True)
    assert _ended_or_gone(c, bg.id) is None
    monkeypatch.undo()
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(events[-1].response.id)
    assert _stored(gw) == {}


def test_a_store_that_refuses_every_write_leaves_no_response_in_progress(
    gw: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store takes a streamed (or background) response in progress, then refuses
    every write: its end, the failed record and the removal. Once its run is over the
    response reads ``failed`` (a ``server_error``, as OpenAI reports a response it could
    not finish; it read ``incomplete`` with no reason) from the worker that ran it, still
    alive, though the store still holds it in progress; once the store takes writes
    again, a read stores it so."""
    real = Records.put_response

    def put_response(self: Records, tenant: str, rec: dict[str, Any], node: Any) -> None:
        if rec["response"]["status"] != "in_progress":
            raise _Injected("the store refused the write")
        real(self, tenant, rec, node)

    def delete_response(self: Records, tenant: str, rid: str) -> bool:
        raise _Injected("the store refused the delete")

    monkeypatch.setattr(Records, "put_response", put_response)
    monkeypatch.setattr(Records, "delete_response", delete_response)
    c = gw.client()
    events = list(c.responses.create(model="gpt-4o-mini", input="streamed", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.failed"
    bg = c.responses.create(model="gpt-4o-mini", input="in the background", background=True)
    rids = (events[-1].response.id, bg.id)
    for rid in rids:
        ended = _ended(c, rid)
        assert (ended.status, ended.incomplete_details) == ("failed", None), rid
        assert ended.error is not None and ended.error.code == "server_error"
    assert _stored(gw) == dict.fromkeys(rids, "in_progress")
    monkeypatch.undo()
    for rid in rids:
        assert c.responses.retrieve(rid).status == "failed"
    assert _stored(gw) == dict.fromkeys(rids, "failed")


def _ended_or_gone(c: openai.OpenAI, rid: str) -> Any:
    """``_ended``, or None once the response is gone."""
    try:
        return _ended(c, rid)
    except openai.NotFoundError:
        return None


def test_an_upstream_error_text_with_a_lone_surrogate_is_passed_on_replaced(
    gw: Harness, backoffs: list[float]
) -> None:
    """An upstream's error message holding a lone surrogate (JSON can spell one, UTF-8
    cannot hold it): the client gets the usual OpenAI-shaped 400 or 502, plain and
    streamed, with U+FFFD in its place, not a bare 500. (The 500's retries back off
    without sleeping: ``backoffs``.)"""
    c = gw.client()
    body = '{"error": {"message": "bad \\ud800 input"}}'
    cases = ((400, 400, "upstream_invalid_request"), (500, 502, "upstream_error"))
    for code, status, kind in cases:
        gw.srv.fault("*", "status", count=None, code=code, body=body)  # every retry too
        for stream in (False, True):
            with pytest.raises(openai.APIStatusError) as e:
                c.responses.create(model="gpt-4o-mini", input="x", stream=stream)
            assert e.value.status_code == status and e.value.code == kind
            err = e.value.response.json()["error"]
            assert set(err) == {"message", "type", "param", "code"}
            assert "bad \ufffd input" in err["message"]
        gw.srv.clear()
    assert _stored(gw) == {}
    assert len(backoffs) == 4  # the 500's two retries, plain and streamed; no 400 retried


def test_an_upstream_reply_cut_inside_an_emoji_reaches_the_client_and_is_stored(
    gw: Harness,
) -> None:
    """The upstream's reply holds a lone surrogate (``\\ud83d`` in its JSON: the model
    stopped half-way through an emoji): the client gets the reply, plain or streamed,
    through Responses and Chat Completions, and the stored response holds U+FFFD."""
    c = gw.client()
    said = "half an emoji \ud83d then more"
    for stream in (False, True):
        gw.srv.script("*", [said])
        if stream:
            events = list(c.responses.create(model="gpt-4o-mini", input="x", stream=True))
            assert events[-1].type == "response.completed"
            r = events[-1].response
        else:
            r = c.responses.create(model="gpt-4o-mini", input="x")
        assert r.status == "completed" and r.output_text == "half an emoji \ufffd then more"
        assert c.responses.retrieve(r.id).output_text == r.output_text
        gw.srv.script("*", [said])
        if stream:
            chunks = c.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
            )
            text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        else:
            done = c.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
            )
            text = done.choices[0].message.content or ""
        assert text == "half an emoji \ufffd then more"


def test_an_unexpected_exception_on_any_route_is_an_openai_500_that_stays_in_the_app(
    gw: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception no layer expected, on a route other than create (retrieve, list
    items, usage): the client gets the OpenAI-shaped 500, the gateway logs it, and it
    never reaches the server (uvicorn answers such an exception by closing the
    connection, which a client that reuses it meets as a reset)."""
    c = gw.client()
    r = c.responses.create(model="gpt-4o-mini", input="kept")
    gateway = gw.gateway

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise _Injected("injected")

    caplog.set_level(logging.ERROR)
    for name in ("get", "input_items"):
        monkeypatch.setattr(gateway, name, broken)
    monkeypatch.setattr(srt.gateway.chat, "usage", broken)
    calls = (
        lambda: c.responses.retrieve(r.id),
        lambda: c.responses.input_items.list(r.id),
        lambda: c.get("/usage", cast_to=object),
    )
    for call in calls:
        with pytest.raises(openai.InternalServerError) as e:
            call()
        assert set(e.value.response.json()["error"]) == {"message", "type", "param", "code"}
    monkeypatch.undo()
    assert c.responses.retrieve(r.id).output_text  # the same client goes on
    escaped = [x for x in caplog.records if "Exception in ASGI application" in x.getMessage()]
    logged = [x for x in caplog.records if x.name == "srt.gateway" and x.exc_info]
    assert escaped == [] and len(logged) == 3
