"""The drivers of a provider call: the I/O around ``exchange.Call``, the same few lines
sync (``send``, ``ReplyStream``) and async (``asend``, ``AsyncReplyStream``).

Every decision (the body, retries after a lost server-side response, the ledger row,
what a stream that ends early leaves) is ``Call``'s; these only open the request, feed
the reply to it and end it.
"""

from __future__ import annotations

import contextlib
import sys
import weakref
from _thread import get_ident
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
)
from typing import TYPE_CHECKING, Any, TypeVar

from ._types import Reply
from .errors import ConfigError, ConflictError, ProviderError
from .exchange import Call

if TYPE_CHECKING:
    from ._chain import Chain
    from .providers.transport import AsyncResponse, Response

__all__ = ["AsyncReplyStream", "ReplyStream", "asend", "send"]

T = TypeVar("T")


def _open(call: Call) -> tuple[Response, Reply | None]:
    call.build()
    stop = None
    if call.stream:  # (``cancel()`` from another thread stops the wait for the head)
        from .providers.http1 import Stop

        stop = call.stop = Stop()
        if call.cancelled:  # (cancelled as the stop was made: ``Call.cancel`` saw none)
            stop.stop()
    while True:
        try:
            req = call.next_request()
            req.stop = stop
            resp = call.provider.transport.open(req)
            call.opened(resp)
            return resp, None if call.stream else call.received(resp.read())
        except ProviderError as exc:
            if call.cancelled:  # (stopped before its head: the row of a cancel, if it went)
                call.interrupted(GeneratorExit("ReplyStream.cancel()"))
                raise
            if call.recover(exc):
                continue
            raise
        except BaseException as exc:  # (Ctrl-C: a body that went out keeps its ledger row)
            call.interrupted(exc)
            raise


async def _aopen(call: Call) -> tuple[AsyncResponse, Reply | None]:
    call.build()
    while True:
        try:
            resp = await call.provider.async_transport.open(call.next_request())
            call.opened(resp)
            return resp, None if call.stream else call.received(await resp.read())
        except ProviderError as exc:
            if call.recover(exc):
                continue
            raise
        except BaseException as exc:  # (cancelled: a body that went out keeps its ledger row)
            call.interrupted(exc)
            raise


def send(call: Call) -> Reply:
    try:
        _resp, reply = _open(call)
        assert reply is not None
        return call.persist(reply, "ok")
    finally:
        call.abandon()


class _Turn:
    """The asyncio call in flight on a session's chain (its handle and any handle that
    takes its state over): the next one waits for it to end (``_turn``)."""

    __slots__ = ("lock", "loop", "owner")

    def __init__(self, loop: Any) -> None:
        import asyncio

        self.loop = loop
        self.lock = asyncio.Lock()
        self.owner: Any = None  # the task in the call


_TURNS: weakref.WeakKeyDictionary[Chain, _Turn] = weakref.WeakKeyDictionary()
#: An event loop -> the asyncio calls in flight on it (waiting for their turn or in it).
_IN_FLIGHT: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
#: A remote store -> (the process id, the thread its asyncio persists run in: ``_writer``).
_WRITERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def _turn(call: Call) -> AsyncIterator[None]:
    """One asyncio call at a time on ``call``'s session handle: a second task's call
    waits until the first's reply is stored (or it failed, or was cancelled), then builds
    on the history as it left it. The same task calling again inside its own call (a
    send while its stream is open) would wait for itself: ``ConflictError`` instead."""
    asyncio = sys.modules["asyncio"]
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    turn = _TURNS.get(call.chain)
    if turn is None or (turn.loop is not loop and not turn.lock.locked()):
        turn = _TURNS[call.chain] = _Turn(loop)
    if turn.owner is task and task is not None:
        raise ConflictError(
            "this task already has a call in flight on this session handle (an open "
            "stream?): end it first, or use another handle"
        )
    _IN_FLIGHT[loop] = _IN_FLIGHT.get(loop, 0) + 1
    try:
        async with turn.lock:
            turn.owner = task
            try:
                yield
            finally:
                turn.owner = None
    finally:
        _IN_FLIGHT[loop] -= 1


