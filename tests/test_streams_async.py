"""An ``astream`` ended early against the provider server on 127.0.0.1 (srt's own
asyncio pool): every async generator of srt's under it is closed by srt, none is left
to the event loop's finaliser hook, which would close it later in a task of its own."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import srt
from srt.providers import OpenAI
from srt.testing import ProviderServer
from support import made

KEY = "sk-CANARY-astreams-key-0123456789"
MODEL = "gpt-4o"
USER = {"role": "user", "content": "hello"}


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server


SRT_DIR = str(Path(srt.__file__).parent)


def _srt_generator(agen: Any) -> bool:
    code = getattr(agen, "ag_code", None)
    return code is not None and code.co_filename.startswith(SRT_DIR)


def test_astream_ended_early_leaves_no_generator_to_the_loop(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    """After the first delta, ``aclose()``: the loop's finaliser hook is handed no
    async generator of srt's (before, ``AsyncResponse.aiter_bytes`` left the pool's
    ``AsyncResponseStream.__aiter__`` to it); the connection is closed and the partial
    reply is stored ``cancelled`` with its ledger row."""
    srv.fault("openai", "endless", interval=0.05, after=3)
    p = made(OpenAI(KEY, base_url=srv.url + "/v1"))
    s = rt.session("a")
    finalised: list[str] = []

    async def main() -> None:
        hooks = sys.get_asyncgen_hooks()
        loop_finaliser = hooks.finalizer
        assert loop_finaliser is not None

        def finaliser(agen: Any) -> None:
            if _srt_generator(agen):
                finalised.append(agen.ag_code.co_qualname)
            loop_finaliser(agen)

        sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=finaliser)
        try:
            stream = s.astream(p, model=MODEL, append=[USER])
            async for _ in stream:
                break
            await stream.aclose()
            for _ in range(5):  # a finaliser's task would run in these turns
                await asyncio.sleep(0)
        finally:
            await p.aclose()

    asyncio.run(main())
    assert finalised == []
    assert srv.wait_streams_closed()
    assert [r["status"] for r in s.calls()] == ["cancelled"]
    assert [e.status for e in s.entries()] == [None, "cancelled"]
