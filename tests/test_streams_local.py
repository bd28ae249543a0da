"""An ``astream`` on the ``local`` provider (a real llama.cpp server and SmolLM2, as in
tests/test_local.py) ended early: every async generator of srt's under it is closed
by srt, none left to the event loop's finaliser hook (which closes it later, in a task
of its own, or warns when the loop is gone)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import srt
from srt.providers.local import LocalProvider
from support import local_model

USER = {"role": "user", "content": "Name three garden plants."}


SRT_DIR = str(Path(srt.__file__).parent)


def _srt_generator(agen: Any) -> bool:
    code = getattr(agen, "ag_code", None)
    return code is not None and code.co_filename.startswith(SRT_DIR)


def test_astream_closed_early_leaves_no_generator_to_the_loop(
    rt: srt.Runtime, tmp_path: Path
) -> None:
    """``aclose()`` after the first delta: the loop's finaliser hook is handed no
    async generator of srt's (before, ``_TapAsyncResponse.aiter_bytes`` left the
    transport's byte generator to it), the partial reply is stored ``cancelled`` with
    its ledger row, and the cut call is not counted among the provider's calls."""
    provider = LocalProvider(
        local_model(), ctx_size=1024, slots=1, threads=2, state_dir=str(tmp_path / "slots")
    ).start()
    s = rt.session("a")
    finalised: list[str] = []
    before = len(provider.calls)

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
            stream = s.astream(provider, model=provider.model_name, append=[USER], max_tokens=48)
            async for _ in stream:
                break
            await stream.aclose()
            for _ in range(5):  # a finaliser's task would run in these turns
                await asyncio.sleep(0)
        finally:
            await provider.aclose()  # (the server too: its async client is this loop's)

    try:
        asyncio.run(main())
    finally:
        provider.close()
    assert finalised == []
    assert [r["status"] for r in s.calls()] == ["cancelled"]
    assert [e.status for e in s.entries()] == [None, "cancelled"]
    assert len(provider.calls) == before
