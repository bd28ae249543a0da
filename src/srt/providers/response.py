"""``Response``: a 2xx response of ``Transport`` whose body has not been read yet (sync),
and how its total cap is kept (apart from ``transport.py``, which re-exports it, to keep
that module under 600 lines; ``aresponse.py`` is its asyncio twin).

A body from srt's pool (``pool.py``) is read with each read ending at the call's
deadline (the socket's timeout is cut to the time left when that is less than the idle
timeout). The watchdog (``_watchdog.py``: one thread for every response) shuts the
socket of any body once the deadline has passed, a body from httpx's transports
included, so a read in progress there ends at most ``POLL_S`` late.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Protocol

import httpx

from ..errors import ProviderTimeoutError, StreamInterruptedError
from . import _watchdog
from .guard import Guarded
from .policy import redact
from .pool import ResponseStream

__all__ = ["SLACK", "Response", "past"]

#: How early a timeout may fire and still count as the call's deadline (a timer of the
#: event loop, a socket's poll, may end a little before the time asked).
SLACK = 0.01


def past(deadline: float) -> bool:
    """Whether ``deadline`` (a ``time.monotonic()``) has passed, within ``SLACK``."""
    return time.monotonic() >= deadline - SLACK


class _Request(Protocol):
    """What a response needs of its request (``transport.HTTPRequest``)."""

    secrets: tuple[str, ...]  # values to scrub from any error text


class Response:
    """A 2xx response whose body has not been read yet (sync)."""

    def __init__(
        self,
        resp: httpx.Response,
        req: _Request,
        deadline: float,
        retries: int,
        done: Callable[[], None] | None = None,
    ) -> None:
        self.status = resp.status_code
        self.headers = resp.headers
        self.retries = retries
        self._resp = resp
        # srt's own pool's body, when it needs no decoding: read directly, without
        # httpx's layers of generators over it (about 10 calls a chunk, a streamed event).
        stream = resp.stream
        self._raw = stream if isinstance(stream, ResponseStream) and stream.identity else None
        if not isinstance(stream, ResponseStream):  # (httpx's: see ``Guarded``)
            stream = resp.stream = Guarded(stream, resp)  # type: ignore[arg-type]
        #: What shuts the socket while the body holds its connection (``abort``).
        self._body: ResponseStream | Guarded = stream
        self._req = req
        self._deadline = deadline
        self._expired = False
        self.aborted = False
        self._done = done  # told once, when the response is closed
        self._watch = _watchdog.watch(self._expire, deadline)  # one thread for them all

    def abort(self) -> None:
        """Stop the body from any thread: a read in progress (an upstream sending only
        keep-alives) returns at once and ``iter_bytes`` ends without an error; the caller
        knows it stopped the body (``aborted``). The socket is shut only while the body
        still holds its connection (never once it is back in a pool, where it may be
        another call's by now), and never an HTTP/2 one's, which carries other calls'
        streams: that body ends at its next chunk (keep-alive)."""
        self.aborted = True
        if self._resp.http_version != "HTTP/2":
            self._body.abort()

    def _expire(self) -> None:
        """The call passed its total time cap: shut its socket, so a read in progress
        ends (the reader reports ProviderTimeoutError)."""
        self._expired = True
        self._body.abort()

    def iter_bytes(self) -> Generator[bytes, None, None]:
        """The raw body chunk by chunk; errors become ``StreamInterruptedError`` or
        ``ProviderTimeoutError``."""
        try:
            for chunk in self._raw if self._raw is not None else self._resp.iter_bytes():
                if self._expired or self.aborted:
                    break
                if chunk:
                    yield chunk
        except httpx.HTTPError as exc:
            if self.aborted:
                return  # (the caller stopped it: ``abort``)
            if self._expired or (isinstance(exc, httpx.TimeoutException) and past(self._deadline)):
                raise self._total_error() from exc
            if isinstance(exc, httpx.TimeoutException):
                raise ProviderTimeoutError(
                    f"no data for {self._req_idle()} s while reading the response"
                ) from exc
            raise StreamInterruptedError(
                f"the response was cut off: {type(exc).__name__}: "
                f"{redact(str(exc), self._req.secrets)}"
            ) from exc
        finally:
            self.close()
        if self._expired and not self.aborted:
            raise self._total_error()

    def _req_idle(self) -> str:
        if isinstance(self._resp.stream, ResponseStream):
            return str(self._resp.stream.read_timeout)
        t = self._resp.request.extensions.get("timeout", {})
        return str(t.get("read", "?"))

    def _total_error(self) -> ProviderTimeoutError:
        return ProviderTimeoutError("the call passed its total time cap while reading the response")

    def read(self) -> bytes:
        return b"".join(self.iter_bytes())

    def close(self) -> None:
        _watchdog.unwatch(self._watch)
        self._resp.close()
        done, self._done = self._done, None
        if done is not None:
            done()
