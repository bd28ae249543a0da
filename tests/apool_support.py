"""What the async pool tests share (``test_async_pool``, ``test_async_pool_faults``,
``test_async_pool_tls``): generous timeouts, a case's own event loop, and one request
through a pool or a transport, read to its end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from srt._core import Body
from srt.providers.transport import AsyncTransport, HTTPRequest

_T = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}


def _run(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(main())


async def _post(pool: httpx.AsyncBaseTransport, url: str, content: Any = b"{}", **kw: Any) -> bytes:
    timeouts = kw.pop("timeouts", _T)
    req = httpx.Request("POST", url, content=content, extensions={"timeout": timeouts}, **kw)
    resp = await pool.handle_async_request(req)
    try:
        return await resp.aread()
    finally:
        await resp.aclose()


async def _open(transport: AsyncTransport, url: str, body: bytes | Body = b"{}") -> bytes:
    resp = await transport.open(HTTPRequest("POST", url, {}, body))
    return await resp.read()
