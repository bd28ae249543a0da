"""Building blocks for the conformance suite: canonical messages and the NewNode rows
of a chain, made the way a session makes them (hashes by ``srt._core``)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from srt import _core
from srt.message import canonicalize
from srt.store import CallRecord, NewNode, Store


def body(role: str, text: str) -> bytes:
    out, _meta = canonicalize({"role": role, "content": text})
    return out


def nodes(
    bodies: Sequence[bytes],
    after: bytes = _core.ROOT,
    *,
    meta: bytes | None = None,
    status: str | None = None,
) -> list[NewNode]:
    """The rows that append ``bodies`` below a node whose prefix hash is ``after``."""
    hashes = [_core.digest(b) for b in bodies]
    prefixes = _core.chain_many(after, hashes)
    return [
        NewNode(h, b, p, meta, status) for h, b, p in zip(hashes, bodies, prefixes, strict=True)
    ]


def conversation(n: int, tag: str = "t") -> list[bytes]:
    return [body("user" if i % 2 == 0 else "assistant", f"{tag} message {i}") for i in range(n)]


def new_session(store: Store, name: str, bodies: Sequence[bytes] = ()) -> tuple[int, list[int]]:
    """A session holding ``bodies``: (session id, node ids)."""
    row = store.create_session(name, None, exist_ok=False)
    ids = store.append(row.id, None, None, 0, nodes(bodies)) if bodies else []
    return row.id, ids


def extend(store: Store, name: str, bodies: Sequence[bytes]) -> list[int]:
    """Append ``bodies`` to session ``name`` at its current head."""
    row = store.get_session(name)
    assert row is not None
    chain = store.chain(row.head)
    after = chain[-1][3] if chain else _core.ROOT
    return store.append(row.id, row.head, row.head, len(chain), nodes(bodies, after))


def head_of(store: Store, name: str) -> int | None:
    row = store.get_session(name)
    assert row is not None
    return row.head


def call(sid: int | None, name: str | None, **fields: object) -> CallRecord:
    values: dict[str, object] = {
        "at": time.time(),
        "session": sid,
        "session_name": name,
        "node": None,
        "provider": "openai",
        "model": "gpt-4o-mini",
        "format": "openai.chat",
        "body_hash": b"\x01" * 16,
        "body_bytes": 123,
        "messages": 2,
    }
    values.update(fields)
    return CallRecord(**values)  # type: ignore[arg-type]


def counts(store: Store) -> tuple[int, int, int, int]:
    """(messages, nodes, sessions, ledger rows) as ``verify`` counts them."""
    r = store.verify()
    assert r.ok, [str(f) for f in r.faults]
    return r.messages, r.nodes, r.sessions, r.calls
