"""The Responses API on srt: one turn is request -> typed params -> session -> reply encoder.

Everything here blocks (store and upstream calls); the ASGI app runs it in a thread pool.

A response's input and its reply are committed to the thread together, in one
compare-and-swap with the ledger row and, without streaming, the response record
(``Session.send(append=..., objects=...)``). Which session a turn works on (a new
thread, a conversation's, a continued or forked one, a re-rooted history) is
``turns.Placer``'s part.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .. import _core
from .._types import Reply
from ..context import WindowPolicy
from ..drivers import ReplyStream
from ..errors import ConflictError, SessionNotFoundError, UnsupportedFeatureError
from ..message import canonicalize
from ..providers import OpenAICompatible, Provider
from ..runtime import Runtime
from ..store import ObjectPut
from ..wire import get_format
from ..wire.base import WireFormat
from ..wire.params import CommonParams, offered, translate
from . import items as it
from .config import Config, Route
from .endings import settle
from .errors import (
    ApiError,
    bad_request,
    chain_conflict,
    from_exception,
    not_found,
    response_not_found,
)
from .events import Emit, Events, replay
from .params import CreateResponse
from .records import Owner, Records, digest, new_id, new_response
from .slots import Slots
from .threads import Threads
from .timing import UpstreamClock
from .turns import Placer, Turn, previous_not_found

__all__ = ["Gateway", "Stop", "digest"]

log = logging.getLogger("srt.gateway")

#: Seconds between checkpoints of a streaming response's partial output.
CHECKPOINT_S = 0.5
#: How long a cancel waits for the response's worker to stop it.
CANCEL_WAIT_S = 2.0


class Stop(threading.Event):
    """A streamed response's stop (the client went, or ``POST .../cancel``); set, it also
    cancels its upstream stream (``ReplyStream.cancel``): a worker blocked on an upstream
    sending only keep-alives is freed at once, not at a next delta that may never come."""

    def __init__(self) -> None:
        super().__init__()
        self.stream: ReplyStream | None = None

    def set(self) -> None:
        super().set()
        stream = self.stream
        if stream is not None:
            stream.cancel()

    def watch(self, stream: ReplyStream) -> None:
        """Cancel ``stream`` when set (now, if set already)."""
        self.stream = stream
        if self.is_set():
            stream.cancel()


def translated(fmt: WireFormat, common: CommonParams, compatible: bool) -> dict[str, Any]:
    """``translate``, a parameter the upstream's format cannot express refused as a 400
    naming it (``UnsupportedFeatureError.feature`` starts with its name)."""
    try:
        return translate(fmt, common, compatible=compatible)
    except UnsupportedFeatureError as exc:
        param = exc.feature.split(" ", 1)[0]
        raise bad_request(str(exc), param, "unsupported_parameter") from None
    except ValueError as exc:  # pragma: no cover - translate raises only the above
        raise bad_request(str(exc), code="unsupported_parameter") from None


class Gateway:
    """The operations of the API, for one runtime and config (shared by the app's threads)."""

    def __init__(self, config: Config, runtime: Runtime) -> None:
        self.config = config
        self.rt = runtime
        days = config.response_retention_days
        self.records = Records(runtime.store, None if days is None else days * 86400.0)
        self.threads = Threads(runtime)
        self.placer = Placer(runtime, self.records, self.threads)
        self._providers: dict[tuple[str, str], Provider] = {}
        self._plock = threading.Lock()
        self.cancels: dict[str, Stop] = {}
        #: Time each thread spends in upstream calls (the ``Server-Timing`` header).
        self.upstream = UpstreamClock()
        #: The worker slots a background run waits for once it is queued (the app's).
        self.slots: Slots | None = None

    # -- routing -----------------------------------------------------------------------

    def route(self, model: str) -> tuple[Route, Provider, str]:
        route = self.config.route(model)
        if route is None:
            raise ApiError(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            )
        up_model = route.upstream_name(model) or model
        key = (
            route.upstream,
            up_model if self.config.upstreams[route.upstream].kind == "azure" else "",
        )
        with self._plock:
            provider = self._providers.get(key)
            if provider is None:
                upstream = self.config.upstreams[route.upstream]
                provider = upstream.provider(up_model, on_exchange=self.upstream.add)
                self._providers[key] = provider
        own = getattr(provider, "model_name", None)
        if own and route.upstream_model is None:
            up_model = str(own)  # the local model's own name
        return route, provider, up_model

    def close(self) -> None:
        with self._plock:
            providers, self._providers = list(self._providers.values()), {}
        for p in providers:
            p.close()

    # -- creating a response -----------------------------------------------------------

    def _params(self, p: CreateResponse, provider: Provider, route: Route) -> dict[str, Any]:
        fmt = get_format(provider.format)
        common = CommonParams(
            max_output_tokens=p.max_output_tokens or self.config.default_max_output_tokens,
            temperature=p.temperature,
            top_p=p.top_p,
            tool_choice=p.tool_choice,
            parallel_tool_calls=p.parallel_tool_calls,
            text=p.text,
            reasoning=p.reasoning,
            service_tier=p.service_tier,
            prompt_cache_retention=p.prompt_cache_retention,
            user=p.user,
            safety_identifier=p.safety_identifier,
        )
        compatible = isinstance(provider, OpenAICompatible)
        kw = translated(fmt, common, compatible)
        kw["tools"] = offered(fmt, p.tool_choice, p.tools) or None
        # the client's cache key replaces srt's own where the upstream takes one (an
        # upstream without one caches by prefix: srt places its breakpoints)
        key_param = getattr(provider, "cache_key_param", None) or fmt.cache.key_param
        if p.prompt_cache_key is not None and key_param is not None:
            kw[key_param] = p.prompt_cache_key
        if "reasoning.encrypted_content" in p.include and fmt.name.endswith(".responses"):
            kw["include"] = ["reasoning.encrypted_content"]  # (other upstreams: no such items)
        if p.truncation == "auto" and route.context_window:
            budget = route.context_window - (p.max_output_tokens or 0)
            kw["window"] = WindowPolicy("cache_aware", max(1, budget))
        return kw

    def create(
        self,
        tenant: str,
        p: CreateResponse,
        emit: Emit | None = None,
        rid: str | None = None,
    ) -> dict[str, Any]:
        """Run one response to its end; ``emit`` receives the streaming events."""
        route, provider, up_model = self.route(p.model)
        kw = self._params(p, provider, route)
        rid = rid or new_id("resp")
        created = int(time.time())
        turn = self.placer.begin(tenant, p, rid)
        try:
            return self._run(tenant, p, turn, rid, created, provider, up_model, kw, emit)
        except Exception as exc:
            error = self._error(tenant, p, exc)
            if error is not exc and error.status >= 500:
                log.error("response %s failed", rid, exc_info=exc)
            failed = self._abandon(tenant, p, turn, rid, error)
            if failed is not None:
                return failed
            if error is exc:
                raise
            raise error from exc  # typed: the app answers it as it is (logged here)
        finally:
            self.placer.end_own(tenant, rid, turn)
            self.threads.release(turn.live)
            self.cancels.pop(rid, None)
            self.placer.retire(tenant, turn)

    def _error(self, tenant: str, p: CreateResponse, exc: BaseException) -> ApiError:
        """``from_exception``; but a turn whose session went while it ran, because its
        previous response or its conversation was deleted meanwhile (which takes the
        thread, or leaves it to ``orphans``), is told what a request naming it after the
        DELETE is: its previous response, or its conversation, is not found."""
        if isinstance(exc, SessionNotFoundError):
            try:
                rid, cid = p.previous_response_id, p.conversation
                if rid is not None and self.records.get_response(tenant, rid) is None:
                    return previous_not_found(rid)
                if cid is not None and self.records.get_conversation(tenant, cid) is None:
                    return not_found("conversation", cid, "conversation")
            except Exception:  # a damaged record, a store failing: as any other
                log.warning("reading what a failed turn named failed", exc_info=True)
        if isinstance(exc, ConflictError) and p.previous_response_id is not None:
            return chain_conflict(p.previous_response_id)
        return from_exception(exc)

    def _prepare(
        self,
        tenant: str,
        p: CreateResponse,
        turn: Turn,
        rid: str,
        created: int,
        up_model: str,
        in_commit: bool,
    ) -> tuple[dict[str, Any], dict[str, Any], bytes]:
        """The response's record, the session call's arguments, and the prefix hash its
        output items hang from."""
        s = turn.session
        base_len = len(s)
        base_prefix = bytes.fromhex(s.prefix_hash) if s.prefix_hash else _core.ROOT
        staged = [canonicalize(m)[0] for m in turn.prefix]
        it.check_outputs(p.input, "input", lambda: [*s.messages_bytes(), *staged])
        bodies = staged + it.canonical_bodies(p.input, up_model, self.rt.redact)
        if not base_len and not bodies:  # nothing to send: refused here, not upstream
            raise bad_request(
                "Invalid 'input': empty, and there is nothing else to send (no instructions, "
                "no earlier items): give at least one input item.",
                "input",
                "empty_array",
            )
        prefixes = it.chain(base_prefix, bodies, self.rt.store.hashing)
        out_parent = prefixes[-1] if prefixes else base_prefix
        response = new_response(p, rid, created)
        record: dict[str, Any] = {
            "response": response,
            "thread": turn.live.name,
            "lead": turn.lead,
            "instructions": turn.instructions,
            "out_start": base_len + len(bodies),
            "depth": base_len + len(bodies),
            "owner": Owner.me().as_json(),
            "model_up": up_model,
        }
        turn.ids = it.mark_scope(tenant, record, turn.scope, turn.conversation)
        append: list[Any] = [*turn.prefix]
        if p.input:
            append.append(p.input)
        call: dict[str, Any] = {
            "model": up_model,
            "append": append,
            "keep": p.store,
        }
        if in_commit and p.store:
            call["objects"] = self._in_commit(tenant, turn, record)
        return record, call, out_parent

    def _run(
        self,
        tenant: str,
        p: CreateResponse,
        turn: Turn,
        rid: str,
        created: int,
        provider: Provider,
        up_model: str,
        kw: dict[str, Any],
        emit: Emit | None,
    ) -> dict[str, Any]:
        s = turn.session
        record, call, out_parent = self._prepare(
            tenant, p, turn, rid, created, up_model, emit is None
        )
        response = record["response"]
        turn.record = record
        message_id = it.item_id("message", out_parent, 0, turn.ids)
        if emit is None:
            reply = s.send(provider, **call, **kw)
            return self._finish(tenant, p, turn, record, reply, "completed", None, out_parent, None)
        events = turn.events = Events(emit)
        cancel = self.cancels.setdefault(rid, Stop())
        if p.store:
            self.records.put_response(tenant, record, s.head)
            turn.stored = True
        status, error, started = "completed", None, False
        if p.background:  # its events begin at once: queued (its create's answer), running
            events.start(response)
            started = True
            if self.slots is not None and not self.slots.take(rid, cancel):
                # cancelled while queued: it ends so, having sent nothing upstream
                return self._finish(
                    tenant, p, turn, record, None, "cancelled", None, out_parent, events
                )
        st = s.stream(provider, **call, **kw)
        cancel.watch(st)
        try:
            last = time.monotonic()
            for delta in st:
                if not started:
                    events.start(response)
                    started = True
                events.delta(delta, message_id, it.leading_items(st.leading, out_parent, turn.ids))
                if cancel.is_set():
                    break
                if p.store and time.monotonic() - last > CHECKPOINT_S:
                    last = time.monotonic()
                    partial = [*events.leading, it.partial_message(message_id, events.text)]
                    record["response"] = {**response, "output": partial}
                    self.records.put_response(tenant, record, s.head)
        except Exception as exc:  # the client has the stream: it gets response.failed
            error = self._error(tenant, p, exc)
        finally:
            st.close()
        # (an upstream stream cut short, srt's ``incomplete`` turn, is a ``failed``
        # response: OpenAI's ``incomplete`` means a token cap or a content filter only)
        status = {"cancelled": "cancelled", "incomplete": "failed", "error": "failed"}.get(
            str(st.status), "failed" if error is not None else "completed"
        )
        if cancel.is_set():
            status = "cancelled"
        if not started and error is not None and not p.background:
            if p.store:
                self.records.delete_response(tenant, rid)
            turn.settled = True
            raise error  # nothing streamed yet: an ordinary HTTP error
        if not started:
            events.start(response)
        return self._finish(tenant, p, turn, record, st.reply, status, error, out_parent, events)

    def _finish(
        self,
        tenant: str,
        p: CreateResponse,
        turn: Turn,
        record: dict[str, Any],
        reply: Reply | None,
        status: str,
        error: ApiError | None,
        out_parent: bytes,
        events: Events | None,
    ) -> dict[str, Any]:
        s = turn.session
        response: dict[str, Any] = record["response"]
        kept = p.store and len(s) > record["out_start"]
        output: list[dict[str, Any]] = []
        if reply is not None:
            body = s.messages_bytes()[-1] if kept else canonicalize(reply.message)[0]
            model = str(record.get("model_up", "")) or ""
            output = it.items_of(body, out_parent, model, ids=turn.ids)
        response["output"] = output
        if not turn.committed:
            settle(record, reply, status, error, kept, len(s))
        it.mark_ended(output, response["status"])  # (settle's: an upstream's cap too)
        if not turn.committed and p.store:
            if not len(s):
                self.placer.end_own(tenant, response["id"], turn)
            turn.deleted = not self.records.put_response(tenant, record, s.head)
            turn.settled = True
            conv = turn.rerooted()
            if conv is not None:
                self.records.put_conversation(tenant, conv)
        turn.settled = True
        if events is not None:
            events.finish(response)
        return dict(response)

    def _abandon(
        self, tenant: str, p: CreateResponse, turn: Turn, rid: str, error: ApiError
    ) -> dict[str, Any] | None:
        """After an exception in a turn: a response stored in progress ends ``failed``
        (``_store_failed``) and a started stream with ``response.failed``, returned; None:
        the caller raises (with nothing streamed, no record stays, as in ``_run``)."""
        record, events = turn.record, turn.events
        if record is None or turn.settled:
            return None
        turn.settled = True
        started = events is not None and events.started
        if not started and not p.background:
            if turn.stored:
                self.records.remove(tenant, rid)
            return None
        response: dict[str, Any] = record["response"]
        settle(record, None, "failed", error, False, len(turn.session))
        record.pop("output_from", None)  # a reply the turn did not store
        it.mark_ended(response.get("output") or [], "failed")
        if turn.stored:
            if not len(turn.session):
                self.placer.end_own(tenant, rid, turn)
            self.records.store_failed(tenant, record, turn.session.head)
        if events is None or not started:
            return None
        try:
            events.fail(response)
        except Exception:
            return None
        return dict(response)

    def _in_commit(
        self, tenant: str, turn: Turn, record: dict[str, Any]
    ) -> Callable[[Reply, int], list[ObjectPut]]:
        """The objects a completed turn writes in its commit: the response (filed under
        its reply) and a re-rooted conversation; ``_finish`` then writes nothing."""

        def objects(reply: Reply, depth: int) -> list[ObjectPut]:
            settle(record, reply, "completed", None, True, depth)
            puts = [self.records.response_object(tenant, record)]
            conv = turn.rerooted()
            if conv is not None:
                puts.append(self.records.conversation_object(tenant, conv))
            turn.committed = True
            return puts

        return objects

    # -- reading -----------------------------------------------------------------------

    def get(self, tenant: str, rid: str) -> dict[str, Any]:
        here = rid in self.cancels  # (before the read: a run that ends after it wrote its end)
        found = self.records.get_response(tenant, rid)
        if found is None:
            raise response_not_found(rid)
        rec, node = found
        resp: dict[str, Any] = rec["response"]
        if rec.get("output_from") and node is not None:
            resp["output"] = self._stored_output(tenant, rec, node)
            it.mark_ended(resp["output"], resp["status"])
        owner = rec.get("owner")
        if (
            resp["status"] in ("in_progress", "queued")
            and owner
            and not self.records.alive(owner, here)
        ):
            # its worker died, or could not store its end
            self.records.mark_ended(tenant, rec, node)
        return resp

    def _stored_output(self, tenant: str, rec: dict[str, Any], node: int) -> list[dict[str, Any]]:
        """A completed response's output: its reply, the message at its node, with item
        ids from the prefix hash of the message before it."""
        before = int(rec["out_start"])  # messages before the reply
        store = self.rt.store
        rows = store.tail(node, max(0, before - 1))
        if not rows:
            return []
        parent = store.node_prefix(rows[0][0]) if before else _core.ROOT
        model = str(rec.get("model_up") or "")
        return it.items_of(rows[-1][1], parent, model, ids=it.response_ids(tenant, rec))

    def replay(self, tenant: str, rid: str, after: int | None) -> list[bytes]:
        """``GET /v1/responses/{id}?stream=true``: an ended response's events again."""
        resp = self.get(tenant, rid)
        if resp["status"] in ("in_progress", "queued"):
            raise bad_request(
                f"Response '{rid}' is {resp['status']}: its events can be streamed again "
                "once it has ended.",
                "stream",
                "invalid_value",
            )
        return replay(resp, after)

    def delete(self, tenant: str, rid: str) -> dict[str, Any]:
        """Delete a response and, when it was the newest of its own thread (no
        conversation's), the thread's session: what it alone reached is then collected
        by the next ``gc``; what a live response, a fork or a conversation reaches stays
        with them (their records name their own nodes)."""
        found = self.records.forget_response(tenant, rid)
        if found is None:
            raise response_not_found(rid)
        thread, node = found
        if thread is not None:
            self.threads.drop(thread, node)
        return {"id": rid, "object": "response", "deleted": True}

    def input_items(
        self, tenant: str, rid: str, after: str | None, limit: int, order: str
    ) -> dict[str, Any]:
        found = self.records.get_response(tenant, rid)
        if found is None:
            raise response_not_found(rid)
        rec, node = found
        rows = self.rt.store.chain(node) if node is not None else []
        rows = rows[: rec["out_start"]]
        bodies = [r[2] for r in rows]
        before = [_core.ROOT, *(r[3] for r in rows[:-1])]  # the store's prefix hashes
        model = str(rec.get("model_up") or "")
        ids = it.response_ids(tenant, rec)
        return it.page(bodies, before, rec["lead"], model, after, limit, order, ids)

    def cancel(self, tenant: str, rid: str) -> dict[str, Any]:
        found = self.records.get_response(tenant, rid)
        if found is None:
            raise response_not_found(rid)
        rec, _node = found
        if not rec["response"].get("background"):
            raise bad_request("Only background responses can be cancelled.", code="invalid_value")
        event = self.cancels.get(rid)
        if event is not None:
            event.set()
            deadline = time.monotonic() + CANCEL_WAIT_S
            while rid in self.cancels and time.monotonic() < deadline:
                time.sleep(0.01)
        resp = self.get(tenant, rid)
        if resp["status"] in ("in_progress", "queued"):
            # Its worker has not ended it yet (its upstream has not answered: its stream
            # is cancelled once it does): the response ends here, whatever arrives later.
            rec["response"] = {**resp, "status": "cancelled", "completed_at": int(time.time())}
            self.records.put_response(tenant, rec, _node)
            resp = self.get(tenant, rid)
        return resp
