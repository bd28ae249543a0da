"""``Session.send`` puts on the wire exactly the bytes ``Session.request`` builds.

The send path hands the transport a ``_core.Body`` of chunks (the history's frozen
segments, then the pieces not frozen yet and the tail) instead of one joined body.
Twin runtimes go through the same operations (appends, rewinds, edits, sends with the
cache planner on): one builds each request with ``request()``, the other sends it to
``srt.testing``, and the server's digest of the bytes it received must equal the
digest of the twin's bytes, request after request. Small segment sizes make every
send freeze, merge, mark and cut segments.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import srt
from srt import _builder, _core
from srt.bench import send as send_bench
from srt.providers import Anthropic, Bedrock, OpenAI, Provider
from srt.providers.transport import Timeouts, Transport

SMALL = {"min_bytes": 0, "segment_bytes": 96, "merge_bytes": 400}

FORMATS = {
    "openai.chat": ("gpt-4o-mini", {}),
    "anthropic.messages": ("claude-sonnet-4-5", {"max_tokens": 64}),
    "bedrock.converse": ("anthropic.claude-sonnet-4-5-v1:0", {}),
}


@pytest.fixture(scope="module")
def server() -> Iterator[send_bench.TimedServer]:
    srv = send_bench.TimedServer(api_key=send_bench.KEY)
    try:
        yield srv
    finally:
        srv.close()


@contextlib.contextmanager
def small_segments() -> Iterator[None]:
    saved = dict(_builder.SEGMENTS)
    _builder.SEGMENTS.update(SMALL)
    try:
        yield
    finally:
        _builder.SEGMENTS.clear()
        _builder.SEGMENTS.update(saved)


def provider_for(fmt: str, url: str, own: bool = False) -> Provider:
    """``own``: srt's own client, which hands requests straight to its pool."""
    if own:
        transport = Transport(timeouts=Timeouts(connect=30.0, idle=30.0))
    else:
        transport = Transport(client=httpx.Client(timeout=30))
    if fmt == "openai.chat":
        return OpenAI(api_key=send_bench.KEY, base_url=f"{url}/v1", transport=transport)
    if fmt == "anthropic.messages":
        return Anthropic(api_key=send_bench.KEY, base_url=url, transport=transport)
    return Bedrock(
        region="us-east-1", api_key=send_bench.KEY, endpoint_url=url, transport=transport
    )


words = st.text('abcdé ✓"\\\n', min_size=1, max_size=60).filter(str.strip)


class SendMachine(RuleBasedStateMachine):
    """The same history in two runtimes; ``sent`` sends from one and builds in the other."""

    srv: send_bench.TimedServer

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp()
        self.a = srt.Runtime(os.path.join(self.tmp, "a.db"))
        self.b = srt.Runtime(os.path.join(self.tmp, "b.db"))
        self.sa = self.a.session("s")
        self.sb = self.b.session("s")
        self.fmt = "openai.chat"
        self.provider: Provider | None = None
        self.sent = 0

    @initialize(fmt=st.sampled_from(sorted(FORMATS)), system=words, own=st.booleans())
    def start(self, fmt: str, system: str, own: bool) -> None:
        self.fmt = fmt
        self.provider = provider_for(fmt, self.srv.url, own)
        for s in (self.sa, self.sb):
            s.append({"role": "system", "content": system * 3}, {"role": "user", "content": "hi"})

    @rule(text=words)
    def user(self, text: str) -> None:
        for s in (self.sa, self.sb):
            s.append({"role": "user", "content": text})

    @rule(text=words)
    def assistant(self, text: str) -> None:
        for s in (self.sa, self.sb):
            s.append({"role": "assistant", "content": text * 4})

    @rule(k=st.integers(1, 3))
    def rewind(self, k: int) -> None:
        n = len(self.sa)
        if n - k >= 2:  # the system message and a first user message stay
            for s in (self.sa, self.sb):
                s.rewind(k)

    @rule(back=st.integers(1, 4), text=words)
    def edit(self, back: int, text: str) -> None:
        n = len(self.sa)
        if n - back >= 1:  # never the system message (an edit makes a user message)
            for s in (self.sa, self.sb):
                s.edit(n - back, {"role": "user", "content": "edited " + text})

    # (the ledger remembers its params text by the values' types and float reprs)
    @rule(reply=words, question=words, temperature=st.sampled_from([None, 0.0, -0.0, 0, 1]))
    def sent_equals_built(self, reply: str, question: str, temperature: float | None) -> None:
        if self.sa.messages()[-1]["role"] != "user":
            self.user(question)
        model, params = FORMATS[self.fmt]
        if temperature is not None and self.fmt != "bedrock.converse":  # (inferenceConfig)
            params = {**params, "temperature": temperature}
        built = self.sa.request(self.fmt, model=model, **params)
        assert self.provider is not None
        self.srv.script("*", [reply])
        got = self.sb.send(self.provider, model=model, **params)
        self.srv.settle()
        assert self.srv.digests[-1] == _core.digest(built).hex()
        assert self.b.calls()[-1]["body_hash"] == _core.digest(built)
        self.sa.append(got.message)
        self.sent += 1

    @invariant()
    def same_history(self) -> None:
        assert self.sa.messages() == self.sb.messages()

    def teardown(self) -> None:
        report = self.b.verify_ledger()  # every row's params rebuild the body it hashed
        assert report.ok and report.checked == self.sent, report
        if self.provider is not None:
            self.provider.close()
        self.a.close()
        self.b.close()


