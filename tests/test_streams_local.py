"""An ``astream`` on the ``local`` provider (a real llama.cpp server and SmolLM2, as in
tests/test_local.py) ended early: every async generator of srt's under it is closed
by srt, none left to the event loop's finaliser hook (which closes it later, in a task
of its own, or warns when the loop is gone)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import srt
from srt.providers.local import LocalProvider
from support import finalised_after_aclose, local_model

USER = {"role": "user", "content": "Name three garden plants."}


def test_astream_closed_early_leaves_no_generator_to_the_loop(
    rt: srt.Runtime, tmp_path: Path
) -> None:
    """``aclose()`` after the first delta: the loop's finaliser hook is handed no
    async generator of srt's (before, ``_TapAsyncResponse.aiter_bytes`` left the
    transport's byte generator to it), the partial reply is stored ``cancelled`` with
    its ledger row, and the cut call is not counted among the provider's calls."""
    provider = LocalProvider(
        local_model(), ctx_size=1024, slots=1, threads=1, state_dir=str(tmp_path / "slots")
    ).start()
    s = rt.session("a")
    before = len(provider.calls)

    async def main() -> list[str]:
        try:
            return await finalised_after_aclose(
                lambda: s.astream(provider, model=provider.model_name, append=[USER], max_tokens=48)
            )
        finally:
            await provider.aclose()  # (the server too: its async client is this loop's)

    try:
        finalised = asyncio.run(main())
    finally:
        provider.close()
    assert finalised == []
    assert [r["status"] for r in s.calls()] == ["cancelled"]
    assert [e.status for e in s.entries()] == [None, "cancelled"]
    assert len(provider.calls) == before
