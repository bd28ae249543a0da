"""The gateway's stored objects: responses, conversations, API keys and live workers.

Each is a JSON value in the store's objects (kind, scope = tenant, key = id); a response
object holds the node of its last output item, so its whole history stays alive under
gc for as long as the response exists. Nothing here writes SQL: it is the store's
object API with JSON on top.

A response is stored small: only what differs from a new response's defaults, its usage
as five numbers, no id (the object's key), no thread name when it is the response's own,
instructions and tools as keys of texts stored once, and no output when the output is
the stored reply (``output_from``); reading it back gives the same response object.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..store import sweeps
from ..store.base import ObjectPut, Store
from .checks import check_conversation, check_response, damaged
from .idmap import Kept
from .items import conversation_ids, response_ids
from .texts import GRACE_S, Texts
from .texts import TEXT as TEXT
from .texts import dumps as _dumps

if TYPE_CHECKING:
    from .params import CreateResponse

log = logging.getLogger("srt.gateway")

__all__ = [
    "Owner",
    "Records",
    "digest",
    "hash_key",
    "new_id",
    "new_response",
    "thread_name",
]

RESPONSE = "gw.response"
CONVERSATION = "gw.conversation"
KEY = "gw.key"
#: The records that name texts: a text none of them names is collected.
_NAMING = (RESPONSE, CONVERSATION)
#: The values a new response has (``new_response``); a stored response omits them.
_DEFAULTS: dict[str, Any] = {
    "object": "response",
    "background": False,
    "error": None,
    "incomplete_details": None,
    "instructions": None,
    "max_output_tokens": None,
    "max_tool_calls": None,
    "output": [],
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "conversation": None,
    "prompt_cache_key": None,
    "prompt_cache_retention": None,
    "reasoning": {"effort": None, "summary": None},
    "safety_identifier": None,
    "service_tier": "default",
    "store": True,
    "temperature": None,
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "top_logprobs": None,
    "top_p": None,
    "truncation": "disabled",
    "usage": None,
    "user": None,
    "metadata": {},
}

#: ``_DEFAULTS`` as JSON: parsed again for a fresh copy (faster than ``copy.deepcopy``).
_DEFAULTS_JSON = json.dumps(_DEFAULTS)

#: A response's keys in the order OpenAI writes them.
_ORDER = (
    "id",
    "object",
    "created_at",
    "status",
    "background",
    "error",
    "incomplete_details",
    "instructions",
    "max_output_tokens",
    "max_tool_calls",
    "model",
    "output",
    "parallel_tool_calls",
    "previous_response_id",
    "conversation",
    "prompt_cache_key",
    "prompt_cache_retention",
    "reasoning",
    "safety_identifier",
    "service_tier",
    "store",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "truncation",
    "usage",
    "user",
    "metadata",
)
WORKER = "gw.worker"
#: A worker that has not beaten for this long is taken for dead (other hosts).
STALE_S = 30.0


@functools.lru_cache(maxsize=16)
def digest(text: str | None) -> str | None:
    """What a thread remembers of its instructions: their SHA-256 (None for none). A
    turn asks three times for the same, usually long, text (the last 16 are kept)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest() if text else None


def thread_name(tenant: str, ident: str) -> str:
    """The session of a history the gateway keeps: ``gw/<tenant>/<id>``."""
    return f"gw/{tenant}/{ident}"


def _pack_usage(u: Any) -> Any:
    """A Responses usage object as ``[input, cached, cache write, output, reasoning]``
    when it has exactly the gateway's shape (anything else is kept as it is)."""
    try:
        packed = [
            u["input_tokens"],
            u["input_tokens_details"]["cached_tokens"],
            u["input_tokens_details"]["cache_write_tokens"],
            u["output_tokens"],
            u["output_tokens_details"]["reasoning_tokens"],
        ]
    except (KeyError, TypeError):
        return u
    return packed if _unpack_usage(packed) == u else u


