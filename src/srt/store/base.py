"""The Store protocol: what srt asks of a storage engine, in typed rows and operations.

Nothing here knows SQL, connections or a database library. An engine (SQLite in
``srt.store.sqlite``; PostgreSQL in ``srt.store.postgres``) subclasses ``Store`` and keeps every
promise below; the conformance suite in ``tests/store/`` checks them on each engine with the
same tests.

The data model:

* **messages**: canonical message bytes, content-addressed by their 16-byte hash and stored once
  however many sessions share them;
* **nodes**: a prefix tree; a node's prefix hash is H(parent prefix || message hash), so equal
  histories share nodes;
* **sessions**: named heads (a node id, or ``None`` for an empty session);
* **calls**: the usage ledger, one row per request sent, kept when its session or node goes;
* **objects**: small values under (kind, scope, key) for the layers above (the gateway's
  responses, a LangGraph saver's checkpoints). An object naming a node keeps its chain alive
  under ``gc``; one past its ``expires`` time is invisible, and ``gc`` removes it.

The promises every engine keeps:

* a write is all or nothing: on any error nothing of it is stored;
* ``append`` and ``move_head`` are compare-and-swap on the session head: if the head is no
  longer ``expected``, ``ConflictError`` and nothing is written;
* a message or node that already exists is reused after a byte-for-byte (message) or structural
  (node) check; a mismatch is ``CorruptionError`` and nothing is linked;
* ``chain`` checks every body against its hash and every prefix against the chain
  (``check_chain``): a damaged store raises ``CorruptionError``, never altered bytes;
* ``gc`` never removes a node that a session head or an object reaches, nor an object
  filed under a session that exists (``store.owners``);
* every failure is an ``srt.SrtError``: the engine's own exceptions never leave it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple

from .. import _core
from .._hashing import XXH3, Hashing
from .._types import SessionInfo
from ..errors import ConfigError, CorruptionError
from .checks import (
    SEARCH_BATCH_MAX,
    ChainRow,
    NewNode,
    broken_link,
    check_chain,
    check_expect,
    check_object,
    check_search,
    link_error,
    not_below,
    not_stored,
    object_changed,
    object_node_gone,
    object_session_gone,
)
from .reports import (
    MAX_FAULTS,
    USER_PREFIX,
    BackupReport,
    Fault,
    FaultList,
    GcReport,
    Hit,
    SessionOverview,
    TreeNode,
    VacuumReport,
    VerifyReport,
    build_tree,
    session_overviews,
)

__all__ = [
    "ANY_HEAD",
    "CALL_FIELDS",
    "MAX_FAULTS",
    "SEARCH_BATCH_MAX",
    "USER_PREFIX",
    "BackupReport",
    "CallRecord",
    "ChainRow",
    "Fault",
    "FaultList",
    "GcReport",
    "Hit",
    "NewNode",
    "ObjectPut",
    "ObjectRow",
    "SessionOverview",
    "SessionRow",
    "Store",
    "StoredResponse",
    "TreeNode",
    "VacuumReport",
    "VerifyReport",
    "broken_link",
    "build_tree",
    "check_chain",
    "check_expect",
    "check_object",
    "check_search",
    "link_error",
    "moved_on",
    "not_below",
    "not_stored",
    "object_changed",
    "object_node_gone",
    "object_session_gone",
    "session_overviews",
    "store_protocol",
]

# -- rows ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A session as stored: its id, name, head node (``None``: empty) and times, and the
    head's prefix hash when the engine read it with the row (``get_session``; ``None``:
    not read, or an empty session)."""

    id: int
    name: str
    head: int | None
    created: float
    updated: float
    head_prefix: bytes | None = None


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One row of the usage ledger: a request sent to a provider.

    ``node`` is the node of the reply it stored; ``Store.append`` fills it in with
    the last node it appends. ``params`` is the JSON text of the request parameters
    that shaped the body (``None`` when not recorded). ``reply_model`` is the model the
    reply named, when it differs from ``model`` (an Azure deployment's real model, a
    dated snapshot); ``None`` otherwise. ``id`` is given by the store.
    """

    at: float
    session: int | None
    session_name: str | None
    node: int | None
    provider: str
    model: str
    format: str
    body_hash: bytes
    body_bytes: int
    messages: int
    input_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    output_tokens: int | None = None
    predicted_cached_tokens: int | None = None
    explain: str | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    retries: int = 0
    status: str = "ok"
    error: str | None = None
    response_id: str | None = None
    previous_response_id: str | None = None
    stored: int | None = None
    fallback: str | None = None
    params: str | None = None
    cache_write_1h_tokens: int | None = None
    reasoning_tokens: int | None = None
    reply_model: str | None = None
    id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The row as ``Session.calls()`` gives it: ``id`` first, then every field."""
        out: dict[str, Any] = {"id": self.id}
        for name in CALL_FIELDS:
            out[name] = getattr(self, name)
        return out


