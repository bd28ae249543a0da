"""An httpx transport that counts what reaches the socket, for the ``send`` workload.

It is the transport srt's providers use by default over HTTP/1.1 (``srt.providers.pool``),
told of every write it makes on a socket, with its size: one for the request head and
one for each chunk of the body, so the count is how many pieces a body reached the
socket in.
"""

from __future__ import annotations

from ..providers.pool import Pool

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


class CountingTransport(Pool):
    """srt's default HTTP/1.1 transport, counting socket writes in ``writes``."""

    def __init__(self) -> None:
        self.writes = Writes()
        super().__init__(on_write=self.writes.add)
