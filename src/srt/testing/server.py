"""A local LLM-provider server that speaks OpenAI, Azure OpenAI, Anthropic and Bedrock.

For srt's tests and benchmarks: real HTTP/1.1 on 127.0.0.1, strict request validation like
the real services, scripted deterministic replies, prompt-cache accounting by each provider's
rules, and injected faults::

    with ProviderServer() as srv:
        srv.script("openai", ["hello", {"tool_calls": [{"name": "f", "arguments": {}}]}])
        srv.fault("anthropic", "status", code=429, retry_after=2)
        ...  # point a client at srv.url
        srv.log[-1].usage

Endpoints (the *endpoint names* used by ``script()``, ``fault()``, ``requests``, ``log``):

=========================  =========================================================
``openai.chat``            ``POST /v1/chat/completions``
``openai.responses``       ``POST /v1/responses`` (``previous_response_id`` or ``conversation``)
``openai.conversations``   ``POST /v1/conversations`` (a conversation a response may carry on)
``openai.compact``         ``POST /v1/responses/compact`` (``srt.testing._compact``)
``azure.chat``             ``POST /openai/deployments/{dep}/chat/completions?api-version=``
                           and ``POST /openai/v1/chat/completions``
``azure.responses``        ``POST /openai/v1/responses``, ``/openai/responses?api-version=``
``anthropic.messages``     ``POST /v1/messages``
``anthropic.count_tokens`` ``POST /v1/messages/count_tokens``
``bedrock.converse``       ``POST /model/{modelId}/converse``
``bedrock.converse_stream`` ``POST /model/{modelId}/converse-stream``
=========================  =========================================================

A *target* for ``script()``/``fault()`` is an endpoint name, a short name (``chat``,
``responses``, ``messages``, ``count_tokens``, ``converse``, ``converse_stream``), a provider
(``openai``, ``azure``, ``anthropic``, ``bedrock``; ``anthropic`` leaves out count_tokens) or
``*``. A request takes from the most specific non-empty queue. Run in the foreground with
``python -m srt.testing --port N`` (``--help`` for the options; ``python -m
srt.testing.server`` is the same).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..wire.sse import json_utf8
from . import _anthropic, _compact, _notfound, _openai, _window
from ._common import (
    ApiError,
    BreakpointCache,
    CacheUsage,
    Clock,
    OpenAICache,
    Prepared,
    Reply,
    RequestRecord,
    cache_minimum,
)
from ._http import ClientGone, Fault, Handler, Server
from ._replies import (
    build,
    check_auth,
    count_tokens,
    encode_event_frame,
    error_response,
    redact,
    render,
    route,
    status_fault,
)

__all__ = [
    "ENDPOINTS",
    "ProviderServer",
    "RequestRecord",
    "count_tokens",
    "encode_event_frame",
    "main",
    "render",
]

JSON = dict[str, Any]

ENDPOINTS: dict[str, tuple[str, ...]] = {
    "openai.chat": ("chat", "openai"),
    "openai.responses": ("responses", "openai"),
    "azure.chat": ("chat", "azure"),
    "azure.responses": ("responses", "azure"),
    "anthropic.messages": ("messages", "anthropic"),
    "anthropic.count_tokens": ("count_tokens",),
    "openai.conversations": ("conversations",),
    "openai.compact": ("compact",),
    "bedrock.converse": ("converse", "bedrock"),
    "bedrock.converse_stream": ("converse_stream", "converse-stream", "bedrock"),
}
TARGETS = frozenset(ENDPOINTS) | {t for tags in ENDPOINTS.values() for t in tags} | {"*"}
_SPLIT_SUFFIX = " ünïcödé ✓"


@dataclass
class _Stored:
    chain: list[JSON]
    model: str
    expires: float


class ProviderServer:
    """The fake providers on one loopback port, serving from a daemon thread until ``close()``.

    Args:
        host, port: where to listen (port 0 picks a free one).
        openai_ttl_s: idle TTL of OpenAI prompt-cache entries (``24h`` retention: 86,400 s).
        responses_ttl_s: how long stored Responses live.
        cache_minimum: the default minimum cacheable prefix for Anthropic/Bedrock models
            (haiku: 2,048, haiku-4: 4,096); ``cache_minimums`` maps model substrings to
            minimums and wins over those rules.
        openai_cache_min, openai_cache_step: OpenAI's 1,024-token floor and 128-token step.
        lookback: blocks a breakpoint looks back for a hit (20).
        api_key: if set, only this key is accepted; otherwise any non-empty key.
        context_window: if set, prompts over this many tokens get each provider's error
            (``context_windows`` maps model substrings to windows and wins over it).
            A streamed Responses call is refused after its head, by an ``error`` event.
        imitate: whose rules the OpenAI-shaped endpoints follow: ``"openai"`` (and Azure),
            or an OpenAI-compatible server's, ``"llama.cpp"`` or ``"vllm"``: whose refusal
            of a prompt over the window (``exceed_context_size_error``...), any image taken.
        responses_state: False: keep no responses and refuse ``previous_response_id``
            with a 400, as llama.cpp's server does (its own message:
            ``llama.cpp does not support 'previous_response_id'.``).
        azure_deployments: the model each Azure deployment runs (``{"prod-chat":
            "gpt-4o-2024-08-06"}``), which its replies name as Azure's do; a deployment
            not in it runs the model it is named for (``gpt-4o`` answers ``gpt-4o``). The
            deployment is the URL's on the deployment path, else the body's ``model``.
            ``azure_deployments`` is a plain dict a test may change.
        azure_strict: only ``azure_deployments``' deployments exist: another answers
            Azure's 404 ``DeploymentNotFound``.
        azure_api_versions: the api-versions Azure's dated paths serve (``None``: any
            ``YYYY-MM-DD[-preview]``); another, or none, answers 404 "Resource not found".
        models: the models the OpenAI, Anthropic and Bedrock endpoints serve (``None``:
            any); another answers each provider's "not found" (``srt.testing._notfound``).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        openai_ttl_s: float = 600.0,
        responses_ttl_s: float = 30 * 86400.0,
        cache_minimum: int = 1024,
        cache_minimums: Mapping[str, int] | None = None,
        openai_cache_min: int = 1024,
        openai_cache_step: int = 128,
        lookback: int = 20,
        api_key: str | None = None,
        context_window: int | None = None,
        context_windows: Mapping[str, int] | None = None,
        imitate: str = "openai",
        responses_state: bool = True,
        azure_deployments: Mapping[str, str] | None = None,
        azure_strict: bool = False,
        azure_api_versions: Iterable[str] | None = None,
        models: Iterable[str] | None = None,
    ) -> None:
        if imitate not in _window.IMITATED:
            raise ValueError(f"imitate must be one of {sorted(_window.IMITATED)}")
        self.azure_deployments = dict(azure_deployments or {})
        if not all(isinstance(v, str) and v for kv in self.azure_deployments.items() for v in kv):
            raise ValueError("azure_deployments maps deployment names to model names")
        self.azure_strict = azure_strict
        self.azure_api_versions = None if azure_api_versions is None else set(azure_api_versions)
        self.models = None if models is None else set(models)
        self.clock = Clock()
        self.responses_ttl_s = responses_ttl_s
        self.cache_minimum = cache_minimum
        self.cache_minimums = dict(cache_minimums or {})
        self.api_key = api_key
        self.context_window = context_window
        self.context_windows = dict(context_windows or {})
        self.imitate = imitate
        self.responses_state = responses_state
        self.log: list[RequestRecord] = []
        self.requests: Counter[str] = Counter()
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self.max_open_streams = 0
        self._open_streams = 0
        self._lock = threading.RLock()
        self._openai_cache = OpenAICache(
            self.clock, openai_ttl_s, openai_cache_min, openai_cache_step
        )
        self._bp_cache = BreakpointCache(self.clock, lookback)
        self._scripts: dict[str, deque[Reply]] = {}
        self._responders: dict[str, Callable[[str, Any, list[str]], Any]] = {}
        self._faults: dict[str, deque[Fault]] = {}
        self._responses: dict[str, _Stored] = {}
        self._conversations: dict[str, list[JSON]] = {}
        self._httpd = Server((host, port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash, no ``/v1``)."""
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        """Stop serving: end open streams, drop keep-alive connections, join the threads."""
        if self._closed:
            return
        self._closed = True
        self.stopping.set()
        self._httpd.shutdown()
        with self._httpd.lock:
            conns = list(self._httpd.conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(2)  # SHUT_RDWR: wakes a handler blocked on a keep-alive read
        self._httpd.server_close()
        self._thread.join(2.0)
        deadline = time.monotonic() + 1.5
        while self.active_handlers and time.monotonic() < deadline:
            time.sleep(0.01)

    def __enter__(self) -> ProviderServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ProviderServer {self.url} requests={sum(self.requests.values())}>"

    # -- counters --------------------------------------------------------------------------

    @property
    def open_streams(self) -> int:
        """Streams whose headers are sent and that have not ended yet."""
        with self._lock:
            return self._open_streams

    @property
    def active_handlers(self) -> int:
        """Connection-handler threads alive (idle keep-alive connections included)."""
        with self._httpd.lock:
            return sum(1 for t in self._httpd.threads if t.is_alive())

    def stream_opened(self) -> None:
        with self._lock:
            self._open_streams += 1
            self.max_open_streams = max(self.max_open_streams, self._open_streams)

    def stream_closed(self) -> None:
        with self._lock:
            self._open_streams -= 1

    def record_error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)

    def wait_streams_closed(self, timeout: float = 5.0) -> bool:
        """Wait until no stream is open; ``False`` if some still is after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.open_streams and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.open_streams == 0

    # -- scripting -------------------------------------------------------------------------

    def script(self, target: str, replies: Iterable[Any]) -> None:
        """Queue replies for ``target``: each a text, or ``{"text"?, "tool_calls": [{"name",
        "arguments", "id"?}], "reasoning_tokens"?, "stop"?, "reasoning"?}``
        (``srt.testing.Reply``). Without a queued reply the server answers ``"reply <n> to
        <first 20 chars of the last user text>: ..."``."""
        self._check_target(target)
        coerced = [Reply.coerce(r) for r in replies]
        with self._lock:
            self._scripts.setdefault(target, deque()).extend(coerced)

    def respond(self, target: str, fn: Callable[[str, Any, list[str]], Any] | None) -> None:
        """Answer requests for ``target`` that find no queued reply with ``fn(endpoint,
        body, units)`` (a text, a reply dict as for ``script``, or ``None`` for the default
        reply); ``units`` are the request's tokenizer units, JSON texts in render order
        (tool definitions, system, then every message, block or input item, a stored
        Responses chain included). ``None`` removes the responder."""
        self._check_target(target)
        with self._lock:
            if fn is None:
                self._responders.pop(target, None)
            else:
                self._responders[target] = fn

    def fault(self, target: str, kind: str, count: int | None = 1, **kw: Any) -> None:
        """Apply a fault to the next ``count`` requests for ``target`` (``None``: all).

        Kinds: ``status`` (``code``, ``headers``, ``retry_after``, ``retry_after_date``,
        ``retry_after_ms``, ``message``, ``body``; ``variant="content_filter"``: Azure's
        400 for a prompt its content filter refused), ``reset_before_headers``,
        ``reset_after_events`` (``n``), ``malformed_sse`` (``variant``: bad_json, crlf,
        split_utf8, error_event, failed (Responses), bad_crc (Bedrock), truncated (the
        body ends inside the event after ``after``); ``after``; ``error_type``;
        ``message``), ``slow`` (``interval``), ``endless`` (``interval``, ``after``),
        ``delay`` (``seconds``), ``rewrite`` (``old`` text as ``new``, each event's)."""
        self._check_target(target)
        f = Fault(kind, count, kw)
        with self._lock:
            self._faults.setdefault(target, deque()).append(f)

    def clear(self) -> None:
        """Drop queued scripts and faults."""
        with self._lock:
            self._scripts.clear()
            self._faults.clear()
            self._responders.clear()

    def advance(self, seconds: float) -> None:
        """Move the fake clock of every TTL (caches, stored responses) forward."""
        self.clock.advance(seconds)

    def expire_responses(self, ids: Iterable[str] | None = None) -> None:
        """Forget stored Responses (all, or those in ``ids``)."""
        with self._lock:
            if ids is None:
                self._responses.clear()
            else:
                for rid in ids:
                    self._responses.pop(rid, None)

    @property
    def stored_responses(self) -> list[str]:
        with self._lock:
            now = self.clock.now()
            return [k for k, v in self._responses.items() if v.expires > now]

    def count_tokens(self, endpoint: str, body: Any, *, model: str | None = None) -> int:
        """Like the module's ``count_tokens``, resolving ``previous_response_id`` chains."""
        if endpoint.endswith(".responses"):
            return _openai.prepare_responses(body, self._chain(body), model).total_tokens
        return count_tokens(endpoint, body, model=model)

    @staticmethod
    def _check_target(target: str) -> None:
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; one of {sorted(TARGETS)}")

    def _take(self, queues: Mapping[str, deque[Any]], endpoint: str) -> Any:
        for tag in (endpoint, *ENDPOINTS[endpoint], "*"):
            q = queues.get(tag)
            if q:
                return q
        return None

    def dispatch(self, h: Handler, method: str) -> None:
        t0 = time.monotonic()
        parts = urlsplit(h.path)
        raw = h.read_body()
        found = route(parts.path, parse_qs(parts.query)) if method == "POST" else None
        if found is None:
            if method == "GET" and parts.path in ("/", "/health"):
                h.send_json(200, {"ok": True, "endpoints": sorted(ENDPOINTS)}, {})
                return
            h.send_json(404, *_notfound.unknown_path(method, parts.path))
            return
        endpoint, params = found
        provider = endpoint.split(".")[0]
        headers = {k.lower(): v for k, v in h.headers.items()}
        with self._lock:
            self.requests[endpoint] += 1
            n = self.requests[endpoint]
            fault = None
            q = self._take(self._faults, endpoint)
            if q is not None:
                fault = copy.copy(q[0])
                if q[0].count is not None:
                    q[0].count -= 1
                    if q[0].count == 0:
                        q.popleft()
            rec = RequestRecord(
                seq=len(self.log) + 1,
                endpoint=endpoint,
                provider=provider,
                method=method,
                path=h.path,
                headers=redact(headers),
                time=self.clock.now(),
                fault=fault.describe() if fault else None,
            )
            self.log.append(rec)
        try:
            if fault is not None and fault.kind == "reset_before_headers":
                h.reset()
                return
            if fault is not None and fault.kind == "delay":
                h.wait(float(fault.kw.get("seconds", 1.0)))
            if fault is not None and fault.kind == "status":
                failure, raw_body = status_fault(fault.kw)
                if raw_body is not None:
                    rec.status = failure.status
                    h.send_body(failure.status, raw_body, failure.headers)
                    return
                raise failure
            check_auth(provider, headers, self.api_key)
            try:
                body = json.loads(raw)
            except ValueError:
                raise ApiError(400, "We could not parse the JSON body of your request.") from None
            rec.body = body
            if provider == "anthropic":
                _anthropic.check_version(headers.get("anthropic-version", ""), body)
            self._serve(h, endpoint, params, body, rec, fault, n, t0)
        except ApiError as err:
            rec.status, rec.error = err.status, err.message
            h.send_json(err.status, *error_response(provider, err))
        except ClientGone:
            h.close_connection = True

    def _chain(self, body: Any) -> list[JSON]:
        prev = body.get("previous_response_id") if isinstance(body, dict) else None
        if isinstance(body, dict) and body.get("conversation") is not None:
            if prev is not None:
                raise ApiError(
                    400,
                    "Mutually exclusive parameters: Ensure you are only providing one of: "
                    "'previous_response_id' or 'conversation'.",
                    code="mutually_exclusive_parameters",
                )
            cid = _openai.conversation_id(body)
            with self._lock:
                items = self._conversations.get(cid)
            if items is None:
                raise ApiError(
                    404, f"Conversation with id '{cid}' not found.", param="conversation"
                )
            return list(items)
        if prev is None:
            return []
        if not self.responses_state:
            raise ApiError(400, "This server does not support 'previous_response_id'.")
        if not isinstance(prev, str):
            raise ApiError(
                400, "Invalid type for 'previous_response_id'.", param="previous_response_id"
            )
        with self._lock:
            stored = self._responses.get(prev)
            if stored is None or stored.expires <= self.clock.now():
                raise ApiError(
                    400,
                    f"Previous response with id '{prev}' not found.",
                    etype="invalid_request_error",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            return list(stored.chain)

    def _new_conversation(self, body: Any) -> JSON:
        """``POST /v1/conversations``: a conversation holding ``items`` (input items, as a
        response's ``input`` takes them), which responses that name it carry on."""
        obj, items = _openai.new_conversation(body)
        with self._lock:
            self._conversations[obj["id"]] = items
        return obj

    def _prepare(self, endpoint: str, params: Mapping[str, str], body: Any) -> Prepared:
        azure = endpoint.startswith("azure.")
        if azure:
            _notfound.check_api_version(params, self.azure_api_versions, "v1" in params)
            deps = self.azure_deployments if self.azure_strict else None
            if params.get("deployment"):  # (found before the body is read)
                _notfound.check_model(endpoint, params["deployment"], None, deps)
        loose = self.imitate != "openai"  # (an OpenAI-compatible server takes any image)
        model = params.get("deployment") or params.get("model")
        if endpoint.endswith(".responses"):
            prep = _openai.prepare_responses(body, self._chain(body), None, loose)
        else:
            prep = render(endpoint, body, model=model, any_image=loose)
        if azure:  # (the deployment path ignores the body's model)
            deployment = params.get("deployment") or prep.model
            _notfound.check_model(endpoint, deployment, None, deps)
            prep.extra["deployment"] = deployment
            prep.model = self.azure_deployments.get(deployment, deployment)
        else:
            _notfound.check_model(endpoint, prep.model, self.models, None)
        return prep

    def _account(self, provider: str, prep: Prepared) -> CacheUsage:
        if provider in ("openai", "azure"):
            ns = (provider, prep.model, prep.cache_key or "")
            return self._openai_cache.account(ns, prep)
        minimum = cache_minimum(prep.model, self.cache_minimum, self.cache_minimums)
        return self._bp_cache.account((provider, prep.model), prep, minimum)

    def _reply(self, endpoint: str, prep: Prepared, n: int, body: Any) -> Reply:
        q = self._take(self._scripts, endpoint)
        if q is not None:
            r: Reply = q.popleft()
            return dataclasses.replace(r, tool_calls=[copy.copy(c) for c in r.tool_calls])
        for tag in (endpoint, *ENDPOINTS[endpoint], "*"):
            fn = self._responders.get(tag)
            if fn is not None:
                made = fn(endpoint, body, list(prep.units))
                if made is not None:
                    return Reply.coerce(made)
                break
        snippet = " ".join(prep.last_user_text.split())[:20]
        return Reply(
            f"reply {n} to {snippet}: a deterministic answer from the srt provider test "
            "server, long enough to arrive in several stream deltas."
        )

    def _serve(
        self,
        h: Handler,
        endpoint: str,
        params: Mapping[str, str],
        body: Any,
        rec: RequestRecord,
        fault: Fault | None,
        n: int,
        t0: float,
    ) -> None:
        if endpoint in ("openai.conversations", "openai.compact"):
            if endpoint == "openai.compact":
                prep = _compact.prepare_compact(body, self._chain(body))
                _notfound.check_model(endpoint, prep.model, self.models, None)
                obj = _compact.compacted(prep, rec.seq)
                rec.model, rec.usage = prep.model, obj["usage"]
            else:
                obj = self._new_conversation(body)
            rec.status = 200
            h.send_json(200, obj, {"x-request-id": f"req_{uuid.uuid4().hex}"})
            return
        prep = self._prepare(endpoint, params, body)
        rec.model, rec.stream = prep.model, prep.stream
        rec.deployment = prep.extra.get("deployment")
        rec.boundaries, rec.labels, rec.breakpoints = prep.boundaries, prep.labels, prep.breakpoints
        if endpoint == "anthropic.count_tokens":
            rec.status = 200
            h.send_json(
                200,
                {"input_tokens": prep.total_tokens},
                {"request-id": f"req_{uuid.uuid4().hex[:24]}"},
            )
            return
        window = _window.window_for(prep.model, self.context_window, self.context_windows)
        try:
            _window.check(endpoint, body, prep, window, self.imitate)
        except _window.StreamRefusal as refused:
            rec.status, rec.error = 200, "context_length_exceeded"
            h.send_stream(refused.body, None, {"x-request-id": f"req_{uuid.uuid4().hex}"})
            return
        provider = endpoint.split(".")[0]
        with self._lock:
            cache = self._account(provider, prep)
            reply = self._reply(endpoint, prep, n, body)
        split = fault is not None and fault.kw.get("variant") == "split_utf8"
        if split and reply.text.isascii() and (reply.text or not reply.tool_calls):
            reply.text += _SPLIT_SUFFIX
        rec.cache, rec.reply = cache, reply
        seq = rec.seq
        built = build(endpoint, body, prep, reply, cache, seq, t0, fault.kw if fault else {})
        rec.usage, rec.response_id = built.usage, built.response_id
        if built.response_id and body.get("store", True):
            chain = prep.extra["chain"] + prep.extra["items"] + built.output
            expires = self.clock.now() + self.responses_ttl_s
            with self._lock:
                self._responses[built.response_id] = _Stored(chain, prep.model, expires)
        if built.response_id and body.get("conversation") is not None:
            cid = _openai.conversation_id(body)
            with self._lock:  # the input and output items join the conversation
                self._conversations[cid] += prep.extra["items"] + built.output
        rec.status = 200
        if built.stream is not None:
            h.send_stream(built.stream, fault, built.headers)
        else:
            data = json_utf8(json.dumps(built.obj, ensure_ascii=False))
            h.send_plain(200, data, fault, built.headers)


if __name__ == "__main__":  # the same command line as python -m srt.testing
    from ._cli import main

    raise SystemExit(main(ProviderServer, prog="python -m srt.testing.server"))