#: The ledger's fields a caller fills in, in order (``CallRecord`` without ``id``).
CALL_FIELDS: tuple[str, ...] = tuple(f for f in CallRecord.__dataclass_fields__ if f != "id")


class StoredResponse(NamedTuple):
    """The newest stored server-side response found by ``Store.last_response``."""

    node: int
    response_id: str
    at: float


@dataclass(frozen=True, slots=True)
class ObjectPut:
    """An object to write with ``Store.append`` (in the append's transaction).

    ``at_head`` files the object under the node the append makes the head (the
    reply it stores), which is not known before the append; it overrides ``node``.
    ``if_absent`` and ``expect`` make it conditional as in ``Store.put_object``: an
    append whose condition fails is a ``ConflictError`` and writes nothing. ``check``
    (with ``expect``) writes nothing of the object: the append only requires that it
    still holds ``expect``, and holds it so until the append commits (a write of it
    by another waits, then finds what it expected, or the append waits and fails).
    """

    kind: str
    scope: str
    key: str
    value: bytes
    node: int | None = None
    expires: float | None = None
    at_head: bool = False
    if_absent: bool = False
    expect: bytes | None = None
    check: bool = False


@dataclass(frozen=True, slots=True)
class ObjectRow:
    """A stored object. Objects list in insertion order; replacing one keeps its place."""

    kind: str
    scope: str
    key: str
    value: bytes
    node: int | None
    expires: float | None
    created: float
    updated: float


# -- the protocol -----------------------------------------------------------------------------


#: ``Store.delete_session``'s default: whatever the session's head is.
ANY_HEAD: Final = "any"


def moved_on(name: str) -> str:
    """What a delete conditional on a head that moved meanwhile is told."""
    return (
        f"session {name!r} moved on since its head was read (another writer added to it); "
        "it was not deleted"
    )


