"""The ASGI app (Starlette): routes, API keys and tenants, limits, errors, streaming.

Handlers read and check the request, then run the blocking work (store and upstream
calls) in a thread pool and answer JSON, or server-sent events for ``stream: true``.
Every error is an OpenAI error object with its status; an unexpected exception is
logged with its traceback and answered as a bare 500.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import SrtError
from ..runtime import Runtime
from . import chat, orphans
from .config import Config
from .conversations import Conversations
from .errors import ApiError, error_event, from_exception
from .events import encode
from .leaving import GONE, first_or_gone, gone_response
from .params import parse_create, parse_json
from .query import parse_include, parse_list, parse_none, parse_retrieve
from .records import hash_key, new_id
from .service import Gateway, Stop
from .slots import Slots
from .texts import SWEEP_S
from .timing import UPSTREAM_KEY, ServerTiming
from .values import object_id

__all__ = ["build"]

log = logging.getLogger("srt.gateway")
_KEY_TTL_S = 60.0
_DONE = object()


class _Limiter:
    """Requests per minute per API key: a sliding window of request times."""

    def __init__(self) -> None:
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str, per_minute: int) -> None:
        now = time.monotonic()
        with self._lock:
            q = self._seen.setdefault(key, deque())
            while q and q[0] <= now - 60.0:
                q.popleft()
            if len(q) >= per_minute:
                wait = max(1, int(q[0] + 60.0 - now) + 1)
                raise ApiError(
                    429,
                    f"Rate limit reached: {per_minute} requests per minute for this key.",
                    code="rate_limit_exceeded",
                    headers={"retry-after": str(wait)},
                )
            q.append(now)


class State:
    """What the handlers share: the gateway, the thread pool, the key cache."""

    def __init__(self, config: Config, runtime: Runtime, *, owns_runtime: bool = False) -> None:
        self.config = config
        self._owns_runtime = owns_runtime
        self.gw = Gateway(config, runtime)
        self.conversations = Conversations(self.gw)
        self.pool = ThreadPoolExecutor(config.threads, thread_name_prefix="srt-gateway")
        #: Background runs, each on a thread of its own while it waits for a slot of
        #: ``pool`` (``slots``) and while it holds one: answered ``queued`` at once.
        self.waiting = ThreadPoolExecutor(
            config.threads + config.background_queue, thread_name_prefix="srt-gateway-bg"
        )
        #: Cancels, off ``pool``: a cancel never waits for a slot (it is what frees one).
        self.aside = ThreadPoolExecutor(config.threads, thread_name_prefix="srt-gateway-cancel")
        self.slots = self.gw.slots = Slots(self.pool, config.background_queue)
        self.limiter = _Limiter()
        self._keys: dict[str, tuple[str | None, float]] = {}
        self._beat_stop = threading.Event()
        self._beat = threading.Thread(target=self._beats, daemon=True, name="srt-gateway-beat")
        self._started = False
        self._closed = False
        self._start_lock = threading.Lock()

    def start(self, lifespan: bool = False) -> None:
        """Start the worker's heartbeat (once): at the app's lifespan start, or at its
        first request when it runs without one (mounted in another app, whose lifespan
        Starlette does not pass on to mounted apps). Without a lifespan to end it, an app
        that opened its own runtime closes it when the interpreter exits."""
        with self._start_lock:
            if self._started or self._beat_stop.is_set():
                return
            self._started = True
        if not lifespan and self._owns_runtime:
            atexit.register(self._close_at_exit)
        self.gw.records.beat()
        self._beat.start()

    def _beats(self) -> None:
        gc_s = self.config.gc_minutes * 60.0
        every = min(SWEEP_S, gc_s) if gc_s else SWEEP_S  # (each sweep's lease: its own)
        sweep = time.monotonic() + every  # one worker an interval
        while not self._beat_stop.wait(5.0):
            with contextlib.suppress(Exception):
                self.gw.records.beat()
            if time.monotonic() >= sweep:
                sweep = time.monotonic() + every
                self.sweep()

    def sweep(self) -> None:
        """The sweeps, each by the worker that takes its lease: the texts, then the
        threads, no live record names (``texts``, ``orphans``, hourly), then the nodes
        and messages nothing reaches any more (``gc``, every ``gc_minutes``; the
        deleted and expired threads' history); a failure is logged."""
        try:
            self.gw.records.sweep_texts()
        except Exception:
            log.warning("collecting texts failed", exc_info=True)
        try:
            orphans.sweep(self.gw.rt.store)
        except Exception:
            log.warning("collecting threads failed", exc_info=True)
        if self.config.gc_minutes:
            try:
                orphans.sweep_store(self.gw.rt, self.config.gc_minutes * 60.0)
            except Exception:
                log.warning("collecting nodes and messages failed", exc_info=True)

    def close(self) -> None:
        with self._start_lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self._close_at_exit)
        self._beat_stop.set()
        self.slots.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.waiting.shutdown(wait=False, cancel_futures=True)
        self.aside.shutdown(wait=False, cancel_futures=True)
        self.gw.close()
        if self._owns_runtime:
            self.gw.rt.close()  # a SQLite store gives the heap's unused end back

    def _close_at_exit(self) -> None:
        with contextlib.suppress(Exception):  # the interpreter is going: nothing to tell
            self.close()

    async def run(self, fn: Callable[..., Any], *args: Any, aside: bool = False) -> Any:
        """``fn(*args)`` on a thread of the pool (a worker slot), or with ``aside`` on one
        of ``aside``'s (a cancel: it must not wait for a slot while every slot is busy)."""
        pool = self.aside if aside else self.pool
        if not self._started:
            await asyncio.get_running_loop().run_in_executor(pool, self.start)
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def tenant(self, request: Request, *, aside: bool = False) -> str:
        """The tenant of the request's API key (401 without a valid one), rate-limited;
        a key's look-up runs as ``run`` runs it (``aside``)."""
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if self.config.open:
            tenant = "default"
        else:
            if not key:
                raise ApiError(
                    401,
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    code="invalid_api_key",
                )
            h = hash_key(key)
            cached = self._keys.get(h)
            if cached is not None and cached[1] > time.monotonic():
                found = cached[0]
            else:
                found = await self.run(self.gw.records.tenant_of, key, aside=aside)
                self._keys[h] = (found, time.monotonic() + _KEY_TTL_S)
            if found is None:
                raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
            tenant = found
        limit = self.config.tenant(tenant).requests_per_minute or self.config.requests_per_minute
        self.limiter.check(hash_key(key) if key else tenant, limit)
        return tenant

    def max_items(self, tenant: str) -> int:
        return self.config.tenant(tenant).max_items or self.config.max_items