def _writer(store: Any) -> Any:
    """The one thread a remote store's asyncio persists run in, in turn, as they did on
    the loop (more threads took turns at the GIL with the loop: on 2 cores, six of them
    raised a turn's p99 by half; docs/api.md)."""
    import os

    found = _WRITERS.get(store)
    if found is None or found[0] != os.getpid():  # (a forked child has no such thread)
        from concurrent.futures import ThreadPoolExecutor

        found = _WRITERS[store] = (os.getpid(), ThreadPoolExecutor(1, "srt-persist"))
    return found[1]


def stop_writer(store: Any) -> None:
    """Stop the writer thread of ``store`` (which is closing), once its persists in hand
    are done; the next asyncio persist on it starts one again."""
    found = _WRITERS.pop(store, None)
    if found is not None:
        import threading

        # (from the writer thread itself it cannot wait for itself: it ends after this)
        found[1].shutdown(wait=not threading.current_thread().name.startswith("srt-persist"))


async def _off_loop(call: Call, fn: Callable[[], T]) -> T:
    """``fn()`` (storing the reply): in the store's writer thread where its writes wait
    on a server (``Store.remote``) and other calls are in flight on this loop, which then
    runs them meanwhile; else here (a thread's hand-over costs about 0.5 ms on a busy
    2-core machine, more than it frees when nothing else waits). A task cancelled while
    the thread writes waits for the write to finish, so the handle and the store agree,
    then is cancelled: a commit cannot be called back once sent."""
    asyncio = sys.modules["asyncio"]  # (running: imported; ``import srt`` does not pay for it)
    loop = asyncio.get_running_loop()
    store = call.chain.store
    if not store.remote or _IN_FLIGHT.get(loop, 0) < 2:
        return fn()
    import contextvars

    done = loop.run_in_executor(_writer(store), contextvars.copy_context().run, fn)
    try:
        got: T = await asyncio.shield(done)
        return got
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await done
        raise


async def asend(call: Call, before: Callable[[], Awaitable[object]] | None = None) -> Reply:
    """``call`` sent and its reply persisted; ``before`` is awaited first (an automatic
    compaction), in the handle's turn (``_turn``)."""
    async with _turn(call):
        if before is not None:
            await before()
        try:
            _resp, reply = await _aopen(call)
            assert reply is not None
            return await _off_loop(call, lambda: call.persist(reply, "ok"))
        finally:
            call.abandon()


class _Stream:
    def __init__(self, call: Call) -> None:
        self._call = call

    @property
    def reply(self) -> Reply | None:
        """The final reply, or the partial one a cut, failed or closed stream kept."""
        return self._call.reply

    @property
    def status(self) -> str | None:
        return self._call.status

    @property
    def leading(self) -> list[dict[str, Any]]:
        """Output items the upstream finished before its text (a Responses upstream's
        reasoning items, as it sent them); none before the stream began."""
        decoder = self._call.decoder
        return list(decoder.leading) if decoder is not None else []


class ReplyStream(_Stream):
    """Iterate to receive text deltas; the reply is persisted when the stream ends.

    ``close()`` (or leaving a ``with`` block early) cancels it; what arrived is
    stored with status ``cancelled``. ``reply`` holds the final (or partial) reply.
    ``cancel()`` does the same from another thread, while one iterates it; so does
    ``close()`` called from a thread other than the one iterating.
    """

    def __init__(self, call: Call) -> None:
        super().__init__(call)
        self._gen: Generator[str, None, None] | None = None

    def __iter__(self) -> Generator[str, None, None]:
        if self._gen is None:
            # (a function of the call, as ``_astream`` is: a generator whose frame held
            # this stream, which holds the generator, is a cycle, and a stream dropped
            # unfinished then kept its socket open until the cyclic collector ran)
            self._gen = _stream(self._call)
        return self._gen

    # (No ``__aiter__`` refusing ``async for``, as ``AsyncReplyStream.__iter__`` refuses
    # ``for``: it would make this an ``AsyncIterable``, and Starlette's
    # ``StreamingResponse(s.stream(...))``, which iterates a plain iterable in threads,
    # and Django's, would take it for an async one and fail.)

    def close(self) -> None:
        """End the stream now (from the thread iterating it, or before it began); from
        another thread, while one iterates it, this is ``cancel()``: a generator cannot be
        closed while another thread runs it ("generator already executing"), nor safely
        between its steps, and that thread's loop then ends as at the stream's end."""
        gen = self._gen
        if gen is None:
            return
        reader = self._call.reader
        if getattr(gen, "gi_running", False) or (reader is not None and reader != get_ident()):
            self.cancel()
            return
        gen.close()

    def cancel(self) -> None:
        """Stop the stream from any thread (``close()`` is for the thread iterating it):
        a read blocked on the provider returns at once, even when the provider sends only
        keep-alives, and the iterating thread's loop then ends as at the stream's end,
        with ``status`` ``cancelled`` and what arrived stored so, with its ledger row. A
        stream not begun yet sends nothing; one that already ended is left as it ended."""
        self._call.cancel()

    def __enter__(self) -> ReplyStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def text(self) -> str:
        """Consume the whole stream and return its text."""
        return "".join(self)


