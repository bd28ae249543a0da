"""``Server-Timing`` on every gateway response: the gateway's time and the upstream's.

``gateway;dur=`` is the milliseconds from the moment the request reached the app to the
moment its response head was sent (authentication, the body read and parsed, the store,
assembly, the upstream call, the reply rendered); ``upstream;dur=`` is the part of it
spent in calls to the upstream (from sending each request until its reply was read,
retries included), present on responses that called one and were not streamed. The
difference is the gateway's overhead as the gateway itself sees it; a client adds its
own hop to the gateway (``python -m srt.bench --workload gateway`` reports both).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["UPSTREAM_KEY", "ServerTiming", "UpstreamClock"]

#: Where a handler leaves the upstream seconds of its request (``request.state``).
UPSTREAM_KEY = "srt_upstream_s"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class UpstreamClock:
    """Seconds spent in upstream calls by the current thread since its last ``start``."""

    def __init__(self) -> None:
        self._local = threading.local()

    def start(self) -> None:
        self._local.seconds = 0.0

    def add(self, seconds: float) -> None:
        self._local.seconds = getattr(self._local, "seconds", 0.0) + seconds

    def seconds(self) -> float:
        return float(getattr(self._local, "seconds", 0.0))


class ServerTiming:
    """ASGI middleware adding the ``Server-Timing`` header (see the module's doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        state: dict[str, Any] = scope.setdefault("state", {})

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                parts = [f"gateway;dur={(time.perf_counter() - t0) * 1000.0:.3f}"]
                up = state.get(UPSTREAM_KEY)
                if up is not None:
                    parts.append(f"upstream;dur={up * 1000.0:.3f}")
                timing = (b"server-timing", ", ".join(parts).encode())
                message = {**message, "headers": [*message.get("headers", ()), timing]}
            await send(message)

        await self.app(scope, receive, timed)