def _unpack_usage(u: Any) -> Any:
    if not isinstance(u, list):
        return u
    inp, cached, written, out, reasoning = u
    return {
        "input_tokens": inp,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": inp + out,
    }


def new_response(p: CreateResponse, rid: str, created: int) -> dict[str, Any]:
    """The response object of request ``p`` as it starts: in progress, no output."""
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "background": p.background,
        "error": None,
        "incomplete_details": None,
        "instructions": p.instructions,
        "max_output_tokens": p.max_output_tokens,
        "max_tool_calls": p.max_tool_calls,
        "model": p.model,
        "output": [],
        "parallel_tool_calls": p.parallel_tool_calls is not False,
        "previous_response_id": p.previous_response_id,
        "conversation": {"id": p.conversation} if p.conversation else None,
        "prompt_cache_key": p.prompt_cache_key,
        "prompt_cache_retention": p.prompt_cache_retention,
        "reasoning": p.reasoning or {"effort": None, "summary": None},
        "safety_identifier": p.safety_identifier,
        "service_tier": p.service_tier or "default",
        "store": p.store,
        "temperature": p.temperature,
        "text": p.text or {"format": {"type": "text"}},
        "tool_choice": p.tool_choice or "auto",
        "tools": p.tools,
        "top_logprobs": p.top_logprobs,
        "top_p": p.top_p,
        "truncation": p.truncation,
        "usage": None,
        "user": p.user,
        "metadata": p.metadata or {},
    }


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"  # 128 random bits