def _stream(call: Call) -> Generator[str, None, None]:
    """``ReplyStream``'s deltas: open, feed, end the stream (the reply stored); a
    ``cancel()`` from another thread aborts the body, which then ends here early."""
    call.reader = get_ident()  # (``close()`` from another thread is ``cancel()``)
    if call.cancelled:  # (cancelled before it began: nothing is sent)
        call.status = "cancelled"
        call.abandon()
        return
    try:
        resp, _ = _open(call)
    except BaseException as exc:
        call.abandon()
        if call.cancelled and isinstance(exc, ProviderError):  # (``cancel()`` before the head)
            call.status = "cancelled"
            return
        raise
    chunks = resp.iter_bytes()
    try:
        for chunk in chunks:
            yield from call.feed(chunk)
        stopped = call.cancelled and not (call.decoder is not None and call.decoder.done)
        if not stopped:
            call.check_done()
    except BaseException as exc:
        try:
            chunks.close()  # (closed here, before the partial reply is stored)
            resp.close()
        finally:
            call.end_stream(exc)
        raise
    call.end_stream(GeneratorExit("ReplyStream.cancel()") if stopped else None)


class AsyncReplyStream(_Stream):
    """The asyncio twin of ``ReplyStream``: ``async for delta in s.astream(...)``.

    ``before`` is awaited before the request is built (an automatic compaction).
    ``aclose()`` (or leaving an ``async with`` block early) ends it; what arrived is
    stored with status ``cancelled``, with its ledger row. ``cancel()`` does the same
    from another task or another thread, while one iterates it (so does ``aclose()``
    from another task): that task's loop then ends as at the stream's end."""

    def __init__(self, call: Call, before: Callable[[], Awaitable[object]] | None = None) -> None:
        super().__init__(call)
        self._before = before
        self._gen: AsyncGenerator[str, None] | None = None
        self._reader = _Reader()

    def __aiter__(self) -> AsyncGenerator[str, None]:
        if self._gen is None:
            # (a function of the call, not a method: a generator whose frame held this
            # stream, which holds the generator, is a cycle, and the collector runs the
            # finalisers of everything only that cycle holds, the response's socket's
            # included, before the loop's hook closes the generator: an abandoned
            # stream's socket then warned "unclosed")
            self._gen = _astream(self._call, self._before, self._reader)
        return self._gen

    def __iter__(self) -> Iterator[str]:
        """Refused: this stream is asyncio's (nothing is sent)."""
        raise ConfigError(
            "astream() is iterated with async for; for a plain for loop, call s.stream(...) instead"
        )

    async def aclose(self) -> None:
        """End the stream now (from the task iterating it, or before it began); from
        another task, while one iterates it, this is ``cancel()`` (an async generator
        cannot be closed while another task runs it: "already running")."""
        gen = self._gen
        if gen is None:
            return
        if getattr(gen, "ag_running", False):  # (another task is in it)
            self.cancel()
            return
        await gen.aclose()

    def cancel(self) -> None:
        """Stop the stream from another task or any thread (``aclose()`` is for the task
        iterating it): a read blocked on the provider returns at once, even when the
        provider sends only keep-alives or has not sent its head, and the iterating
        task's loop then ends as at the stream's end, with ``status`` ``cancelled`` and
        what arrived stored so, with its ledger row (the row alone if no head came). A
        stream not begun yet sends nothing; one that already ended is left as it ended."""
        self._call.cancelled = True
        self._reader.interrupt()

    async def __aenter__(self) -> AsyncReplyStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def text(self) -> str:
        return "".join([d async for d in self])


