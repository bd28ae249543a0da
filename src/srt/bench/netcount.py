"""An httpx transport that counts what reaches the socket, for the ``send`` workload.

It is the transport srt's providers use by default (``srt.providers.sendall``: httpx's
own HTTP/1.1 path, writing with ``sendall``), told of every ``write()`` the HTTP layer
makes on a socket, with its size. h11 hands the stream one write for the request head
and one for each piece of the body it is given, so the count is how many pieces a body
reached the socket in.
"""

from __future__ import annotations

from ..providers.sendall import HTTPTransport, SendallBackend

__all__ = ["CountingTransport", "Writes"]


class Writes:
    """Socket writes so far (calls and bytes), shared by every stream of a pool."""

    __slots__ = ("bytes", "calls")

    def __init__(self) -> None:
        self.calls = 0
        self.bytes = 0

    def add(self, size: int) -> None:
        self.calls += 1
        self.bytes += size


class CountingTransport(HTTPTransport):
    """srt's default HTTP/1.1 transport, counting socket writes in ``writes``."""

    def __init__(self) -> None:
        self.writes = Writes()
        super().__init__(network_backend=SendallBackend(on_write=self.writes.add))
