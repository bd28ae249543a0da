"""Every provider through real HTTP against the local provider server (127.0.0.1).

A conversation per provider checks the ledger against the server's own cache
accounting and srt's cache explain against both; the Responses path checks the
flat bytes of ``previous_response_id`` deltas and the fallback when the stored
response is gone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI as OpenAISDK

import srt
from srt.providers import Bedrock, OpenAI, Provider
from srt.providers.sigv4 import AwsCredentials
from srt.providers.transport import RetryPolicy, Timeouts, Transport
from srt.testing import ProviderServer
from support import (  # noqa: F401  (close_made: an autouse fixture)
    MADE,
    close_made,
    is_url,
    provider_on,
    snapshot,
)

KEY = "sk-CANARY-provider-key-0123456789"
SECRET = "CANARY-aws-secret-abcdefghijklmnop"
SYSTEM = {"role": "system", "content": "You answer questions about caching. " * 200}

MODELS = {
    "openai": "gpt-4o",
    "responses": "gpt-4o",
    "azure": "gpt-4o",
    "compatible": "local-model",
    "anthropic": "claude-sonnet-4-6",
    "bedrock": "anthropic.claude-sonnet-4-6",
    "bedrock-sigv4": "anthropic.claude-sonnet-4-6",
}
# Where the server renders the prompt exactly as srt's fragments, srt's explain
# predicts the cached tokens exactly. Anthropic and Bedrock servers prefix each
# message with its role (srt under-estimates by about 2 tokens a message: within 5%
# at 30 turns). A Responses chain is stored
# server-side with the server's own, larger, output items, so srt under-estimates
# it by a few tokens per assistant turn (within 15% at 30 turns); it never
# over-promises.
EXACT = {"openai", "azure", "compatible"}
TOLERANCE = {"anthropic": 0.05, "bedrock": 0.05, "bedrock-sigv4": 0.05, "responses": 0.15}


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server
        assert server.errors == []


@pytest.fixture
def rt(store_url: str) -> Iterator[srt.Runtime]:
    """The provider tests run once per engine (SQLite, PostgreSQL)."""
    with srt.Runtime(store_url) as runtime:
        yield runtime


def make(kind: str, srv: ProviderServer, **kw: Any) -> Provider:
    p = _make(kind, srv, **kw)
    MADE.append(p)
    return p


def _make(kind: str, srv: ProviderServer, **kw: Any) -> Provider:
    if kind == "bedrock-sigv4":
        creds = AwsCredentials("AKIAIOSFODNN7EXAMPLE", SECRET)
        return Bedrock(region="us-east-1", credentials=creds, endpoint_url=srv.url, **kw)
    return provider_on(kind, srv.url, KEY, **kw)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_thirty_turns_cache_as_the_rules_predict(
    kind: str, srv: ProviderServer, rt: srt.Runtime
) -> None:
    p = make(kind, srv)
    model = MODELS[kind]
    s = rt.session(kind)
    s.append(SYSTEM)
    for turn in range(30):
        s.append({"role": "user", "content": f"Question {turn}: how do prefix caches work? " * 8})
        if turn % 2:
            stream = s.stream(p, model=model)
            assert stream.text() and stream.status == "ok"
        else:
            s.send(p, model=model)
        row = s.calls()[-1]
        rec = srv.log[-1]
        assert rec.status == 200 and row["status"] == "ok"
        # The ledger holds exactly what the server reported.
        assert row["input_tokens"] == rec.cache.total
        assert row["cache_read_tokens"] == rec.cache.read
        assert row["cache_write_tokens"] == rec.cache.written
        predicted, actual = row["predicted_cached_tokens"], row["cache_read_tokens"]
        if turn == 0:
            assert predicted == 0
            continue
        # From turn 2 on everything but the newest turn is served from the cache.
        assert actual > 0.85 * row["input_tokens"], (turn, row)
        if kind in EXACT:
            assert predicted == actual and actual % 128 == 0
        else:
            assert predicted <= actual, (turn, predicted, actual)
            assert actual - predicted <= TOLERANCE[kind] * actual, (turn, predicted, actual)
    rows = s.calls()
    assert len(rows) == 30 == srv.requests.total()
    reads = [r["cache_read_tokens"] for r in rows]
    assert reads[1:] == sorted(reads[1:]), "cached tokens grow turn by turn"
    assert len(s.messages()) == 61 and s.usage().requests == 30
    if kind.startswith("bedrock-sigv4"):
        assert srv.log[-1].headers["authorization"].startswith("AWS4-HMAC-SHA256")
    p.close()


def test_responses_sends_flat_deltas_and_recovers_from_a_lost_response(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    p = make("responses", srv)
    s = rt.session("r")
    s.append(SYSTEM)
    sizes = []
    for turn in range(12):
        s.append({"role": "user", "content": f"turn {turn}: " + "more words " * 20})
        s.send(p, model="gpt-4o")
        sizes.append(s.calls()[-1]["body_bytes"])
    # After the first full request only the new turn travels: the bytes stay flat
    # while the history (and the server's input_tokens, billed in full) grows.
    assert sizes[0] > 5000 and max(sizes[1:]) < 700 and max(sizes[1:]) - min(sizes[1:]) < 40
    rows = s.calls()
    assert all(r["previous_response_id"] for r in rows[1:])
    assert [r["input_tokens"] for r in rows] == sorted(r["input_tokens"] for r in rows)
    body = srv.log[-1].body
    assert body["previous_response_id"] == rows[-2]["response_id"] and len(body["input"]) == 1

    srv.expire_responses()
    s.append({"role": "user", "content": "after the store forgot us"})
    s.send(p, model="gpt-4o")
    failed, resent = s.calls()[-2:]
    assert failed["status"] == "error" and "previous_response_not_found" in failed["error"]
    assert resent["status"] == "ok" and resent["fallback"] == "previous_response_not_found"
    assert resent["previous_response_id"] is None and resent["body_bytes"] > 5000
    assert len(s.messages()) == 1 + 2 * 13
    # store=false is never chained from.
    s.append({"role": "user", "content": "do not store this one"})
    s.send(p, model="gpt-4o", store=False)
    s.append({"role": "user", "content": "next"})
    s.send(p, model="gpt-4o")
    assert s.calls()[-1]["previous_response_id"] == s.calls()[-3]["response_id"]


def test_a_server_that_keeps_no_responses_gets_one_full_resend_then_full_requests(
    rt: srt.Runtime,
) -> None:
    """A Responses server that refuses ``previous_response_id`` (llama.cpp's does, with a
    400 naming it): the chained request is sent again in full once, the ledger says why,
    and the provider chains no more, so no later turn pays for a refused request."""
    with ProviderServer(api_key=KEY, responses_state=False) as srv:
        p = make("responses", srv)
        s = rt.session("keeps-none")
        s.append(SYSTEM, {"role": "user", "content": "one"})
        s.send(p, model="gpt-4o")
        s.append({"role": "user", "content": "two"})
        s.send(p, model="gpt-4o")
        failed, resent = s.calls()[-2:]
        assert failed["status"] == "error" and "previous_response_id" in failed["error"]
        assert resent["status"] == "ok" and resent["fallback"] == "previous_response_id_refused"
        assert resent["previous_response_id"] is None and p.server_state is False
        s.append({"role": "user", "content": "three"})
        s.stream(p, model="gpt-4o").text()
        last = s.calls()[-1]
        assert last["status"] == "ok" and last["previous_response_id"] is None
        assert last["fallback"] is None and len(s.calls()) == 4 == srv.requests.total()
        assert [m["content"] for m in s.messages()[1::2]] == ["one", "two", "three"]
        assert srv.errors == []


def test_compatible_responses_chain_only_when_asked(srv: ProviderServer, rt: srt.Runtime) -> None:
    """``OpenAICompatible(api="responses")`` sends whole requests (llama.cpp refuses
    ``previous_response_id``, Ollama keeps no responses); ``server_state=True`` chains
    as with OpenAI."""
    for chained in (False, True):
        p = make("compatible", srv, api="responses", server_state=chained)
        s = rt.session(f"compatible-{chained}")
        s.append(SYSTEM)
        for turn in range(3):
            s.append({"role": "user", "content": f"turn {turn}"})
            s.send(p, model="gpt-4o")
        ids = [r["previous_response_id"] for r in s.calls()]
        assert all(i is None for i in ids) != chained
        assert all(r["status"] == "ok" for r in s.calls())
        if chained:
            assert ids[2] == s.calls()[1]["response_id"]


def test_a_callers_conversation_is_never_chained_from_a_stored_response(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    """The API takes ``conversation`` or ``previous_response_id``, never both (the
    server answers 400): a send that names the caller's conversation carries the whole
    history and no ``previous_response_id``, though the session's last reply was stored."""
    p = make("responses", srv)
    conv = OpenAISDK(api_key=KEY, base_url=srv.url + "/v1").conversations.create()
    s = rt.session("conv")
    s.append(SYSTEM, {"role": "user", "content": "one"})
    s.send(p, model="gpt-4o")
    s.append({"role": "user", "content": "two"})
    s.send(p, model="gpt-4o", conversation=conv.id)
    body = srv.log[-1].body
    assert srv.log[-1].status == 200 and body["conversation"] == conv.id
    assert "previous_response_id" not in body and len(body["input"]) == 4  # all of it
    assert s.calls()[-1]["previous_response_id"] is None and s.calls()[-1]["status"] == "ok"
    s.append({"role": "user", "content": "three"})
    s.send(p, model="gpt-4o")  # without it: chained from the stored reply, as before
    assert s.calls()[-1]["previous_response_id"] == s.calls()[-2]["response_id"]


