"""A provider's ``close()`` and ``aclose()``: every connection it made is closed, the
asyncio pool's included, and a closed provider sends nothing, with a typed error."""

from __future__ import annotations

import asyncio
import gc
import warnings
from pathlib import Path

import pytest

import srt
from srt.testing import ProviderServer

KEY = "sk-srt-provider-close"


def _ask(i: int) -> dict[str, str]:
    return {"role": "user", "content": f"question {i}"}


@pytest.mark.parametrize("closing", ["close", "aclose"])
def test_a_closed_provider_sends_nothing_and_says_so(tmp_path: Path, closing: str) -> None:
    with ProviderServer(api_key=KEY) as srv, srt.Runtime(str(tmp_path / "c.db")) as rt:
        p = srt.OpenAI(api_key=KEY, base_url=srv.url + "/v1")
        s = rt.session("c")
        s.send(p, model="gpt-4o-mini", append=_ask(0))
        if closing == "close":
            p.close()
        else:
            asyncio.run(p.aclose())
        before, sent, rows = s.messages(), len(srv.requests), len(rt.calls())

        async def in_asyncio() -> None:
            with pytest.raises(srt.ProviderError, match="was closed"):
                await s.asend(p, model="gpt-4o-mini", append=_ask(3))
            with pytest.raises(srt.ProviderError, match="was closed"):
                await s.astream(p, model="gpt-4o-mini", append=_ask(4)).text()

        with pytest.raises(srt.ProviderError, match="was closed"):
            s.send(p, model="gpt-4o-mini", append=_ask(1))
        with pytest.raises(srt.ProviderError, match="was closed"):
            s.stream(p, model="gpt-4o-mini", append=_ask(2)).text()
        asyncio.run(in_asyncio())
        assert s.messages() == before  # nothing appended
        assert len(srv.requests) == sent  # nothing sent
        failed = rt.calls()[rows:]  # (the ledger keeps a failed call's row, as for any error)
        assert [r["status"] for r in failed] == ["error"] * 4
        assert all("was closed" in r["error"] for r in failed)
        assert srv.errors == []


def test_close_closes_the_asyncio_pools_connections_too(tmp_path: Path) -> None:
    """A provider used from ``asyncio.run`` and then closed with the sync ``close()`` (the
    loop is gone by then) left its asyncio pool's kept-alive socket open, for the
    collector to find: "ResourceWarning: unclosed socket"."""
    with ProviderServer(api_key=KEY) as srv, srt.Runtime(str(tmp_path / "a.db")) as rt:
        p = srt.OpenAI(api_key=KEY, base_url=srv.url + "/v1")
        s = rt.session("a")

        async def turn(provider: srt.OpenAI, i: int) -> str:
            return await s.astream(provider, model="gpt-4o-mini", append=_ask(i)).text()

        for i in range(2):
            assert asyncio.run(turn(p, i))
        s.send(p, model="gpt-4o-mini", append=_ask(2))
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            p.close()
            del p
            gc.collect()
        assert [str(w.message) for w in seen if w.category is ResourceWarning] == []
        assert srv.errors == []
