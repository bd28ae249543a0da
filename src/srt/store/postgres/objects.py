"""The objects of a ``PostgresStore`` (the Store protocol's ``put_object`` and the rest),
kept apart from the store's sessions and nodes: ``PostgresStore`` takes them from
``ObjectsMixin``, which reads and writes through the store's ``_read`` and ``_write``."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from ...errors import ConfigError, ConflictError
from ..base import ObjectPut, ObjectRow, check_expect, check_object, object_node_gone
from ..checks import check_written_before
from ..owners import MAX_DIGITS, session_of
from .statements import OBJECT_COLUMNS

if TYPE_CHECKING:
    from .pool import Database

__all__ = ["DROP", "ORPHANS", "ObjectsMixin", "conditional"]

#: The objects filed under a session id no session has (``store.owners``), after
#: ``DELETE`` or ``SELECT count(*)``; argument: the kinds. A hashed anti-join on the id
#: as text, which only a scope starting with a canonical id (the pattern) can equal.
ORPHANS = (
    "FROM {s}.objects o WHERE o.kind = ANY(%s) "
    f"AND split_part(o.scope, ':', 1) ~ '^(0|[1-9][0-9]{{0,{MAX_DIGITS - 1}}})$' "
    "AND NOT EXISTS (SELECT 1 FROM {s}.sessions s WHERE s.id::text = split_part(o.scope, ':', 1))"
)

#: Delete the objects filed under one session (``store.owners``); arguments: the kinds,
#: the id as text, its length + 1, and the id again (scope ``<id>`` or ``<id>:...``).
DROP = (
    "DELETE FROM {s}.objects WHERE kind = ANY(%s) AND (scope = %s OR left(scope, %s) = %s || ':')"
)


class ObjectsMixin:
    """``put_object``, ``get_object``, ``list_objects``, ``delete_object`` and
    ``scan_objects`` for ``PostgresStore``."""

    if TYPE_CHECKING:  # PostgresStore's own, which the methods below go through

        def _read(self, action: str, sql: str, args: Sequence[Any] = ()) -> list[Any]: ...

        def _write(self, action: str, sql: str, args: Sequence[Any] = ()) -> int: ...

        db: Database

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
        check_object(kind, scope, key, value)
        check_expect(expect, if_absent)
        now = time.time()
        if expect is not None and "\x00" in kind + scope + key:
            return False  # no object has this name (get_object): none holds ``expect``
        obj = ObjectPut(kind, scope, key, value, node, expires, if_absent=if_absent, expect=expect)
        if not if_absent and expect is None:
            sql: str = "SELECT {s}.put_object(%s, %s, %s, %s, %s, %s, %s)"
            args: tuple[Any, ...] = (kind, scope, key, value, node, expires, now)
        else:
            sql, args = conditional(obj, node, now)
        sid = session_of(kind, scope)
        if sid is not None:
            # Filed under a session: written only while it exists. The row lock makes a
            # deletion of the session wait for this write (and then delete its object
            # too), or this write wait for the deletion (and then find no session).
            text = self.db.sql(sql)
            held = self.db.sql("SELECT 1 FROM {s}.sessions WHERE id = %s FOR KEY SHARE")

            def put(conn: psycopg.Connection[Any]) -> int:
                with conn.transaction():
                    if conn.execute(held, (sid,)).fetchone() is None:
                        return -1
                    return conn.execute(text, args).rowcount

            written = self.db.run("storing an object", put)
            if written < 0:
                return False
        else:
            written = self._write("storing an object", sql, args)
        if not if_absent and expect is None:
            return True
        if (
            not written
            and node is not None
            and not self._read(
                "storing an object", "SELECT 1 FROM {s}.nodes WHERE id = %s", (node,)
            )
        ):
            raise ConflictError(object_node_gone(node))
        return bool(written)

    def get_object(self, kind: str, scope: str, key: str) -> ObjectRow | None:
        check_object(kind, scope, key)
        if "\x00" in kind + scope + key:
            return None  # PostgreSQL's text cannot hold U+0000: no object has this name
        rows = self._read(
            "reading an object",
            f"SELECT {OBJECT_COLUMNS} FROM {{s}}.objects WHERE kind = %s AND scope = %s "
            "AND key = %s AND (expires IS NULL OR expires > %s)",
            (kind, scope, key, time.time()),
        )
        return _object(rows[0]) if rows else None

    def list_objects(
        self,
        kind: str,
        scope: str,
        *,
        after: str | None = None,
        limit: int = 100,
        descending: bool = False,
    ) -> list[ObjectRow]:
        check_object(kind, scope, after if after is not None else "-")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ConfigError("limit must be a positive int")
        if "\x00" in kind + scope + (after or ""):
            return []  # no object's names hold U+0000 here (get_object)
        limit = min(limit, 2**62)  # a bigint; more rows than any table holds
        order, cmp = ("DESC", "<") if descending else ("ASC", ">")
        where = "kind = %s AND scope = %s AND (expires IS NULL OR expires > %s)"
        args: list[Any] = [kind, scope, time.time()]
        if after is not None:
            where += (
                f" AND id {cmp} coalesce((SELECT id FROM {{s}}.objects WHERE kind = %s "
                "AND scope = %s AND key = %s), %s)"
            )
            # An unknown cursor lists nothing rather than everything.
            args += [kind, scope, after, -1 if descending else 2**62]
        rows = self._read(
            "listing objects",
            f"SELECT {OBJECT_COLUMNS} FROM {{s}}.objects WHERE {where} "
            f"ORDER BY id {order} LIMIT %s",
            [*args, limit],
        )
        return [_object(r) for r in rows]

    def delete_object(
        self, kind: str, scope: str, key: str, *, written_before: float | None = None
    ) -> bool:
        check_object(kind, scope, key)
        check_written_before(written_before)
        if "\x00" in kind + scope + key:
            return False
        return bool(
            self._write(
                "deleting an object",
                "DELETE FROM {s}.objects WHERE kind = %s AND scope = %s AND key = %s "
                "AND (%s::float8 IS NULL OR updated < %s)",
                (kind, scope, key, written_before, written_before),
            )
        )

    def scan_objects(self, *, batch: int = 500, kind: str | None = None) -> Iterator[ObjectRow]:
        if kind is not None:
            check_object(kind, "", "-")
            if "\x00" in kind:
                return  # no object's names hold U+0000 here (get_object)
        after = 0
        while True:
            rows = self._read(
                "listing objects",
                f"SELECT id, {OBJECT_COLUMNS} FROM {{s}}.objects WHERE id > %s "
                "AND (%s::text IS NULL OR kind = %s) "
                "AND (expires IS NULL OR expires > %s) ORDER BY id LIMIT %s",
                (after, kind, kind, time.time(), batch),
            )
            yield from (_object(r[1:]) for r in rows)
            if len(rows) < batch:
                return
            after = rows[-1][0]


#: An object written only if no live object has its name (an expired one is written
#: over), in one statement: of writers racing for the name, the unique index lets one in.
_IF_ABSENT = (
    "INSERT INTO {s}.objects(kind, scope, key, value, node, expires, created, updated) "
    "SELECT %s, %s, %s, %s, %s, %s, %s, %s WHERE %s::bigint IS NULL OR EXISTS "
    "(SELECT 1 FROM {s}.nodes WHERE id = %s) "
    "ON CONFLICT (kind, scope, key) DO UPDATE SET value = excluded.value, "
    "node = excluded.node, expires = excluded.expires, created = excluded.created, "
    "updated = excluded.updated WHERE {s}.objects.expires IS NOT NULL "
    "AND {s}.objects.expires <= excluded.created"
)
#: An object written only over a live one holding the expected bytes, in one statement
#: (the row lock orders writers racing from the same value: one matches).
_SWAP = (
    "UPDATE {s}.objects SET value = %s, node = %s, expires = %s, updated = %s "
    "WHERE kind = %s AND scope = %s AND key = %s AND value = %s "
    "AND (expires IS NULL OR expires > %s) "
    "AND (%s::bigint IS NULL OR EXISTS (SELECT 1 FROM {s}.nodes WHERE id = %s))"
)


#: An object's check (``ObjectPut.check``): its row if it holds the expected bytes,
#: locked against writes (a ``_SWAP`` of it) until the transaction ends.
_CHECK = (
    "SELECT 1 FROM {s}.objects WHERE kind = %s AND scope = %s AND key = %s AND value = %s "
    "AND (expires IS NULL OR expires > %s) FOR SHARE"
)


def conditional(obj: ObjectPut, node: int | None, now: float) -> tuple[str, tuple[Any, ...]]:
    """The statement (``{s}`` unrendered) and arguments writing ``obj`` (``if_absent`` or
    ``expect``) under ``node``; it touches one row if it wrote, none if not (or if the
    node is not stored). With ``obj.check``, a locking read of its row, which it
    returns if it holds ``obj.expect``."""
    if obj.check:
        return _CHECK, (obj.kind, obj.scope, obj.key, obj.expect, now)
    if obj.expect is None:
        return _IF_ABSENT, (
            *(obj.kind, obj.scope, obj.key, obj.value, node, obj.expires, now, now),
            *(node, node),
        )
    return _SWAP, (
        *(obj.value, node, obj.expires, now, obj.kind, obj.scope, obj.key, obj.expect, now),
        *(node, node),
    )


def _object(row: Sequence[Any]) -> ObjectRow:
    kind, scope, key, value, node, expires, created, updated = row
    return ObjectRow(kind, scope, key, bytes(value), node, expires, created, updated)
