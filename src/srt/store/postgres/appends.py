"""The append of a ``PostgresStore`` (the Store protocol's ``append``), kept apart from
the store's sessions, ledger and maintenance: ``PostgresStore`` takes it from
``AppendMixin``. An append is one statement, a call of srt's server-side ``append``
(``schema``), sent in one round trip; objects written on a condition, and objects filed
under another session than the one appended to (``store.owners``), are written by the
client's statement around the call.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import psycopg
from psycopg.types.json import Jsonb

from ... import _core
from ...errors import ConflictError, CorruptionError, SessionNotFoundError, StoreUnavailableError
from ..base import (
    CallRecord,
    NewNode,
    ObjectPut,
    check_expect,
    check_object,
    link_error,
    not_below,
    not_stored,
    object_changed,
    object_node_gone,
    object_session_gone,
)
from ..owners import session_of
from .errors import HEAD_MOVED, is_connection_error
from .objects import conditional
from .statements import APPEND, APPEND_BY, call_json, guarded

if TYPE_CHECKING:
    from ..._hashing import Hashing
    from .pool import Database

__all__ = ["AppendMixin"]


def _meta_bytes(meta: bytes | str | None) -> bytes | None:
    return meta.encode("utf-8") if isinstance(meta, str) else meta


_MAX_MS = 2**31 - 1  # PostgreSQL's largest lock_timeout


class AppendMixin:
    """``append`` for ``PostgresStore``."""

    if TYPE_CHECKING:  # PostgresStore's own

        def _read(self, action: str, sql: str, args: Sequence[Any] = ()) -> list[Any]: ...

        db: Database
        hashing: Hashing

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
        for obj in objects:
            check_object(obj.kind, obj.scope, obj.key, obj.value)
            check_expect(obj.expect, obj.if_absent, obj.check)
        # Objects filed under another session than this one (``store.owners``) are written
        # only while it exists, as ``put_object`` writes them: the statement holds those
        # sessions' rows first (``HELD``). (This session's own row the append locks, and
        # it refuses if it is gone.)
        others = sorted(
            {sid for o in objects if (sid := session_of(o.kind, o.scope)) not in (None, session)}
        )
        every = objects
        # Objects written on a condition go after the append's statement, in its transaction.
        held = [o for o in objects if o.if_absent or o.expect is not None]
        if held:
            objects = [o for o in objects if not (o.if_absent or o.expect is not None)]
        # The links are checked here, where srt can hash; the first one's parent prefix
        # hash goes with the statement, which compares it with the stored one.
        above = parent_prefix
        if parent is None:
            if above is not None and above != _core.ROOT:
                self._refuse(session, expected, CorruptionError(not_below(None, _core.ROOT, above)))
            above = _core.ROOT
        elif above is None and items:  # not given: read it, a round trip more
            above = self._parent_prefix(session, expected, parent)
        broken = link_error(items, above, self.hashing) if above is not None and items else None
        if broken is not None:
            self._refuse(session, expected, CorruptionError(broken))
        args = (
            session,
            expected,
            parent,
            depth,
            [it.hash for it in items],
            [it.body for it in items],
            [it.prefix for it in items],
            [_meta_bytes(it.meta) for it in items],
            [it.status for it in items],
            time.time(),
            Jsonb(call_json(call)) if call is not None else None,
            [o.kind for o in objects],
            [o.scope for o in objects],
            [o.key for o in objects],
            [o.value for o in objects],
            [o.node for o in objects],
            [o.expires for o in objects],
            [o.at_head for o in objects],
            above,
        )
        sql = APPEND if deadline is None else APPEND_BY
        sql = self.db.sql(guarded(sql) if others else sql)
        first = (others, len(others)) if others else ()

        def send(conn: psycopg.Connection[Any]) -> psycopg.Cursor[Any]:
            if deadline is None:
                return conn.execute(sql, (*first, *args))
            # lock_timeout holds at most INT_MAX ms (24.8 days): longer is "that long"
            left_ms = min(max(1, int((deadline - time.monotonic()) * 1000)), _MAX_MS)
            return conn.execute(sql, (*first, *args, f"{left_ms:d}ms"))

        def refused(conn: psycopg.Connection[Any]) -> NoReturn:
            raise self._gone_error(conn, session, expected, every, others)

        def swap_first(conn: psycopg.Connection[Any]) -> list[int]:
            # One statement: the object's conditional write, then the append only if it
            # wrote (else NULL: nothing written; an append that fails undoes the write).
            (obj,) = held
            write, values = conditional(obj, obj.node, args[9])
            write += "" if obj.check else " RETURNING 1"
            text = self.db.sql(
                f"WITH w AS ({write}) SELECT CASE WHEN EXISTS (SELECT 1 FROM w) "
                f"THEN {APPEND.removeprefix('SELECT ')} END"
            )
            row = conn.execute(text, (*values, *args)).fetchone()
            assert row is not None
            if row[0] is None:  # the condition found another value: nothing was written
                raise ConflictError(self._held_error(conn, obj, None))
            return list(row[0])

        def ids_of(cur: psycopg.Cursor[Any]) -> list[int] | None:
            """The new node ids; None if the append was refused (``HELD``)."""
            row = cur.fetchone()
            assert row is not None
            return None if row[0] is None else list(row[0])

        def run(conn: psycopg.Connection[Any]) -> list[int]:
            if not held:
                ids = ids_of(send(conn))
                if ids is None:
                    refused(conn)
                return ids
            if deadline is None and len(held) == 1 and not held[0].at_head and not others:
                # One statement: its one condition failing writes nothing at all. (With
                # two, the first's write would stand when the second's fails, as it would
                # when ``HELD`` fails: they go in the transaction below.)
                return swap_first(conn)
            # In a pipeline: the statements go in one round trip (the head's node is
            # awaited first only if an object is filed under it), the commit in another.
            with conn.pipeline() as pipe, conn.transaction():
                cur = send(conn)
                got = [ids_of(cur)] if any(o.at_head for o in held) else []
                head = got[0][-1] if got and got[0] else parent
                done = []
                for obj in held:
                    text, values = conditional(obj, head if obj.at_head else obj.node, args[9])
                    done.append(conn.execute(self.db.sql(text), values))
                pipe.sync()  # (every result in, each swap's row count with it)
                ids = got[0] if got else ids_of(cur)
                if ids is None:  # (raised in the transaction: the writes are undone)
                    refused(conn)
                head = ids[-1] if ids else parent
                for obj, swapped in zip(held, done, strict=True):
                    if swapped.rowcount != 1:
                        raise ConflictError(self._held_error(conn, obj, head))
                return ids

        try:
            return self.db.run("appending to a session", run)
        except StoreUnavailableError as exc:
            if not isinstance(exc.__cause__, psycopg.Error) or not is_connection_error(
                exc.__cause__
            ):
                raise  # no connection was had: nothing was sent
            landed, ids = self._landed(session, items)
            if landed is None:
                raise StoreUnavailableError(
                    f"{exc}; the server could not say whether this append was stored: "
                    "Session.refresh() shows it before a retry"
                ) from exc.__cause__
            if landed:
                return ids
        # Not stored: the append is run once more on a new connection. The head's
        # compare-and-swap makes that safe even if the first statement were still to
        # commit somewhere (a network cut): then one of the two gets ConflictError.
        return self.db.run("appending to a session", run)

    def _gone_error(
        self,
        conn: psycopg.Connection[Any],
        session: int,
        expected: int | None,
        objects: Sequence[ObjectPut],
        others: Sequence[int],
    ) -> Exception:
        """Why an append refused by ``HELD`` was (asked on its connection): as SQLite's
        append says it, the session appended to first (gone, or its head moved), else
        the first object filed under a session that is gone."""
        find = self.db.sql("SELECT id, head FROM {s}.sessions WHERE id = ANY(%s::bigint[])")
        found = dict(conn.execute(find, ([session, *others],)).fetchall())
        if session not in found:
            return SessionNotFoundError("the session was deleted")
        if found[session] != expected:
            return ConflictError(HEAD_MOVED)
        filed = [o for o in objects if session_of(o.kind, o.scope) in others]
        for obj in filed:
            sid = session_of(obj.kind, obj.scope)
            if sid is not None and sid not in found:
                return ConflictError(object_session_gone(obj.kind, obj.key, sid))
        obj = filed[0]
        return ConflictError(object_changed(obj.kind, obj.scope, obj.key))

    def _held_error(self, conn: psycopg.Connection[Any], obj: ObjectPut, head: int | None) -> str:
        """Why a conditional object of an append was not written (asked in its
        transaction, on its connection)."""
        node = head if obj.at_head else obj.node
        find = self.db.sql("SELECT 1 FROM {s}.nodes WHERE id = %s")
        if node is not None and conn.execute(find, (node,)).fetchone() is None:
            return object_node_gone(node)
        return object_changed(obj.kind, obj.scope, obj.key)

    def _parent_prefix(self, session: int, expected: int | None, parent: int) -> bytes:
        """The prefix hash node ``parent`` carries; refused (``_refuse``) if it is not
        stored."""
        rows = self._read(
            "appending to a session", "SELECT prefix FROM {s}.nodes WHERE id = %s", (parent,)
        )
        if not rows:
            self._refuse(session, expected, ConflictError(not_stored(parent)))
        return bytes(rows[0][0])

    def _refuse(self, session: int, expected: int | None, error: Exception) -> NoReturn:
        """Raise what SQLite's append would for an append found wrong before it was
        sent: the compare-and-swap's error first (the session is gone, or its head
        moved), else ``error``."""
        rows = self._read(
            "appending to a session", "SELECT head FROM {s}.sessions WHERE id = %s", (session,)
        )
        if not rows:
            raise SessionNotFoundError("the session was deleted")
        if rows[0][0] != expected:
            raise ConflictError(HEAD_MOVED)
        raise error

    def _landed(self, session: int, items: Sequence[NewNode]) -> tuple[bool | None, list[int]]:
        """After the connection broke during an append: (True, node ids) if it was
        committed (the session's head is its last node), (False, []) if the server says
        it was not, (None, []) if the server cannot be asked."""
        prefixes = [it.prefix for it in items]
        try:
            rows = self._read(
                "checking an interrupted append",
                "SELECT s.head, n.id, n.prefix FROM {s}.sessions s "
                "LEFT JOIN {s}.nodes n ON n.prefix = ANY(%s) WHERE s.id = %s",
                (prefixes, session),
            )
        except StoreUnavailableError:
            return None, []
        ids = {bytes(p): nid for _head, nid, p in rows if p is not None}
        head = rows[0][0] if rows else None
        if prefixes and len(ids) == len(prefixes) and head == ids[prefixes[-1]]:
            return True, [ids[p] for p in prefixes]
        return False, []