async def _body(request: Request, limit: int) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(
            413, f"The request body is larger than {limit} bytes.", code="request_too_large"
        )
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(
                413, f"The request body is larger than {limit} bytes.", code="request_too_large"
            )
        chunks.append(chunk)
    return parse_json(b"".join(chunks))


class _JSONResponse(JSONResponse):
    """Starlette's ``JSONResponse`` rendered by orjson: a response object (the
    instructions it echoes are often kilobytes) in a tenth of the stdlib's time. What
    orjson refuses (an integer beyond 64 bits from a tool's schema) takes Starlette's."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except orjson.JSONEncodeError:
            return super().render(content)


def _json(data: Any, status: int = 200) -> JSONResponse:
    return _JSONResponse(data, status_code=status)


def _rid(request: Request) -> str:
    """The response id of a ``/v1/responses/{id}`` path; one without its prefix is
    api.openai.com's 400 (``Invalid 'response_id': 'x'. Expected an ID that begins with
    'resp'.``), before anything is looked up."""
    return object_id(request.path_params["rid"], "response_id", "resp")


def _cid(request: Request) -> str:
    """The conversation id of a ``/v1/conversations/{id}`` path, checked as ``_rid``."""
    return object_id(request.path_params["cid"], "conversation_id", "conv")


def build(config: Config, runtime: Runtime, *, owns_runtime: bool = False) -> Starlette:
    """The ASGI app for ``config`` on ``runtime`` (see ``srt.gateway.app``); with
    ``owns_runtime`` its lifespan's end closes the runtime too."""
    st = State(config, runtime, owns_runtime=owns_runtime)
    gw, convs = st.gw, st.conversations

    def _stream(tenant: str, p: Any, rid: str, ended: dict[str, Any] | None = None) -> Any:
        """A queue of the response's events as it runs in the pool, then ``_DONE`` (or
        the exception it raised); ``ended`` gets the response as ``response.created``
        showed it (``"queued"``, before that event) and its final one (``"response"``,
        before ``_DONE``)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()

        def emit(kind: str, data: dict[str, Any]) -> None:
            if ended is not None and kind == "response.created":
                ended["queued"] = data["response"]
            loop.call_soon_threadsafe(queue.put_nowait, encode(kind, data))

        def work() -> None:
            try:
                out = gw.create(tenant, p, emit, rid)
                if ended is not None:
                    ended["response"] = out
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)
            except BaseException as exc:  # handed to the event loop
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                gw.cancels.pop(rid, None)  # (the run pops it too: not if it never began)
                st.slots.release(rid)  # (a background run's slot, or its place queued)

        if p.background:  # answered queued at once, busy slots or not (``slots``)
            st.slots.admit(rid)
        gw.cancels.setdefault(rid, Stop())  # (its run's: a client gone before it begins)
        try:
            (st.waiting if p.background else st.pool).submit(work)
        except BaseException:
            gw.cancels.pop(rid, None)
            st.slots.release(rid)
            raise
        return queue

    def _create(tenant: str, p: Any, rid: str) -> tuple[dict[str, Any], float]:
        """A response made in full, and the seconds its thread spent upstream."""
        gw.upstream.start()
        out = gw.create(tenant, p, None, rid)
        return out, gw.upstream.seconds()

    async def create_response(request: Request) -> Response:
        tenant = await st.tenant(request)
        body = await _body(request, config.max_body_bytes)
        p = parse_create(body, st.max_items(tenant))
        rid = new_id("resp")

        def stop() -> None:
            """The client went: a response it streams stops (a background one goes on)."""
            event = None if p.background else gw.cancels.get(rid)
            if event is not None:
                event.set()

        if p.background:
            ended: dict[str, Any] = {}
            queue = _stream(tenant, p, rid, ended)
            # its response.created (the response is stored, queued), or the error before it
            first = await queue.get()
            if isinstance(first, BaseException):
                if p.stream:
                    raise first
                found = await st.run(gw.records.get_response, tenant, rid)
                if found is None:
                    raise first  # nothing kept: the error is the answer
                return _json(await st.run(gw.get, tenant, rid))  # kept, failed
            if not p.stream:  # the response as it was queued, as api.openai.com answers
                shown = ended.get("queued") or ended.get("response")
                if shown is None:  # (a run that ended showing neither: as stored)
                    return _json(await st.run(gw.get, tenant, rid))
                return _json(dict(shown))
        elif not p.stream:
            out, upstream_s = await st.run(_create, tenant, p, rid)
            setattr(request.state, UPSTREAM_KEY, upstream_s)  # for the Server-Timing header
            return _json(out)
        else:
            queue = _stream(tenant, p, rid)
            first = await first_or_gone(queue, request.receive, stop)
            if first is GONE:
                return gone_response()
            if isinstance(first, BaseException):
                raise first
        # the one run of the response streams it (a background one: where it started)

        async def events() -> AsyncIterator[bytes]:
            item = first
            sent = 0  # events sent: each item is one, numbered from 0
            try:
                while item is not _DONE:
                    if isinstance(item, BaseException):
                        err = from_exception(item)
                        if err.status >= 500:
                            log.error("streaming response %s failed", rid, exc_info=item)
                        yield encode("error", error_event(err, sent))
                        return
                    yield item
                    sent += 1
                    item = await queue.get()
            finally:
                if item is not _DONE:
                    stop()  # the client went away: stop the upstream stream

        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    async def get_response(request: Request) -> Response:
        tenant = await st.tenant(request)
        rid = _rid(request)
        q = parse_retrieve(request.query_params.multi_items())
        if not q.stream:
            return _json(await st.run(gw.get, tenant, rid))
        replayed = await st.run(gw.replay, tenant, rid, q.starting_after)
        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        return StreamingResponse(iter(replayed), media_type="text/event-stream", headers=headers)

    async def delete_response(request: Request) -> Response:
        tenant = await st.tenant(request)
        return _json(await st.run(gw.delete, tenant, _rid(request)))

    async def input_items(request: Request) -> Response:
        tenant = await st.tenant(request)
        rid = _rid(request)
        q = parse_list(request.query_params.multi_items())
        return _json(await st.run(gw.input_items, tenant, rid, q.after, q.limit, q.order))

    async def cancel_response(request: Request) -> Response:
        tenant = await st.tenant(request, aside=True)
        return _json(await st.run(gw.cancel, tenant, _rid(request), aside=True))

    async def create_conversation(request: Request) -> Response:
        tenant = await st.tenant(request)
        parse_none(request.query_params.multi_items())
        body = await _body(request, config.max_body_bytes)
        return _json(await st.run(convs.create, tenant, body))

    async def conversation(request: Request) -> Response:
        tenant = await st.tenant(request)
        cid = _cid(request)
        parse_none(request.query_params.multi_items())
        if request.method == "GET":
            return _json(await st.run(convs.get, tenant, cid))
        if request.method == "DELETE":
            return _json(await st.run(convs.delete, tenant, cid))
        body = await _body(request, config.max_body_bytes)
        return _json(await st.run(convs.update, tenant, cid, body))

    async def conversation_items(request: Request) -> Response:
        tenant = await st.tenant(request)
        cid = _cid(request)
        if request.method == "POST":
            parse_include(request.query_params.multi_items())  # shows nothing more
            body = await _body(request, config.max_body_bytes)
            return _json(await st.run(convs.add_items, tenant, cid, body))
        q = parse_list(request.query_params.multi_items())
        return _json(await st.run(convs.list_items, tenant, cid, q.after, q.limit, q.order))

    async def conversation_item(request: Request) -> Response:
        tenant = await st.tenant(request)
        cid, item = _cid(request), request.path_params["item"]
        if request.method == "DELETE":
            parse_none(request.query_params.multi_items())
            return _json(await st.run(convs.delete_item, tenant, cid, item))
        parse_include(request.query_params.multi_items())  # shows nothing more
        return _json(await st.run(convs.get_item, tenant, cid, item))

    async def chat_completions(request: Request) -> Response:
        tenant = await st.tenant(request)
        body = await _body(request, config.max_body_bytes)
        return await chat.handle(st, gw, tenant, body, request.receive)

    async def usage(request: Request) -> Response:
        tenant = await st.tenant(request)
        return _json(await st.run(chat.usage, gw, tenant))

    async def models(request: Request) -> Response:
        await st.tenant(request)
        data = [
            {"id": r.model, "object": "model", "created": 0, "owned_by": r.upstream}
            for r in config.routes
        ]
        return _json({"object": "list", "data": data})

    async def health(request: Request) -> Response:
        return _json({"ok": True})

    async def api_error(request: Request, exc: Exception) -> Response:
        err = from_exception(exc)
        if err.status >= 500 and not isinstance(exc, ApiError):
            log.error("request %s %s failed", request.method, request.url.path, exc_info=exc)
        return Response(err.json(), err.status, err.headers, media_type="application/json")

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = {
            404: f"Unknown request URL: {request.method} {request.url.path}.",
            405: f"Method {request.method} is not allowed on {request.url.path}.",
        }.get(status, "The request could not be served.")
        err = ApiError(status, message, code="unknown_url" if status == 404 else None)
        return Response(err.json(), status, media_type="application/json")

    def typed(endpoint: Callable[[Request], Awaitable[Response]]) -> Any:
        """``endpoint`` with any other exception raised as the typed 500 (logged): one
        that reaches Starlette's outer handler is answered and then raised again, and
        the server closes the connection it came on (a reset, to a client reusing it)."""

        @functools.wraps(endpoint)
        async def run(request: Request) -> Response:
            try:
                return await endpoint(request)
            except (ApiError, SrtError, HTTPException):
                raise
            except Exception as exc:
                log.error("request %s %s failed", request.method, request.url.path, exc_info=exc)
                raise from_exception(exc) from exc

        return run

    routes = [
        Route(path, typed(endpoint), methods=methods)
        for path, endpoint, methods in (
            ("/v1/responses", create_response, ["POST"]),
            ("/v1/responses/{rid}", get_response, ["GET"]),
            ("/v1/responses/{rid}", delete_response, ["DELETE"]),
            ("/v1/responses/{rid}/input_items", input_items, ["GET"]),
            ("/v1/responses/{rid}/cancel", cancel_response, ["POST"]),
            ("/v1/conversations", create_conversation, ["POST"]),
            ("/v1/conversations/{cid}", conversation, ["GET", "POST", "DELETE"]),
            ("/v1/conversations/{cid}/items", conversation_items, ["GET", "POST"]),
            ("/v1/conversations/{cid}/items/{item}", conversation_item, ["GET", "DELETE"]),
            ("/v1/chat/completions", chat_completions, ["POST"]),
            ("/v1/usage", usage, ["GET"]),
            ("/v1/models", models, ["GET"]),
            ("/health", health, ["GET"]),
        )
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        st.start(lifespan=True)
        try:
            yield
        finally:
            st.close()

    app = Starlette(
        routes=routes,
        exception_handlers={
            ApiError: api_error,
            SrtError: api_error,
            HTTPException: http_error,
            Exception: api_error,
        },
        lifespan=lifespan,
        middleware=[Middleware(ServerTiming)],
    )
    app.state.srt = st
    return app