def test_send_puts_the_built_bytes_on_the_wire(server: send_bench.TimedServer) -> None:
    SendMachine.srv = server
    with small_segments():
        case = SendMachine.TestCase
        case.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
        case().runTest()


def test_no_cycle_keeps_a_body_or_a_response_alive(
    server: send_bench.TimedServer, tmp_path: Any
) -> None:
    """With the cyclic collector off, nothing a send made outlives it: no ``Body`` (so the
    chunk built for the turn is freed when the call returns, and the history's segments
    are held only by the session) and no transport ``Response`` (whose deadline
    watchdog once made a cycle with it)."""
    import gc

    from srt.providers import transport

    rt = srt.Runtime(str(tmp_path / "s.db"))
    s = rt.session("s")
    s.append({"role": "system", "content": "x" * 300_000})
    provider = provider_for("openai.chat", server.url)
    gc.collect()
    gc.disable()
    try:
        for i in range(3):
            s.append({"role": "user", "content": f"question {i} " * 50})
            server.script("*", [f"answer {i}"])
            s.send(provider, model="gpt-4o-mini")
            alive = [o for o in gc.get_objects() if isinstance(o, (_core.Body, transport.Response))]
            assert alive == []
        assert s.messages()[-1]["content"] == "answer 2"
    finally:
        gc.enable()
        provider.close()
        rt.close()


def test_a_sent_or_streamed_call_leaves_no_cyclic_garbage(tmp_path: Any) -> None:
    """With the cyclic collector off, a send, a stream and an asyncio stream through srt's
    pools leave nothing for it: every object a call made is freed by reference counting
    (a streamed call's stop, which shuts its connection before the head, once made a
    cycle with the pool's closure over it: 7 objects a call)."""
    import asyncio
    import gc

    from srt.testing import ProviderServer

    key = "sk-srt-no-cyclic-garbage"
    with ProviderServer(api_key=key) as srv, srt.Runtime(str(tmp_path / "g.db")) as rt:
        provider = srt.OpenAI(api_key=key, base_url=srv.url + "/v1")
        s = rt.session("g")

        async def astreamed(i: int) -> str:
            return await s.astream(
                provider, model="gpt-4o-mini", append={"role": "user", "content": f"a {i}"}
            ).text()

        def turn(i: int) -> None:
            s.send(provider, model="gpt-4o-mini", append={"role": "user", "content": f"q {i}"})
            st = s.stream(
                provider, model="gpt-4o-mini", append={"role": "user", "content": f"s {i}"}
            )
            assert st.text()
            assert asyncio.run(astreamed(i))

        try:
            turn(0)  # (warm: the pools, the caches, asyncio's first loop)
            gc.collect()
            gc.disable()
            try:
                for i in range(1, 4):
                    turn(i)
                assert gc.collect() == 0
            finally:
                gc.enable()
            assert srv.errors == []
        finally:
            provider.close()