class Store(ABC):
    """A storage engine. Subclasses implement every abstract operation.

    Engines are safe to share between threads. Every operation raises only ``srt.SrtError``
    subclasses: ``StoreError`` (and its ``StoreBusyError``, ``CorruptionError``, ...) for the
    engine's failures, ``SessionNotFoundError``, ``SessionExistsError`` and ``ConflictError``
    as documented, ``ConfigError`` for bad arguments."""

    #: Where the data lives, for people: a file path, or a URL without its password.
    location: str = ""
    #: How this store hashes messages and links its prefix chain (``srt._hashing``): the
    #: store records it when it is created and opens only with the same.
    hashing: Hashing = XXH3
    #: Seconds a write waits for other writers before ``StoreBusyError`` (and the
    #: default deadline of ``Session.append(rebase=True)``; on PostgreSQL also how long a
    #: search waits for another connection's build of the search index).
    busy_timeout: float = 10.0
    #: Whether a write waits on a server: the asyncio API then stores a reply from a writer
    #: thread while the loop runs other tasks (for a file the hand-over costs more).
    remote: bool = False

    @property
    def store_id(self) -> str:
        """A random id (hex) made with the store; it names files derived from the store
        elsewhere (the local provider's saved KV states). ``""`` if the engine has none."""
        return ""

    def __repr__(self) -> str:
        return f"<srt store {type(self).__name__} {self.location!r}>"

    # -- sessions ------------------------------------------------------------------

    @abstractmethod
    def get_session(self, name: str) -> SessionRow | None:
        """The session called ``name``, or ``None``; with its head's prefix hash if the
        engine reads it in the same statement (a new handle then need not read it)."""

    @abstractmethod
    def create_session(
        self,
        name: str,
        head: int | None,
        *,
        exist_ok: bool,
        head_prefix: bytes | None = None,
        limit: int | None = None,
    ) -> SessionRow:
        """Create a session at ``head``. If one named ``name`` exists, return it with
        ``exist_ok``, else raise ``SessionExistsError``. With ``head_prefix``, the node
        must still carry that prefix hash (a node id seen earlier may have been
        collected and reused): otherwise ``ConflictError`` and nothing is written.
        With ``limit``, a store holding that many sessions refuses a new one
        (``SessionLimitError``), counted in the same transaction as the insert, so
        creators in other threads and processes cannot pass it together."""

    @abstractmethod
    def delete_session(self, name: str, *, if_head: int | Literal["any"] | None = ANY_HEAD) -> None:
        """Delete the session's head row and, in the same transaction, the objects filed
        under its id (``store.owners``); its nodes stay for forks and ``gc``.
        ``SessionNotFoundError`` if there is none. With ``if_head`` (a node id, or
        ``None`` for an empty session), only while the head is still that one, checked
        in the deleting statement (a compare-and-swap, like ``move_head``): a head that
        moved is a ``ConflictError`` and nothing is deleted, so a turn another writer
        added between a caller's check and its delete is never lost."""

    @abstractmethod
    def rename_session(self, old: str, new: str) -> None:
        """``SessionExistsError`` if ``new`` is taken, ``SessionNotFoundError`` if
        ``old`` does not exist."""

    @abstractmethod
    def list_sessions(self) -> list[SessionInfo]:
        """Every session with its message count and head prefix, sorted by name."""

    @abstractmethod
    def overview(self) -> list[SessionOverview]:
        """Every session with its message, turn and estimated token counts (``srt ls``)."""

    @abstractmethod
    def tree(self, name: str, *, width: int = 200) -> TreeNode | None:
        """Every message of every session that shares session ``name``'s first message,
        as a tree from that message (``None`` if it is empty); ``SessionNotFoundError``."""

    # Head history (issue 14: ``Session.history()``, ``srt log``) goes here: the heads
    # a session had before a rewind or an edit, and a gc retention for them.

    # -- nodes -----------------------------------------------------------------------

    @abstractmethod
    def chain(self, head: int | None) -> list[ChainRow]:
        """The messages from the root to ``head``, in order, checked by ``check_chain``."""

    def chain_extension(self, head: int, above: int, prefix: bytes) -> list[ChainRow] | None:
        """The messages of ``head``'s chain deeper than ``above``, oldest first and checked
        like ``chain``'s, if they continue the history whose last prefix hash (at depth
        ``above``) is ``prefix``; ``None`` if they do not (the head moved to another
        branch). ``Session.refresh`` reads only these after other writers appended. This
        default reads the whole chain; an engine whose round trips cost more than
        SQLite's reads only the new rows."""
        rows = self.chain(head)
        if len(rows) <= above or (rows[above - 1][3] if above else _core.ROOT) != prefix:
            return None
        return rows[above:]

    @abstractmethod
    def node_prefix(self, node: int) -> bytes:
        """The node's prefix hash; ``CorruptionError`` if the node is missing."""

    @abstractmethod
    def node_meta(self, node: int) -> bytes | str | None:
        """The node's metadata JSON, or ``None``."""

    def node_depth(self, node: int) -> int:
        """How many messages the node's chain holds (its depth, from 1); ``CorruptionError``
        if the node is missing. This default reads the whole chain; an engine reads one row."""
        rows = self.chain(node)
        if not rows:
            raise CorruptionError(f"node {node} is missing")
        return max(int(r[6]) for r in rows)

    def tail(self, node: int, depth: int) -> list[tuple[int, bytes]]:
        """The ``(node id, message body)`` of ``node``'s chain deeper than ``depth``,
        oldest first (``node`` itself last). This default reads the whole chain; an
        engine walks only the part asked for."""
        return [(r[0], r[2]) for r in self.chain(node) if r[6] > depth]

    # -- writes ----------------------------------------------------------------------

    @abstractmethod
    def append(
        self,
        session: int,
        expected: int | None,
        parent: int | None,
        depth: int,
        items: Sequence[NewNode],
        *,
        call: CallRecord | None = None,
        objects: Sequence[ObjectPut] = (),
        deadline: float | None = None,
        parent_prefix: bytes | None = None,
    ) -> list[int]:
        """Add ``items`` below ``parent`` (at ``depth``) and make the last one the head,
        if the head is still ``expected``: otherwise ``ConflictError`` (or
        ``SessionNotFoundError``) and nothing is written. Returns the node ids.

        Each item's prefix hash must chain from the one before it, the first from the
        prefix hash ``parent`` carries as stored (``_core.ROOT`` below no parent); a
        ``parent`` that is not stored is a ``ConflictError``, a broken link a
        ``CorruptionError``, and nothing is written. ``parent_prefix`` is the prefix
        hash the caller chained from (``parent``'s as it knows it): a parent stored with
        another is refused the same way. An engine that cannot hash on its server
        (PostgreSQL) checks the links on the client from ``parent_prefix`` and the
        parent's in the append's own statement; without it, it reads the parent's
        prefix hash first (one round trip more).

        ``call`` (its ``node`` set to the new head) and ``objects`` are written in the
        same transaction; an object written ``if_absent`` or over an ``expect``ed value
        that finds another is a ``ConflictError`` and nothing is written. Waiting for
        other writers ends at ``deadline`` (a ``time.monotonic()`` value; default: the
        engine's busy timeout from now) with ``StoreBusyError``.
        """

    @abstractmethod
    def move_head(self, session: int, expected: int | None, new: int | None) -> None:
        """Compare-and-swap the head without adding nodes (rewind, or a move onto a fork):
        ``new`` is any stored node (nodes belong to no session) or ``None``. A head no
        longer ``expected`` is a ``ConflictError`` (``SessionNotFoundError`` for a deleted
        session), and so is a ``new`` not stored (never, or collected by gc); nothing is
        written. Node ids are never given again, so an ``expected`` id a caller kept
        cannot match a node stored after it was collected."""

    # -- the ledger ------------------------------------------------------------------

    @abstractmethod
    def record_call(self, call: CallRecord) -> int:
        """Write one ledger row on its own (a request that stored no reply); its id."""

    @abstractmethod
    def calls(
        self, *, session: int | None = None, session_name: str | None = None
    ) -> list[CallRecord]:
        """Ledger rows, oldest first: all, or those of one session id or name."""

    @abstractmethod
    def last_response(self, nodes: Sequence[int], format: str, model: str) -> StoredResponse | None:
        """The newest stored server-side response (status ok, ``stored``) recorded for
        one of ``nodes`` in ``format`` for ``model``: the node nearest the head wins."""

    # -- objects ---------------------------------------------------------------------

    @abstractmethod
    def put_object(
        self,
        kind: str,
        scope: str,
        key: str,
        value: bytes,
        *,
        node: int | None = None,
        expires: float | None = None,
        if_absent: bool = False,
        expect: bytes | None = None,
    ) -> bool:
        """Store ``value`` under (kind, scope, key), replacing any earlier value (which
        keeps its place in the order). ``node`` keeps that node's chain alive under
        ``gc`` (``ConflictError`` if the node is not stored); ``expires`` is a Unix
        time after which the object is gone. With ``if_absent``, only if no live object
        has that name; with ``expect`` (compare-and-swap), only over a live object whose
        value is still exactly those bytes (its node and expiry are not compared; one
        deleted or expired is not written). Either is atomic: of writers racing, one
        wins. An object of a kind filed under a session (``store.owners``) is written
        only while that session exists, checked atomically with the write. True if
        written."""

    @abstractmethod
    def get_object(self, kind: str, scope: str, key: str) -> ObjectRow | None:
        """The object, or ``None`` (also once it has expired)."""

    @abstractmethod
    def list_objects(
        self,
        kind: str,
        scope: str,
        *,
        after: str | None = None,
        limit: int = 100,
        descending: bool = False,
    ) -> list[ObjectRow]:
        """Live objects of (kind, scope) in insertion order (newest first with
        ``descending``), starting after the object keyed ``after``."""

    @abstractmethod
    def delete_object(
        self, kind: str, scope: str, key: str, *, written_before: float | None = None
    ) -> bool:
        """Remove the object; False if there was none. With ``written_before`` (a Unix
        time), only if it was last written before then (its ``updated``), checked
        atomically with the deletion: a writer that rewrote it meanwhile keeps it."""

    @abstractmethod
    def scan_objects(self, *, batch: int = 500, kind: str | None = None) -> Iterator[ObjectRow]:
        """Every live object of every kind and scope (of ``kind`` only, if given), in
        insertion order (``srt copy`` reads a whole store with it), fetched ``batch``
        at a time."""

    # -- maintenance -------------------------------------------------------------------

    @abstractmethod
    def gc(
        self, *, secure_delete: bool = True, dry_run: bool = False, watch: Sequence[bytes] = ()
    ) -> GcReport:
        """Remove expired objects and those filed under a session id no session has
        (``store.owners``), then the nodes that no session head and no object reaches
        and the messages no node uses. Ledger rows stay, their node cleared.
        ``dry_run`` counts and writes nothing. Of the prefix hashes in ``watch``, the
        report's ``dead_prefixes`` are those no live node carries afterwards (the
        runtime removes files named after them)."""

    @abstractmethod
    def verify(self) -> VerifyReport:
        """Check every hash, chain and reference in the store."""

    @abstractmethod
    def search(
        self,
        text: str,
        *,
        limit: int = 20,
        syntax: bool = False,
        announce: Callable[[int], None] | None = None,
    ) -> list[Hit]:
        """Messages some session uses whose text has every word of ``text`` (with
        ``syntax``, ``text`` is the engine's own query language), best match first.
        The first search may build the index, calling ``announce`` with the number of
        messages it is about to index. ``ConfigError`` for U+0000 or a bad query."""

    @abstractmethod
    def has_search_index(self) -> bool:
        """Whether the store carries the search index."""

    @abstractmethod
    def build_search_index(self, *, announce: Callable[[int], None] | None = None) -> int | None:
        """Build the search index unless it exists: the number of messages indexed, or
        ``None`` if it was there."""

    @abstractmethod
    def drop_search_index(self) -> bool:
        """Remove the search index; False if there was none."""

    @abstractmethod
    def vacuum(self) -> VacuumReport:
        """Give the space of removed rows back to the system."""

    @abstractmethod
    def checkpoint(self) -> bool:
        """Make every committed write durable in the main store (SQLite: copy the WAL
        into the file and truncate it); False if readers kept it from finishing."""

    def backup(self, dest: str) -> BackupReport:
        """Copy the store to the new file ``dest`` while writers go on: a consistent
        copy of every turn committed before the backup began, checked, never over an
        existing file. Engines without an online copy raise ``ConfigError``."""
        raise ConfigError(f"the {type(self).__name__} engine cannot make an online backup")

    @abstractmethod
    def close(self) -> None:
        """Release every connection. Using the store afterwards reopens them."""


def store_protocol() -> list[str]:
    """The names of the operations every engine implements (for docs and tests)."""
    return sorted(Store.__abstractmethods__)
