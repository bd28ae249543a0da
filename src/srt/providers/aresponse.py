"""``AsyncResponse``: a 2xx response of ``AsyncTransport`` whose body has not been read
yet, and the timeouts of its reads (apart from ``transport.py``, which re-exports it, to
keep that module under 600 lines).

The body of srt's asyncio pool (``apool.py``) is read directly: each read there ends
after the idle timeout or at the call's deadline, whichever comes first, so no timer is
added here. A body from elsewhere (a caller's client, a proxy, a decoded body) is read
through httpx, each chunk under ``asyncio.wait_for`` when the idle timeout is not
already in its reads or the total cap is near.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Iterator
from typing import Protocol

import httpx

from ..errors import ProviderTimeoutError, StreamInterruptedError
from .apool import AsyncResponseStream
from .policy import redact


class _Request(Protocol):
    """What a response needs of its request (``transport.HTTPRequest``)."""

    secrets: tuple[str, ...]  # values to scrub from any error text


__all__ = ["AsyncResponse"]


class AsyncResponse:
    """A 2xx response whose body has not been read yet (asyncio)."""

    def __init__(
        self,
        resp: httpx.Response,
        req: _Request,
        deadline: float,
        retries: int,
        idle: float,
        idle_in_reads: bool = False,
    ) -> None:
        self.status = resp.status_code
        self.headers = resp.headers
        self.retries = retries
        self._resp = resp
        # srt's asyncio pool's body, when it needs no decoding and its reads end at the
        # deadline: read directly, with no timer of its own (nor httpx's generators).
        raw = resp.stream
        ok = isinstance(raw, AsyncResponseStream) and raw.identity and raw.deadline is not None
        self._raw = raw if isinstance(raw, AsyncResponseStream) and ok else None
        self._req = req
        self._deadline = deadline
        self._idle = idle
        # True: each network read already times out after ``idle`` (srt's own client), so
        # a chunk needs a timer only near the total cap. A timer per chunk
        # (``asyncio.wait_for``: a task each) cost about 60 us a chunk, 11 ms a streamed
        # reply of 185 events.
        self._idle_in_reads = idle_in_reads

    def _timed_out(self) -> ProviderTimeoutError:
        if time.monotonic() >= self._deadline - 0.01:
            return ProviderTimeoutError(
                "the call passed its total time cap while reading the response"
            )
        return ProviderTimeoutError(f"no data for {self._idle} s while reading the response")

    def _cut(self, exc: httpx.HTTPError) -> StreamInterruptedError:
        return StreamInterruptedError(
            f"the response was cut off: {type(exc).__name__}: {redact(str(exc), self._req.secrets)}"
        )

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """httpx's errors while reading srt's pool's stream, as srt's."""
        try:
            yield
        except httpx.TimeoutException as exc:
            raise self._timed_out() from exc
        except httpx.HTTPError as exc:
            raise self._cut(exc) from exc

    async def aiter_bytes(self) -> AsyncGenerator[bytes, None]:
        if self._raw is not None:
            chunks = self._raw.__aiter__()
            try:
                with self._translated():
                    async for chunk in chunks:
                        if chunk:
                            yield chunk
            finally:
                try:
                    await chunks.aclose()  # (not left to the loop's finaliser hook)
                finally:
                    await self._resp.aclose()
            return
        it = self._resp.aiter_bytes().__aiter__()
        try:
            while True:
                remaining = self._deadline - time.monotonic()
                if remaining <= 0:
                    raise ProviderTimeoutError(
                        "the call passed its total time cap while reading the response"
                    )
                try:
                    if self._idle_in_reads and remaining > self._idle:
                        chunk = await it.__anext__()
                    else:
                        chunk = await asyncio.wait_for(it.__anext__(), min(self._idle, remaining))
                except StopAsyncIteration:
                    return
                except (asyncio.TimeoutError, httpx.TimeoutException) as exc:
                    raise self._timed_out() from exc
                except httpx.HTTPError as exc:
                    raise self._cut(exc) from exc
                if chunk:
                    yield chunk
        finally:
            await self._resp.aclose()

    async def read(self) -> bytes:
        raw = self._raw
        if raw is None:
            return b"".join([c async for c in self.aiter_bytes()])
        try:
            with self._translated():
                return await raw.aread()
        finally:
            await self._resp.aclose()

    async def aclose(self) -> None:
        await self._resp.aclose()
