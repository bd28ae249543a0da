"""An ``astream`` ended early against the provider server on 127.0.0.1 (srt's own
asyncio pool): every async generator of srt's under it is closed by srt, none is left
to the event loop's finaliser hook, which would close it later in a task of its own."""

from __future__ import annotations

import asyncio

import srt
from srt.testing import ProviderServer
from support import close_made, finalised_after_aclose, openai_for  # noqa: F401  (close_made: an autouse fixture)

MODEL = "gpt-4o"
USER = {"role": "user", "content": "hello"}


def test_astream_ended_early_leaves_no_generator_to_the_loop(
    srv: ProviderServer, rt: srt.Runtime
) -> None:
    """After the first delta, ``aclose()``: the loop's finaliser hook is handed no
    async generator of srt's (before, ``AsyncResponse.aiter_bytes`` left the pool's
    ``AsyncResponseStream.__aiter__`` to it); the connection is closed and the partial
    reply is stored ``cancelled`` with its ledger row."""
    srv.fault("openai", "endless", interval=0.05, after=3)
    p = openai_for(srv)
    s = rt.session("a")

    async def main() -> list[str]:
        try:
            return await finalised_after_aclose(lambda: s.astream(p, model=MODEL, append=[USER]))
        finally:
            await p.aclose()

    finalised = asyncio.run(main())
    assert finalised == []
    assert srv.wait_streams_closed()
    assert [r["status"] for r in s.calls()] == ["cancelled"]
    assert [e.status for e in s.entries()] == [None, "cancelled"]