class _Reader:
    """The task iterating an ``AsyncReplyStream`` and where it is, for ``cancel()``: the
    task is cancelled (the pool then closes the connection it holds) only while it
    awaits inside the stream, never while it holds a delta (its own code runs then:
    the stream ends at its next step instead); the stream takes that cancellation back
    (``stopped``) and ends as at its end."""

    __slots__ = ("done", "interrupted", "loop", "parked", "task")

    def __init__(self) -> None:
        self.loop: Any = None
        self.task: Any = None
        self.parked = False  # the task holds a delta (the generator is at a ``yield``)
        self.done = False
        self.interrupted = False  # the task was cancelled by ``cancel()``

    def interrupt(self) -> None:
        """From any thread: the iterating task cancelled, on its loop's thread."""
        loop = self.loop
        if loop is None or self.done:
            return
        try:
            here = sys.modules["asyncio"].get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            self._interrupt()
            return
        with contextlib.suppress(RuntimeError):  # (the loop closed: the stream ended)
            loop.call_soon_threadsafe(self._interrupt)

    def _interrupt(self) -> None:
        if self.done or self.parked or self.interrupted or self.task is None:
            return
        self.interrupted = True
        self.task.cancel()

    def stopped(self, exc: BaseException) -> bool:
        """``exc`` is the cancellation ``cancel()`` made, and nothing else cancelled the
        task: it is taken back (``Task.uncancel``), and the stream ends as at its end."""
        asyncio = sys.modules["asyncio"]
        if not (self.interrupted and isinstance(exc, asyncio.CancelledError)):
            return False
        self.interrupted = False
        uncancel = getattr(self.task, "uncancel", None)  # (3.11: Python 3.10 counts none)
        return uncancel is None or uncancel() == 0


async def _astream(
    call: Call, before: Callable[[], Awaitable[object]] | None, rd: _Reader
) -> AsyncGenerator[str, None]:
    """``AsyncReplyStream``'s deltas: open (after ``before``), feed, end the stream, in
    the handle's turn (``_turn``) until the reply is stored. ``cancel()`` cancels the
    task while it awaits here (``_Reader``); the stream takes that back and ends."""
    asyncio = sys.modules["asyncio"]
    if call.cancelled:  # (cancelled before it began: nothing is sent)
        call.status = "cancelled"
        return
    rd.loop, rd.task = asyncio.get_running_loop(), asyncio.current_task()
    try:
        async with _turn(call):
            if call.cancelled:  # (while it waited for its turn, before the task was known)
                call.status = "cancelled"
                return
            try:
                if before is not None:
                    await before()
                resp, _ = await _aopen(call)
            except BaseException:
                call.abandon()
                raise
            chunks = resp.aiter_bytes()
            stopped = False
            try:
                async for chunk in chunks:
                    for delta in call.feed(chunk):
                        rd.parked = True
                        yield delta
                        rd.parked = False
                        rd.task = asyncio.current_task()
                    assert call.decoder is not None
                    if call.cancelled and not call.decoder.done:  # (while it held a delta)
                        stopped = True
                        break
                if not stopped:
                    call.check_done()
            except BaseException as exc:
                rd.parked = False
                try:
                    await chunks.aclose()  # (closed here, not left to the collector and a task)
                    await resp.aclose()
                finally:
                    call.end_stream(exc)
                raise
            if stopped:
                await chunks.aclose()
                await resp.aclose()
                await _off_loop(call, lambda: call.end_stream(GeneratorExit("cancel()")))
                return
            await _off_loop(call, lambda: call.end_stream(None))
    except BaseException as exc:
        if call.status is None and isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
            call.status = "cancelled"  # (before its body went out: nothing was stored)
        if not rd.stopped(exc):
            raise
    finally:
        rd.done = True
