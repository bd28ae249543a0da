"""The checks every engine runs on what it is given and what it reads: a chain's hashes and
links (``check_chain``), an append's links (``link_error`` and the messages it refuses
with), an object's names and value, a search's text and limit. ``srt.store.base``
re-exports them with the protocol they serve."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from .. import _core
from .._hashing import XXH3, Hashing
from ..errors import ConfigError, CorruptionError

__all__ = [
    "SEARCH_BATCH_MAX",
    "ChainRow",
    "NewNode",
    "broken_link",
    "check_chain",
    "check_expect",
    "check_object",
    "check_search",
    "check_written_before",
    "damaged_metadata",
    "head_not_stored",
    "link_error",
    "metadata_ok",
    "not_below",
    "not_stored",
    "object_changed",
    "object_node_gone",
    "object_session_gone",
]

#: One message of a chain, as ``Store.chain`` returns it: ``(node id, message hash,
#: canonical body, prefix hash, status, metadata JSON, depth)``. A plain tuple, not a
#: NamedTuple: a cold load reads thousands of them, and building a NamedTuple per row
#: measured 0.5-1 ms per 2,000 rows, against a whole cold load of about 8 ms.
ChainRow = tuple[int, bytes, bytes, bytes, "str | None", "bytes | str | None", int]


class NewNode(NamedTuple):
    """One message to append: its hash, canonical body, prefix hash, metadata JSON (never
    hashed) and status (``None``, or the status of a partial reply)."""

    hash: bytes
    body: bytes
    prefix: bytes
    meta: bytes | None = None
    status: str | None = None


# -- the chain check ----------------------------------------------------------------------


def check_chain(
    rows: list[ChainRow], head: int, start: bytes = _core.ROOT, hashing: Hashing = XXH3
) -> list[ChainRow]:
    """``rows`` (root first) if every body hashes to its hash, every prefix chains from
    the previous one (the first from ``start``: the root, or the prefix of the node the
    rows continue) and the last row is ``head``; else ``CorruptionError``.

    Every engine's ``chain`` ends with this, so a damaged store never returns altered
    text or bytes that are not JSON. ``hashing``: the store's (``srt._hashing``).
    """
    hashes = [r[1] for r in rows]
    digest = hashing.digest
    if (
        not all(type(r[2]) is bytes and type(r[1]) is bytes for r in rows)
        or [digest(r[2]) for r in rows] != hashes
        or hashing.chain_many(start, hashes) != [r[3] for r in rows]
        or not rows
        or rows[-1][0] != head
    ):
        raise CorruptionError(
            "the session's stored messages fail their hash check (the file is "
            "damaged); run srt verify"
        )
    return rows


def broken_link(item: NewNode) -> str:
    """What an append says of a new node whose prefix hash does not chain."""
    return (
        f"prefix hash {item.prefix.hex()} does not chain from its parent and message "
        f"{item.hash.hex()}; nothing was linked"
    )


def not_stored(parent: int) -> str:
    """What an append says when the node to append below is not stored."""
    return (
        f"the node to append below ({parent}) is not stored (collected by gc?); nothing was written"
    )


def head_not_stored(node: int) -> str:
    """What ``move_head`` says when the node to move the head to is not stored."""
    return (
        f"the node to move the session head to ({node}) is not stored (collected by gc?); "
        "nothing was written: refresh() and retry"
    )


def object_node_gone(node: int) -> str:
    """What an object write says when the node it is to keep alive is not stored."""
    return (
        f"the node an object refers to ({node}) is not stored (collected by gc?); "
        "nothing was written"
    )


def not_below(parent: int | None, stored: bytes, given: bytes) -> str:
    """What an append says when ``parent`` is stored with another prefix hash than the
    one its caller chained from."""
    below = "the root" if parent is None else f"the node to append below ({parent})"
    return (
        f"{below} carries prefix hash {stored.hex()}, not the {given.hex()} its new "
        "messages chain from (a node id collected and reused, or a stale history); "
        "nothing was linked"
    )


def link_error(items: Sequence[NewNode], above: bytes, hashing: Hashing) -> str | None:
    """``None`` if each item's prefix hash chains from the one before it under
    ``hashing``, the first from ``above``; else what is wrong (``broken_link``)."""
    want = hashing.chain_many(above, [it.hash for it in items])
    if [it.prefix for it in items] == want:
        return None
    return broken_link(next(it for it, w in zip(items, want, strict=True) if it.prefix != w))


def check_object(kind: Any, scope: Any, key: Any, value: Any = b"") -> None:
    """``ConfigError`` unless kind and key are non-empty str, scope a str and value bytes
    (every engine checks an object's names and value before it writes)."""
    for what, text in (("kind", kind), ("scope", scope), ("key", key)):
        if not isinstance(text, str) or (what != "scope" and not text):
            raise ConfigError(f"an object's {what} must be a non-empty str")
    if not isinstance(value, bytes):
        raise ConfigError(f"an object's value must be bytes, got {type(value).__name__}")


def check_written_before(when: Any) -> None:
    """``ConfigError`` unless ``when`` (``delete_object``'s ``written_before``) is None or
    a finite Unix time."""
    if when is None:
        return
    if isinstance(when, bool) or not isinstance(when, (int, float)) or not math.isfinite(when):
        raise ConfigError("written_before must be None or a finite Unix time (a number)")


#: Rows a search reads at a time: a larger ``limit`` (up to any int) reads in batches.
SEARCH_BATCH_MAX = 10_000


def check_search(text: Any, limit: Any) -> None:
    """``ConfigError`` unless ``text`` is valid Unicode text without U+0000 and ``limit``
    an int of 1 or more (every engine checks a search before it reads)."""
    try:
        str.encode(text, "utf-8")
    except (TypeError, UnicodeEncodeError):
        raise ConfigError(
            "the search text must be valid Unicode text (no lone surrogates)"
        ) from None
    if "\x00" in text:  # indexed as a break between words: refused, not searched as one
        raise ConfigError("the search text holds U+0000 (NUL), which no search can find")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError("limit must be an int, at least 1")


def check_expect(expect: Any, if_absent: Any, check: Any = False) -> None:
    """``ConfigError`` unless ``expect`` is ``None`` or bytes, and not given with
    ``if_absent``, and given with ``check`` (``ObjectPut``'s); every engine checks a
    conditional object write before it writes."""
    if check and expect is None:
        raise ConfigError("an object checked by an append needs its expected value")
    if expect is None:
        return
    if not isinstance(expect, bytes):
        raise ConfigError(f"an object's expected value must be bytes, got {type(expect).__name__}")
    if if_absent:
        raise ConfigError("an object is written if_absent or over an expected value, not both")


def object_session_gone(kind: str, key: str, session: int) -> str:
    """What an append says when an object it was to write is filed under another session
    (``store.owners``) that is gone."""
    return (
        f"the {kind} object {key!r} is filed under session {session}, which was deleted "
        "(by another writer); nothing was written"
    )


def object_changed(kind: str, scope: str, key: str) -> str:
    """What an append says when an object it was to write only over an expected value
    (or only where none is) found another."""
    return (
        f"the {kind} object {key!r} of {scope!r} is no longer the one read (another writer "
        "changed, wrote or removed it); nothing was written"
    )


def metadata_ok(raw: bytes | str) -> bool:
    """A node's stored metadata is a JSON object (srt writes nothing else there)."""
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:  # (JSONDecodeError, UnicodeDecodeError)
        return False


def damaged_metadata() -> CorruptionError:
    """A node's metadata that is not JSON: what reading it beside its message raises."""
    return CorruptionError(
        "a message's stored metadata is not JSON (the store is damaged); run srt verify"
    )
