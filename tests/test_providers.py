"""Every provider through real HTTP against the local provider server (127.0.0.1).

A conversation per provider checks the ledger against the server's own cache
accounting and srt's cache explain against both; the Responses path checks the
flat bytes of ``previous_response_id`` deltas and the fallback when the stored
response is gone. Retries, faults and limits: ``test_providers_faults``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openai import OpenAI as OpenAISDK

import providers_support
import srt
from providers_support import KEY, MODELS, SECRET, make
from srt.testing import ProviderServer
from support import (  # noqa: F401  (close_made: an autouse fixture)
    close_made,
    is_url,
    snapshot,
)

srv, rt = providers_support.srv, providers_support.rt  # its fixtures, here by name

SYSTEM = {"role": "system", "content": "You answer questions about caching. " * 200}

# Where the server renders the prompt exactly as srt's fragments, srt's explain
# predicts the cached tokens exactly. Anthropic and Bedrock servers prefix each
# message with its role (srt under-estimates by about 2 tokens a message: within 5%
# at 30 turns). A Responses chain is stored
# server-side with the server's own, larger, output items, so srt under-estimates
# it by a few tokens per assistant turn (within 15% at 30 turns); it never
# over-promises.
EXACT = {"openai", "azure", "compatible"}
TOLERANCE = {"anthropic": 0.05, "bedrock": 0.05, "bedrock-sigv4": 0.05, "responses": 0.15}


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
    response; both are stored as replies (``stop_reason`` its ``incomplete_details.reason``,
    ``max_output_tokens``) with their usage."""
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
        assert reply is not None and reply.stop_reason == "max_output_tokens"
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
