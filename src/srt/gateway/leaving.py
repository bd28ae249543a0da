"""A streamed request whose client leaves before its first byte.

A stream's first bytes wait for the upstream's first answer (a refusal before it, such as
a prompt over the model's window, is then the HTTP error it is on OpenAI's own server).
Until they are sent, writing cannot tell that the client went: only the request's own
channel does (ASGI's ``http.disconnect``). ``first_or_gone`` waits for both, so a worker
on an upstream that sends nothing but keep-alives is stopped when its client leaves, not
at the call's total cap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Receive

__all__ = ["GONE", "first_or_gone", "gone_response"]

#: ``first_or_gone``'s answer when the client left before the first item.
GONE = object()


async def first_or_gone(
    queue: asyncio.Queue[Any], receive: Receive, gone: Callable[[], Any]
) -> Any:
    """The first item of ``queue``; ``GONE``, after calling ``gone`` (which stops the
    worker), if the client leaves first. An item that is there when it leaves wins."""
    get = asyncio.ensure_future(queue.get())
    left = asyncio.ensure_future(_disconnected(receive))
    try:
        done, _ = await asyncio.wait((get, left), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (get, left):
            task.cancel()  # (a finished one: nothing happens)
    if get in done:
        return get.result()
    gone()
    return GONE


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def gone_response() -> Response:
    """What answers a request whose client left (nginx's 499: no one reads it)."""
    return Response(status_code=499)