def test_a_streamed_response_cut_at_its_output_cap_is_stored_as_the_plain_one_is(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    """``max_output_tokens`` reached: the non-streamed response has status
    ``incomplete``, and the stream ends with ``response.incomplete`` carrying the same
    response; both are stored as replies (``stop_reason`` incomplete) with their usage."""
    p = make("responses", srv)
    long = "word " * 200
    for streamed in (False, True):
        srv.script("*", [long])
        s = rt.session(f"capped-{streamed}")
        s.append(SYSTEM, {"role": "user", "content": "say a lot"})
        if streamed:
            stream = s.stream(p, model="gpt-4o", max_output_tokens=20)
            text = stream.text()
            reply = stream.reply
        else:
            reply = s.send(p, model="gpt-4o", max_output_tokens=20)
            text = reply.message["content"]
        assert reply is not None and reply.stop_reason == "incomplete"
        assert 0 < len(text) < len(long) and s.messages()[-1]["content"] == text
        row, rec = s.calls()[-1], srv.log[-1]
        assert rec.status == 200 and row["status"] == "ok" and row["output_tokens"] == 20
        assert (row["input_tokens"], row["cache_read_tokens"]) == (rec.cache.total, rec.cache.read)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", ["openai", "responses", "anthropic", "bedrock"])
def test_a_reply_cut_inside_an_emoji_is_stored_with_a_replacement_character(
    kind: str, stream: bool, srv: ProviderServer, rt: srt.Runtime
) -> None:
    """A reply holding a lone surrogate (``\\ud83d`` in its JSON: a model stopped half-way
    through an emoji) is stored with U+FFFD in its place, not lost with its usage."""
    p = make(kind, srv)
    srv.script("*", ["half an emoji \ud83d then more"])
    s = rt.session("emoji")
    s.append({"role": "user", "content": "hi"})
    if stream:
        assert "\ud83d" in s.stream(p, model=MODELS[kind]).text()  # as the provider sent it
    else:
        assert s.send(p, model=MODELS[kind]).message["content"] == "half an emoji \ufffd then more"
    assert s.messages()[-1]["content"] == "half an emoji \ufffd then more"
    assert [c["status"] for c in s.calls()] == ["ok"] and s.calls()[0]["output_tokens"] > 0
    assert srv.log[-1].status == 200 and srv.requests.total() == 1


@pytest.mark.parametrize("stream", [False, True])
def test_a_reply_over_the_message_limit_is_in_the_ledger_as_the_providers_error(
    stream: bool, srv: ProviderServer, tmp_path: Path
) -> None:
    """A reply the store refuses (over ``max_message_bytes``) is the provider's error, not
    the caller's input's, and its usage, already billed, is in the ledger."""
    p = make("openai", srv)
    srv.script("*", ["word " * 1000])
    with srt.Runtime(str(tmp_path / "small.db"), max_message_bytes=2000) as small:
        s = small.session("big")
        s.append({"role": "user", "content": "say a lot"})
        with pytest.raises(srt.ProviderResponseError, match=r"could not be stored.*larger"):
            if stream:
                s.stream(p, model="gpt-4o").text()
            else:
                s.send(p, model="gpt-4o")
        (row,) = s.calls()
        assert row["status"] == "error" and "its usage is in the ledger" in row["error"]
        assert row["output_tokens"] == srv.log[-1].reply.output_tokens > 0
        assert len(s.messages()) == 1 and small.usage().requests == 1


def test_a_model_switch_or_an_edit_falls_back_to_full_assembly(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    p = make("responses", srv)
    s = rt.session("m")
    s.append(SYSTEM, {"role": "user", "content": "one"})
    s.send(p, model="gpt-4o")
    s.append({"role": "user", "content": "two"})
    s.send(p, model="gpt-4.1")
    assert s.calls()[-1]["previous_response_id"] is None
    s.edit(1, {"role": "user", "content": "one, edited"})
    s.send(p, model="gpt-4o")
    assert s.calls()[-1]["previous_response_id"] is None


def test_tool_call_round_trip_through_every_provider(srv: ProviderServer, rt: srt.Runtime) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    for kind in ("openai", "responses", "anthropic", "bedrock"):
        srv.script("*", [{"tool_calls": [{"name": "weather", "arguments": {"city": "Paris"}}]}])
        p = make(kind, srv)
        s = rt.session(f"tools-{kind}")
        s.append({"role": "user", "content": "Weather in Paris?"})
        reply = s.send(p, model=MODELS[kind], tools=tools)
        (call,) = reply.message["tool_calls"]
        assert call["function"]["name"] == "weather"
        assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
        s.append({"role": "tool", "tool_call_id": call["id"], "content": "sunny, 21 C"})
        final = s.send(p, model=MODELS[kind], tools=tools)
        assert final.message["content"]
        assert [m["role"] for m in s.messages()] == ["user", "assistant", "tool", "assistant"]
        p.close()


# -- faults -----------------------------------------------------------------------------


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
    # The partial reply is stored, marked, and left out of the next request.
    assert len(s.messages()) == 2
    partial = s.messages()[1]["content"]
    assert partial and srv.log[-1].reply.text.startswith(partial)
    s.append({"role": "user", "content": "try again"})
    text = json.dumps(json.loads(s.request(p.format, model=MODELS[kind], cache=False)))
    assert "tell me a long story" in text and "try again" in text and partial not in text
    with_partial = s.request(p.format, model=MODELS[kind], include_partial=True, cache=False)
    assert partial in json.dumps(json.loads(with_partial))


@pytest.mark.parametrize(
    ("variant", "ok"),
    [("crlf", True), ("split_utf8", True), ("bad_json", False), ("error_event", False)],
)
@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_malformed_streams(
    kind: str, variant: str, ok: bool, srv: ProviderServer, rt: srt.Runtime
) -> None:
    p = make(kind, srv)
    srv.fault("*", "malformed_sse", count=1, variant=variant)
    s = rt.session("m")
    s.append({"role": "user", "content": "hello there"})
    stream = s.stream(p, model=MODELS[kind])
    if ok:
        text = stream.text()
        assert stream.status == "ok" and text == s.messages()[-1]["content"]
        if variant == "split_utf8":
            assert "ünïcödé ✓" in text
    else:
        with pytest.raises(srt.ProviderError):
            stream.text()
        assert stream.status == "error" and s.calls()[-1]["status"] == "error"


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


# -- secrets ----------------------------------------------------------------------------


def test_canary_key_appears_nowhere(
    srv: ProviderServer, rt: srt.Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    for kind in sorted(MODELS):
        p = make(kind, srv)
        texts.append(repr(p))
        s = rt.session(f"canary-{kind}")
        s.append({"role": "user", "content": "hello"})
        s.send(p, model=MODELS[kind])
        # The server echoes the credential it was sent (some real services do).
        own = SECRET if kind == "bedrock-sigv4" else KEY
        srv.fault("*", "status", count=1, code=401, message=f"bad key {own} and {KEY}")
        with pytest.raises(srt.ProviderAuthError) as err:
            s.send(p, model=MODELS[kind])
        texts += [str(err.value), repr(err.value), repr(err.value.__cause__)]
        p.close()
    texts.append(caplog.text)
    rt.close()
    if is_url(rt.path):  # every row of every table of the PostgreSQL store
        blobs = [repr(snapshot(rt.path)).encode()]
    else:
        blobs = [
            Path(rt.path + suffix).read_bytes()
            for suffix in ("", "-wal", "-shm")
            if Path(rt.path + suffix).exists()
        ]
    assert blobs
    for secret in (KEY, SECRET):
        assert not any(secret in t for t in texts)
        assert not any(secret.encode() in b for b in blobs)


# -- asyncio ----------------------------------------------------------------------------


def test_a_hundred_concurrent_async_streams(srv: ProviderServer, rt: srt.Runtime) -> None:
    import asyncio

    p = make("openai", srv)
    # Every reply waits 0.2 s before it starts, so a client that sends them together has
    # them all open at once, whatever the machine's load, while one that waits for each
    # reply has one. (Counting streams open at once depended on the load: a reply of a
    # few hundred bytes is written out before the next request arrives on a busy machine.)
    srv.fault("openai", "delay", count=None, seconds=0.2)
    most = [0]  # the most connections the server served at once

    async def watch() -> None:
        while True:
            most[0] = max(most[0], srv.active_handlers)
            await asyncio.sleep(0.01)

    async def one(i: int) -> str:
        s = rt.session(f"async-{i}")
        s.append({"role": "user", "content": f"hello {i}"})
        return await s.astream(p, model="gpt-4o").text()

    async def main() -> list[str]:
        watcher = asyncio.create_task(watch())
        try:
            return await asyncio.gather(*(one(i) for i in range(100)))
        finally:
            watcher.cancel()
            await p.aclose()

    texts = asyncio.run(main())
    assert len(texts) == 100 and all(texts)
    for i in range(100):
        msgs = rt.session(f"async-{i}").messages()
        assert [m["role"] for m in msgs] == ["user", "assistant"] and msgs[1]["content"] == texts[i]
    assert most[0] > 1, most
    assert rt.usage().requests == 100


def test_async_send_matches_sync(srv: ProviderServer, rt: srt.Runtime) -> None:
    import asyncio

    p = make("anthropic", srv)
    s = rt.session("a")
    s.append({"role": "user", "content": "hi"})

    async def go() -> srt.Reply:
        try:
            return await s.asend(p, model=MODELS["anthropic"])
        finally:
            await p.aclose()

    reply = asyncio.run(go())
    assert s.messages()[-1]["content"] == reply.message["content"]


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
