"""The local provider's tap on each reply: ``usage`` and ``timings`` read from the bytes
as the caller reads them (sync or async, streamed or not) and reported once to the
slot router (``Router.end``), with the reply's head (``Router.headed``).
``srt.providers.local`` wraps every response of its transports in one."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Generator
from typing import Any

from ..local.slots import Router, Ticket
from ..wire.sse import SSEDecoder
from .transport import AsyncResponse, HTTPRequest, Response

__all__: list[str] = []


class _Tap:
    """Collects ``usage`` and ``timings`` from one reply and reports them once."""

    def __init__(self, router: Router, req: HTTPRequest, begun: Ticket | None) -> None:
        """``begun``: what ``Server.prepare`` answered (the request has started)."""
        self._router = router
        self._slot = getattr(req, "slot", None)
        self._sse = SSEDecoder() if req.stream else None
        self._buf: list[bytes] = []
        self._data: dict[str, Any] = {}
        self._done = False
        self._headed = False
        self._begun = begun

    def headed(self) -> None:
        """The reply's head came (``Router.headed``: once)."""
        if not self._headed:
            self._headed = True
            self._router.headed(self._slot)

    def rebegin(self, begun: Ticket | None) -> None:
        """The request is sent again to a new server (``_revive``), started as ``begun``."""
        self.headed()
        self._router.end(self._slot, None, self._begun)  # (the old table's slot: no record)
        self._headed = False
        self._begun = begun

    def feed(self, chunk: bytes) -> None:
        if self._sse is None:
            self._buf.append(chunk)
            return
        for ev in self._sse.feed(chunk):
            if '"usage"' in ev.data or '"timings"' in ev.data:
                with contextlib.suppress(ValueError):
                    data = json.loads(ev.data)
                    for key in ("usage", "timings"):
                        if isinstance(data, dict) and data.get(key):
                            self._data[key] = data[key]

    def end(self, ok: bool) -> None:
        if self._done:
            return
        self._done = True
        self.headed()
        if ok and self._sse is None:
            with contextlib.suppress(ValueError):
                data = json.loads(b"".join(self._buf))
                if isinstance(data, dict):
                    self._data = data
        data = self._data if ok and self._data.get("usage") else None
        self._router.end(self._slot, data, self._begun)


class _TapResponse(Response):
    """A proxy for a ``Response`` that feeds its bytes to a ``_Tap`` (no own state)."""

    def __init__(self, inner: Response, tap: _Tap) -> None:
        self.status, self.headers, self.retries = inner.status, inner.headers, inner.retries
        self.aborted = False
        self._inner = inner
        self._tap = tap

    def iter_bytes(self) -> Generator[bytes, None, None]:
        ok = False
        chunks = self._inner.iter_bytes()
        try:
            for chunk in chunks:
                self._tap.feed(chunk)
                yield chunk
            ok = True
        finally:
            try:
                chunks.close()  # (now, not when the frame is freed)
            finally:
                self._tap.end(ok)

    def read(self) -> bytes:
        return b"".join(self.iter_bytes())

    def abort(self) -> None:
        """``Response.abort`` (a stream's ``cancel()`` from another thread), on the inner
        response: the proxy has no body of its own to stop."""
        self._inner.abort()
        self.aborted = True

    def close(self) -> None:
        self._inner.close()
        self._tap.end(False)


class _TapAsyncResponse(AsyncResponse):
    """The asyncio twin of ``_TapResponse``."""

    def __init__(self, inner: AsyncResponse, tap: _Tap) -> None:
        self.status, self.headers, self.retries = inner.status, inner.headers, inner.retries
        self._inner = inner
        self._tap = tap

    async def aiter_bytes(self) -> AsyncGenerator[bytes, None]:
        ok = False
        chunks = self._inner.aiter_bytes()
        try:
            async for chunk in chunks:
                self._tap.feed(chunk)
                yield chunk
            ok = True
        finally:
            try:
                # (closed here: an async generator left unfinished is otherwise closed
                # by the loop's finaliser hook, in a task of its own, some time later)
                await chunks.aclose()
            finally:
                self._tap.end(ok)

    async def read(self) -> bytes:
        return b"".join([c async for c in self.aiter_bytes()])

    async def aclose(self) -> None:
        await self._inner.aclose()
        self._tap.end(False)
