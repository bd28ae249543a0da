"""The gateway's stored objects: responses, conversations, API keys and live workers.

Each is a JSON value in the store's objects (kind, scope = tenant, key = id); a response
object holds the node of its last output item, so its whole history stays alive under
gc for as long as the response exists. Nothing here writes SQL: it is the store's
object API with JSON on top.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..store.base import Store

__all__ = ["Owner", "Records", "hash_key", "new_id"]

RESPONSE = "gw.response"
CONVERSATION = "gw.conversation"
KEY = "gw.key"
TEXT = "gw.text"
WORKER = "gw.worker"
#: A worker that has not beaten for this long is taken for dead (other hosts).
STALE_S = 30.0


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


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


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class Records:
    """JSON objects of one store."""

    def __init__(self, store: Store, retention_s: float | None = None) -> None:
        self.store = store
        self.retention_s = retention_s
        self._beat_lock = threading.Lock()
        self._texts: set[tuple[str, str]] = set()

    # -- responses ---------------------------------------------------------------------

    def put_response(self, tenant: str, rec: dict[str, Any], node: int | None) -> None:
        packed = self.pack(tenant, rec)
        expires = (
            None if self.retention_s is None else rec["response"]["created_at"] + self.retention_s
        )
        self.store.put_object(
            RESPONSE, tenant, rec["response"]["id"], _dumps(packed), node=node, expires=expires
        )

    def get_response(self, tenant: str, rid: str) -> tuple[dict[str, Any], int | None] | None:
        row = self.store.get_object(RESPONSE, tenant, rid)
        if row is None:
            return None
        return self.unpack(tenant, json.loads(row.value)), row.node

    def delete_response(self, tenant: str, rid: str) -> bool:
        return self.store.delete_object(RESPONSE, tenant, rid)

    def list_responses(self, tenant: str, limit: int = 100) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in self.store.list_objects(RESPONSE, tenant, limit=limit)]

    # -- long texts, stored once --------------------------------------------------------
    # A response's instructions and tools are usually the same every turn: each
    # response stores their digest, and the text is stored once per tenant.

    def put_text(self, tenant: str, value: Any) -> str | None:
        """Store a JSON value once (by its SHA-256); return its key (None for empty)."""
        if not value:
            return None
        data = _dumps(value)
        key = hashlib.sha256(data).hexdigest()
        if (tenant, key) not in self._texts:
            if self.store.get_object(TEXT, tenant, key) is None:
                self.store.put_object(TEXT, tenant, key, data)
            self._texts.add((tenant, key))
        return key

    def get_text(self, tenant: str, key: str | None) -> Any:
        if key is None:
            return None
        row = self.store.get_object(TEXT, tenant, key)
        return None if row is None else json.loads(row.value)

    def pack(self, tenant: str, rec: dict[str, Any]) -> dict[str, Any]:
        """``rec`` with its response's instructions and tools replaced by text keys."""
        resp = rec["response"]
        keys = {k: self.put_text(tenant, resp.get(k)) for k in ("instructions", "tools")}
        return {**rec, "response": {**resp, "instructions": None, "tools": []}, "texts": keys}

    def unpack(self, tenant: str, rec: dict[str, Any]) -> dict[str, Any]:
        keys = rec.get("texts") or {}
        resp = dict(rec["response"])
        resp["instructions"] = self.get_text(tenant, keys.get("instructions"))
        resp["tools"] = self.get_text(tenant, keys.get("tools")) or []
        return {**rec, "response": resp}

    # -- conversations -----------------------------------------------------------------

    def put_conversation(self, tenant: str, rec: dict[str, Any]) -> None:
        self.store.put_object(CONVERSATION, tenant, rec["id"], _dumps(rec))

    def get_conversation(self, tenant: str, cid: str) -> dict[str, Any] | None:
        row = self.store.get_object(CONVERSATION, tenant, cid)
        return None if row is None else json.loads(row.value)

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

    def alive(self, owner: dict[str, Any]) -> bool:
        """Whether the worker that owns an in-progress response is still running."""
        me = Owner.me()
        if owner.get("token") == me.token:
            return True
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