def hash_key(key: str) -> str:
    """API keys are stored as their SHA-256 (they are random, 256-bit, so no salt)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Owner:
    """The worker process running a response: host, pid and a token for this process."""

    host: str
    pid: int
    token: str

    @classmethod
    def me(cls) -> Owner:
        return _ME

    def as_json(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "token": self.token}


_ME = Owner(socket.gethostname(), os.getpid(), secrets.token_hex(8))


#: The member of a run's record holding the bytes it last stored (never stored itself),
#: or ``_DELETED`` once the response was deleted while it ran.
_WRITTEN = "_written"
_DELETED = b""


#: A record's member holding the ``Kept`` its ``kept`` names (read, never stored).
_KEPT = "_kept"


def _stored(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k != _KEPT}


class Records:
    """JSON objects of one store."""

    def __init__(
        self, store: Store, retention_s: float | None = None, text_grace_s: float = GRACE_S
    ) -> None:
        self.store = store
        self.retention_s = retention_s
        self._beat_lock = threading.Lock()
        self.texts = Texts(store, text_grace_s)

    # -- responses ---------------------------------------------------------------------

    def put_response(self, tenant: str, rec: dict[str, Any], node: int | None) -> bool:
        """Store ``rec``. A run's record stored unfinished (a stream's, a background
        one's) is written again over the bytes that run wrote (kept in ``rec``, never
        stored), and only while it is there: one deleted meanwhile stays deleted (the
        run's later checkpoints and its end are not written; False); one another writer
        changed (a cancel) is written over, as before."""
        o = self.response_object(tenant, rec)
        before = rec.get(_WRITTEN)
        put = functools.partial(
            self.store.put_object, o.kind, o.scope, o.key, o.value, node=node, expires=o.expires
        )
        if before == _DELETED:
            written = False
        elif before is None:
            written = put()
        elif put(expect=before):
            written = True
        elif self.store.get_object(o.kind, o.scope, o.key) is None:
            written = False  # deleted while it ran: its later writes are dropped
        else:
            written = put()  # another writer changed it (a cancel): written over, as before
        if rec["response"].get("status") not in ("queued", "in_progress"):
            rec.pop(_WRITTEN, None)  # its end: what another run of it writes is its own
        else:
            rec[_WRITTEN] = o.value if written else _DELETED
        return bool(written)

    def response_object(self, tenant: str, rec: dict[str, Any]) -> ObjectPut:
        """``rec`` as an object to write in a turn's commit, filed under the reply it
        stores (``at_head``)."""
        expires = (
            None if self.retention_s is None else rec["response"]["created_at"] + self.retention_s
        )
        value = _dumps(self.pack(tenant, rec))
        return ObjectPut(RESPONSE, tenant, rec["response"]["id"], value, None, expires, True)

    def get_response(self, tenant: str, rid: str) -> tuple[dict[str, Any], int | None] | None:
        row = self.store.get_object(RESPONSE, tenant, rid)
        if row is None:
            return None
        return self.unpack(tenant, rid, json.loads(row.value)), row.node

    def delete_response(self, tenant: str, rid: str) -> bool:
        return self.store.delete_object(RESPONSE, tenant, rid)

    def forget_response(self, tenant: str, rid: str) -> tuple[str | None, int | None] | None:
        """``DELETE /v1/responses/{id}``: delete the response; ``None`` if there is none,
        else the thread its history grew on (``None`` for a conversation's, which the
        conversation keeps, or a record that cannot be read) and the node it named."""
        row = self.store.get_object(RESPONSE, tenant, rid)
        if row is None or not self.delete_response(tenant, rid):
            return None
        try:
            rec = json.loads(row.value)
            small = rec["r"] if "r" in rec else rec["response"]
            thread = rec.get("thread", thread_name(tenant, rid))
            if small.get("conversation") is not None or not isinstance(thread, str):
                thread = None
        except (KeyError, TypeError, ValueError, AttributeError):
            thread = None  # a damaged record: deleted, its thread left as it is
        return thread, row.node

    def store_failed(self, tenant: str, record: dict[str, Any], head: int | None) -> None:
        """Store a failed response as it is, else without its output (text the store
        refused), else remove it: never left in progress."""
        rid = record["response"]["id"]
        for output in (record["response"].get("output") or [], []):
            record["response"]["output"] = output
            try:
                self.put_response(tenant, record, head)
                return
            except Exception:
                log.warning("response %s: storing its failure failed", rid, exc_info=True)
        self.remove(tenant, rid)

    def remove(self, tenant: str, rid: str) -> None:
        """``delete_response``, logged (not raised) where the store refuses it."""
        try:
            self.delete_response(tenant, rid)
        except Exception:  # the store refuses every write: its owner's end marks it
            log.error("response %s could not be removed", rid, exc_info=True)

    # -- long texts, stored once (``texts``) ----------------------------------------------

    def put_text(self, tenant: str, value: Any) -> str | None:
        """Store a JSON value once (by its SHA-256); return its key (None for empty)."""
        return self.texts.put(tenant, value)

    def get_text(self, tenant: str, key: str | None, member: str = "texts") -> Any:
        """The text ``key`` names (None for none); ``ValueError`` if it is not stored
        (a record naming it is damaged)."""
        if key is None:
            return None
        if not isinstance(key, str):
            raise ValueError(f"'{member}' is not a text's key: {type(key).__name__}")
        value = self.texts.get(tenant, key)
        if value is None:
            raise ValueError(f"'{member}' names no stored text")
        return value

    def collect_texts(self) -> int:
        """Delete the texts no live response or conversation names, unused for the
        grace period (``texts.Texts.collect``); how many went."""
        return self.texts.collect(_NAMING)

    def sweep_texts(self) -> int | None:
        """``collect_texts`` by the one worker of a store that takes its lease for this
        interval (``texts.Texts.sweep``); None in the others."""
        return self.texts.sweep(_NAMING)

    def pack(self, tenant: str, rec: dict[str, Any]) -> dict[str, Any]:
        """``rec`` as stored: its response as what differs from the defaults, with its
        instructions and tools replaced by text keys (see the module's docstring)."""
        resp = rec["response"]
        rid = resp["id"]
        keys = {k: self.put_text(tenant, resp.get(k)) for k in ("instructions", "tools")}
        small = {
            k: v
            for k, v in resp.items()
            if k not in ("id", "instructions", "tools", "output_text")
            and not (k in _DEFAULTS and v == _DEFAULTS[k])
        }
        if "usage" in small:
            small["usage"] = _pack_usage(small["usage"])
        if rec.get("output_from") is not None:
            small.pop("output", None)  # the stored reply: rendered again when read
        out = {k: v for k, v in rec.items() if k not in ("response", _WRITTEN, _KEPT)}
        out["r"] = small
        if any(keys.values()):
            out["texts"] = {k: v for k, v in keys.items() if v is not None}
        if out.get("kept") is not None:  # taken from the record it continues: used again
            self.texts.use(tenant, out["kept"])
        if out.get("thread") == thread_name(tenant, rid):
            del out["thread"]
        if out.get("model_up") == resp.get("model"):
            del out["model_up"]
        if out.get("instructions") is not None and out["instructions"] == digest(
            resp.get("instructions")
        ):
            del out["instructions"]  # the digest of the stored instructions
        return out

    def unpack(self, tenant: str, rid: str, rec: dict[str, Any]) -> dict[str, Any]:
        try:
            check_response(rec)
            out = self._unpack(tenant, rid, rec)
            self._resolve(tenant, out)
            response_ids(tenant, out)  # its ids' scope, checked here
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise damaged("Response", rid, exc) from None
        return out

    def _unpack(self, tenant: str, rid: str, rec: dict[str, Any]) -> dict[str, Any]:
        keys = rec.get("texts") or {}
        if "response" in rec:  # stored whole (before responses were stored small)
            resp = dict(rec["response"])
            resp["instructions"] = self.get_text(tenant, keys.get("instructions"), "instructions")
            resp["tools"] = self.get_text(tenant, keys.get("tools"), "tools") or []
            return {**rec, "response": resp}
        small = rec["r"]
        full: dict[str, Any] = {"id": rid}
        defaults = json.loads(_DEFAULTS_JSON)
        for k in _ORDER[1:]:
            if k in small:
                full[k] = small[k]
            elif k in defaults:
                full[k] = defaults[k]
        full.update((k, v) for k, v in small.items() if k not in full)
        full["usage"] = _unpack_usage(full.get("usage"))
        full["instructions"] = self.get_text(tenant, keys.get("instructions"), "instructions")
        full["tools"] = self.get_text(tenant, keys.get("tools"), "tools") or []
        out = {k: v for k, v in rec.items() if k not in ("r", "texts")}
        out["response"] = full
        out.setdefault("thread", thread_name(tenant, rid))
        out.setdefault("model_up", full.get("model"))
        if "instructions" not in out:
            out["instructions"] = digest(full["instructions"])
        return out

    # -- conversations -----------------------------------------------------------------

    def put_conversation(self, tenant: str, rec: dict[str, Any]) -> None:
        o = self.conversation_object(tenant, rec)
        self.store.put_object(o.kind, o.scope, o.key, o.value)

    def conversation_object(self, tenant: str, rec: dict[str, Any]) -> ObjectPut:
        if rec.get("kept") is not None:
            self.texts.use(tenant, rec["kept"])  # (a use: see ``texts``)
        return ObjectPut(CONVERSATION, tenant, rec["id"], _dumps(_stored(rec)))

    def get_conversation(self, tenant: str, cid: str) -> dict[str, Any] | None:
        """A conversation's record, with the ids it keeps (``_kept``) read; a record
        that is not one the gateway writes (a damaged one) is a 500 naming it."""
        row = self.store.get_object(CONVERSATION, tenant, cid)
        if row is None:
            return None
        try:
            rec = json.loads(row.value)
            check_conversation(cid, rec)
            self._resolve(tenant, rec)
            conversation_ids(tenant, rec)  # its ids' scope, checked here
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise damaged("Conversation", cid, exc) from None
        return dict(rec)

    def put_kept(self, tenant: str, rec: dict[str, Any], kept: Kept | None) -> None:
        """Make ``rec`` (a conversation's record) keep ``kept`` (stored once, as a text)."""
        if kept is None:
            rec.pop("kept", None)
            rec.pop(_KEPT, None)
        else:
            rec["kept"], rec[_KEPT] = self.put_text(tenant, kept.as_json()), kept

    def _resolve(self, tenant: str, rec: dict[str, Any]) -> None:
        """Read the ids a record keeps (its ``kept`` names them) into its ``_kept``."""
        key = rec.get("kept")
        if key is not None:
            rec[_KEPT] = Kept.from_json(self.get_text(tenant, key, "kept"))

    def delete_conversation(self, tenant: str, cid: str) -> bool:
        return self.store.delete_object(CONVERSATION, tenant, cid)

    # -- API keys ----------------------------------------------------------------------

    def create_key(self, tenant: str) -> str:
        """A new API key for ``tenant``; only its hash is stored. Returns the key."""
        key = "sk-srt-" + secrets.token_urlsafe(32)
        value = {"tenant": tenant, "created": time.time(), "prefix": key[:11]}
        self.store.put_object(KEY, "", hash_key(key), _dumps(value))
        return key

    def tenant_of(self, key: str) -> str | None:
        row = self.store.get_object(KEY, "", hash_key(key))
        return None if row is None else str(json.loads(row.value)["tenant"])

    def revoke_key(self, key_hash: str) -> bool:
        return self.store.delete_object(KEY, "", key_hash)

    # -- workers -----------------------------------------------------------------------

    def mark_ended(self, tenant: str, rec: dict[str, Any], node: int | None) -> None:
        """A response left in progress by a run that is over (``alive`` says so) ends
        ``failed`` with a ``server_error``, as OpenAI reports a response its server could
        not finish (its ``incomplete`` is a token cap or a content filter only): in
        ``rec`` and, if the store takes the write, stored (if not, the next read marks it
        again)."""
        resp = rec["response"]
        resp["status"] = "failed"
        resp["error"] = {
            "code": "server_error",
            "message": "The response's run ended before its end was stored (its worker "
            "stopped, or the store refused the write); its output is what was kept.",
        }
        resp["completed_at"] = int(time.time())
        for item in resp.get("output") or []:
            item["status"] = "incomplete"
        rec.pop("owner", None)
        try:
            self.put_response(tenant, rec, node)
        except Exception:
            log.warning("response %s: storing that it ended failed", resp.get("id"), exc_info=True)

    def beat(self) -> None:
        """Say this worker process is alive (an object refreshed every few seconds)."""
        me = Owner.me()
        with self._beat_lock:
            self.store.put_object(
                WORKER,
                me.host,
                f"{me.pid}:{me.token}",
                _dumps({"at": time.time()}),
                expires=time.time() + 3 * STALE_S,
            )

    def alive(self, owner: dict[str, Any], here: bool) -> bool:
        """Whether an in-progress response is still being made: one of this process's
        while ``here`` (its run has not returned: a run that returned leaving it in
        progress is one whose end the store refused), another's while its worker lives."""
        me = Owner.me()
        if owner.get("token") == me.token:
            return here
        host, pid = owner.get("host"), owner.get("pid")
        if host == me.host and isinstance(pid, int):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                pass
        row = self.store.get_object(WORKER, str(host), f"{pid}:{owner.get('token')}")
        return row is not None and json.loads(row.value)["at"] > time.time() - STALE_S


def _sweep_texts(store: Store, dry_run: bool) -> int:
    """``srt gc``'s sweep of the texts (``store.sweeps``): ``collect_texts`` on a store
    no gateway may be serving (or one that is: the rule of ``texts`` holds across
    processes)."""
    return Texts(store).collect(_NAMING, dry_run=dry_run)


sweeps.declare(
    TEXT,
    _sweep_texts,
    noun="gateway text",
    why=f"that no live response or conversation names, unused for {GRACE_S / 3600:g} hours",
)
