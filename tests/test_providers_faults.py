"""Every provider through real HTTP against the local provider server (127.0.0.1), when
things go wrong: retries and their delays, giving up, resets, no retry after the first
streamed byte, malformed streams, limits that end a stream and a cancelled stream.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import providers_support
import srt
from providers_support import MODELS, make
from srt.providers import OpenAI, Provider
from srt.providers.transport import RetryPolicy, Timeouts, Transport
from srt.testing import ProviderServer
from support import close_made  # noqa: F401  (an autouse fixture)

srv, rt = providers_support.srv, providers_support.rt  # its fixtures, here by name


def recording(kind: str, srv: ProviderServer, **kw: Any) -> tuple[Provider, list[float]]:
    waits: list[float] = []
    retry = kw.pop("retry", RetryPolicy())
    timeouts = kw.pop("timeouts", Timeouts(connect=2.0, idle=5.0, total=20.0))
    transport = Transport(timeouts=timeouts, retry=retry, sleep=waits.append, rand=lambda: 0.5)
    return make(kind, srv, transport=transport, timeouts=timeouts, retry=retry), waits


@pytest.mark.parametrize(
    ("fault", "expected_waits"),
    [
        ({"code": 429, "retry_after": 3}, [3.0]),
        ({"code": 429, "retry_after_ms": 250}, [0.25]),
        ({"code": 429, "retry_after_date": 10}, [10.0]),
        ({"code": 429, "retry_after": 500}, [0.5 * 0.875]),  # over 120 s: backoff instead
        ({"code": 500}, [0.5 * 0.875]),
        ({"code": 503}, [0.5 * 0.875]),
        ({"code": 529}, [0.5 * 0.875]),
    ],
)
def test_retry_counts_and_delays(
    srv: ProviderServer, rt: srt.Runtime, fault: dict[str, Any], expected_waits: list[float]
) -> None:
    p, waits = recording("anthropic", srv)
    srv.fault("anthropic", "status", count=1, **fault)
    s = rt.session("retry")
    s.append({"role": "user", "content": "hi"})
    s.send(p, model=MODELS["anthropic"])
    assert srv.requests["anthropic.messages"] == 2
    # The waits are exact (``rand`` is fixed) but for an HTTP date's: it is read against
    # the clock, to the second, some time after the server wrote it.
    slack = 1.5 if "retry_after_date" in fault else 0.0
    assert len(waits) == 1 and waits[0] == pytest.approx(expected_waits[0], rel=0.01, abs=slack)
    assert s.calls()[-1]["retries"] == 1


def test_gives_up_after_two_retries(srv: ProviderServer, rt: srt.Runtime) -> None:
    p, waits = recording("openai", srv)
    srv.fault("openai", "status", count=None, code=503)
    s = rt.session("down")
    s.append({"role": "user", "content": "hi"})
    with pytest.raises(srt.ProviderResponseError):
        s.send(p, model="gpt-4o")
    assert srv.requests["openai.chat"] == 3 and waits == [0.5 * 0.875, 1.0 * 0.875]
    assert s.calls()[-1]["status"] == "error" and len(s.messages()) == 1


def test_a_call_that_sent_nothing_records_the_body_it_built(rt: srt.Runtime) -> None:
    """The ledger row of a call refused before its body went out (so ``sent`` never ran)
    has the same body hash and size as one that was sent."""
    import socket

    from srt._core import digest

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    p = OpenAI(
        api_key="sk-test",
        base_url=f"http://127.0.0.1:{port}/v1",
        transport=Transport(retry=RetryPolicy(max_retries=0)),
    )
    s = rt.session("refused")
    s.append({"role": "user", "content": "hi"})
    body = s.request("openai.chat", model="gpt-4o")
    with pytest.raises(srt.ProviderError):
        s.send(p, model="gpt-4o")
    row = s.calls()[-1]
    assert row["status"] == "error" and row["body_bytes"] == len(body)
    assert row["body_hash"] == digest(bytes(body))


def test_reset_before_headers_is_retried(srv: ProviderServer, rt: srt.Runtime) -> None:
    p, waits = recording("openai", srv)
    srv.fault("openai", "reset_before_headers", count=1)
    s = rt.session("reset")
    s.append({"role": "user", "content": "hi"})
    s.send(p, model="gpt-4o")
    assert srv.requests["openai.chat"] == 2 and len(waits) == 1


@pytest.mark.parametrize("kind", ["openai", "responses", "anthropic", "bedrock"])
def test_no_retry_after_the_first_streamed_byte(
    kind: str, srv: ProviderServer, rt: srt.Runtime
) -> None:
    p, waits = recording(kind, srv)
    srv.fault("*", "reset_after_events", count=1, n=8)  # after a few text deltas
    s = rt.session("cut")
    s.append({"role": "user", "content": "tell me a long story"})
    with pytest.raises((srt.StreamInterruptedError, srt.ProviderResponseError)):
        s.stream(p, model=MODELS[kind]).text()
    assert srv.requests.total() == 1 and waits == []
    row = s.calls()[-1]
    assert row["status"] == "incomplete"
    _partial_kept_out(s, srv, p, kind)


def _partial_kept_out(s: srt.Session, srv: ProviderServer, p: Provider, kind: str) -> None:
    """What arrived before the fault is stored, marked, and left out of the next request
    (``include_partial=True`` puts it back)."""
    assert len(s.messages()) == 2
    partial = s.messages()[-1]["content"]
    assert partial and srv.log[-1].reply.text.startswith(partial)
    s.append({"role": "user", "content": "try again"})
    text = json.dumps(json.loads(s.request(p.format, model=MODELS[kind], cache=False)))
    assert "tell me a long story" in text and "try again" in text and partial not in text
    with_partial = s.request(p.format, model=MODELS[kind], include_partial=True, cache=False)
    assert partial in json.dumps(json.loads(with_partial))


#: Each wire format's malformed streams (``malformed_sse`` variants): those a decoder must
#: read through (CRLF line ends, a UTF-8 character split across chunks), and those that
#: fail the call, with the error they raise and the status of its ledger row: bad JSON,
#: the format's error event (a Bedrock exception frame), Responses' ``response.failed``,
#: a frame whose CRC is wrong, a body that ends inside an event (or frame). CRLF is SSE's
#: alone, a CRC the event stream's.
READ_THROUGH = ("crlf", "split_utf8")
FAILING = {
    "bad_json": (srt.ProviderResponseError, "error"),
    "error_event": (srt.ProviderResponseError, "error"),
    "failed": (srt.ProviderResponseError, "error"),
    "bad_crc": (srt.ProviderResponseError, "error"),
    "truncated": (srt.StreamInterruptedError, "incomplete"),
}
SSE_KINDS = ("openai", "responses", "anthropic")
MALFORMED = [
    *[(k, v) for k in SSE_KINDS for v in (*READ_THROUGH, "bad_json", "error_event", "truncated")],
    ("responses", "failed"),
    *[("bedrock", v) for v in ("split_utf8", "bad_json", "error_event", "bad_crc", "truncated")],
]


@pytest.mark.parametrize(("kind", "variant"), MALFORMED)
def test_malformed_streams(kind: str, variant: str, srv: ProviderServer, rt: srt.Runtime) -> None:
    p = make(kind, srv)
    srv.fault("*", "malformed_sse", count=1, variant=variant, after=8)  # after a few deltas
    s = rt.session("m")
    s.append({"role": "user", "content": "hello there, tell me a long story"})
    stream = s.stream(p, model=MODELS[kind])
    if variant in READ_THROUGH:
        text = stream.text()
        assert stream.status == "ok" and text == s.messages()[-1]["content"]
        assert text == srv.log[-1].reply.text and s.calls()[-1]["status"] == "ok"
        if variant == "split_utf8":
            assert text.endswith("ünïcödé ✓")
        return
    error, status = FAILING[variant]
    if (kind, variant) == ("anthropic", "error_event"):
        error = srt.RateLimitError  # the server's error event says overloaded_error
    with pytest.raises(srt.ProviderError) as failed:
        stream.text()
    # A typed srt error of the fault's kind, never a decoder's KeyError, ValueError or
    # JSONDecodeError (no ProviderError is one).
    assert type(failed.value) is error, repr(failed.value)
    assert srv.log[-1].fault == f"malformed_sse:{variant}" and srv.requests.total() == 1
    row = s.calls()[-1]
    assert stream.status == status and row["status"] == status and row["retries"] == 0
    assert row["error"].startswith(error.__name__)
    if variant == "failed":  # the tokens the failed response says were billed
        usage = srv.log[-1].usage
        assert (row["input_tokens"], row["output_tokens"]) == (
            usage["input_tokens"],
            usage["output_tokens"],
        )
    _partial_kept_out(s, srv, p, kind)


#: The limit (a ``Timeouts`` field) that ends a stream: the idle timeout a slow one (a byte
#: every 30 s), the total cap an endless one (an event every 0.2 s). Its provider, the
#: server's fault, the fault's interval, the timeouts, and what the error says: the limit
#: that ended the stream (not a timing: the fault itself would run for 30 s or forever).
LIMITED = {
    "idle": ("openai", "slow", 30, Timeouts(connect=2.0, idle=1.0, total=30.0), "no data for 1"),
    "total": (
        "anthropic",
        "endless",
        0.2,
        Timeouts(connect=2.0, idle=5.0, total=2.0),
        "total time cap",
    ),
}


@pytest.mark.parametrize("limit", sorted(LIMITED))
def test_a_limit_ends_a_stream(limit: str, srv: ProviderServer, rt: srt.Runtime) -> None:
    kind, fault, interval, timeouts, says = LIMITED[limit]
    p, _ = recording(kind, srv, timeouts=timeouts)
    srv.fault(kind, fault, count=1, interval=interval)
    s = rt.session(fault)
    s.append({"role": "user", "content": "hi"})
    with pytest.raises(srt.ProviderTimeoutError, match=says):
        s.stream(p, model=MODELS[kind]).text()
    assert s.calls()[-1]["status"] == "incomplete"


@pytest.mark.parametrize("own_client", [True, False])
def test_async_idle_timeout_and_total_cap(
    srv: ProviderServer, rt: srt.Runtime, own_client: bool
) -> None:
    """The asyncio stream keeps both limits, through srt's own client (whose reads time
    out after ``idle``) and through a caller's client (a timer per chunk)."""
    import asyncio

    import httpx

    from srt.providers.transport import AsyncTransport

    def provider(kind: str, timeouts: Timeouts) -> Provider:
        client = None if own_client else httpx.AsyncClient(timeout=60.0)
        return make(
            kind,
            srv,
            timeouts=timeouts,
            async_transport=AsyncTransport(timeouts=timeouts, client=client),
        )

    async def stream(p: Provider, s: srt.Session, model: str, says: str) -> None:
        try:
            with pytest.raises(srt.ProviderTimeoutError, match=says):
                await s.astream(p, model=model).text()
        finally:
            await p.aclose()

    for limit in sorted(LIMITED):  # the idle timeout, then the total cap
        kind, fault, interval, timeouts, says = LIMITED[limit]
        s = rt.session(f"async-{fault}")
        s.append({"role": "user", "content": "hi"})
        srv.fault(kind, fault, count=1, interval=interval)
        asyncio.run(stream(provider(kind, timeouts), s, MODELS[kind], says))
        assert s.calls()[-1]["status"] == "incomplete"


def test_cancelling_a_stream_keeps_the_partial_reply(srv: ProviderServer, rt: srt.Runtime) -> None:
    p = make("openai", srv)
    srv.script("openai", ["word " * 200])
    s = rt.session("cancel")
    s.append({"role": "user", "content": "talk"})
    stream = s.stream(p, model="gpt-4o")
    it = iter(stream)
    first = next(it)
    stream.close()
    assert stream.status == "cancelled"
    assert s.messages()[-1]["content"].startswith(first)
    assert s.calls()[-1]["status"] == "cancelled"
