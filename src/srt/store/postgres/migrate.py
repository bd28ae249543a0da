"""srt's schema in a PostgreSQL database, checked when a store opens and migrated to this
srt's version: a schema that holds tables srt did not make, or a newer version, is
refused and left untouched; a migration runs in one transaction under an advisory lock
(many first opens at once migrate once), with names resolved in ``pg_catalog`` only.
A server older than ``MIN_SERVER_VERSION`` is refused before any statement, and a role
without the privileges to use or to create the schema is told which it lacks and who
must open the store first.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

import psycopg

from ...errors import NotAnSrtDatabaseError, SchemaVersionError, StoreError
from . import schema as sch

__all__ = ["lock_key", "migrate", "version"]

log = logging.getLogger("srt.store.postgres")


def lock_key(schema: str) -> int:
    """The advisory lock id that serializes the migrations in ``schema`` (a transaction's
    lock: a session's would not hold behind PgBouncer in transaction mode)."""
    digest = hashlib.blake2b(f"srt-migrate:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def version(conn: psycopg.Connection[Any], schema: str, sql: Callable[[str], str]) -> int:
    """The version of srt's schema named ``schema`` (0: none yet), after checking that
    what is there is srt's and not newer than this srt."""
    row = conn.execute(
        "SELECT to_regclass(format('%%I.srt_schema', %s::text)) IS NOT NULL, "
        "(SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s))",
        (schema, schema, list(sch.TABLES)),
    ).fetchone()
    assert row is not None
    has_meta, ours = bool(row[0]), int(row[1])
    if not has_meta:
        if ours:
            raise NotAnSrtDatabaseError(
                f"schema {schema!r} holds tables named like srt's that srt did not "
                "create; srt will not modify them (give srt a schema of its own: ?schema=)"
            )
        return 0
    got = conn.execute(sql("SELECT application, version FROM {s}.srt_schema")).fetchall()
    if len(got) != 1 or got[0][0] != sch.APPLICATION:
        raise NotAnSrtDatabaseError(
            f"schema {schema!r} has an srt_schema table that srt did not write; "
            "srt will not modify it"
        )
    found = int(got[0][1])
    if found > sch.SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the store has schema version {found}, newer than this srt's "
            f"{sch.SCHEMA_VERSION}; upgrade stateful-runtime to open it"
        )
    if found < 1:
        raise NotAnSrtDatabaseError(f"srt_schema says version {found}, which srt never writes")
    return found


def _exists(conn: psycopg.Connection[Any], schema: str) -> bool:
    found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
    return found.fetchone() is not None


def _release(num: int) -> str:
    return f"{num // 10000}.{num % 10000}"


def _denied(
    conn: psycopg.Connection[Any], schema: str, exc: psycopg.Error, making: bool
) -> StoreError:
    """What a role refused a privilege at open lacks, and who can grant or do it."""
    user, db = conn.info.user, conn.info.dbname
    why = exc.diag.message_primary or "permission denied"
    if making:
        return StoreError(
            f"role {user!r} may not create or migrate srt's schema {schema!r} in database "
            f"{db!r} ({why}); the first open, and the first after an srt upgrade, does it: "
            "open the store once as the database's owner or a role with CREATE on the "
            "database (it then owns the schema) and grant this role what srt uses "
            f"(README.md, On PostgreSQL), or have the schema made for this role: CREATE "
            f"SCHEMA {schema} AUTHORIZATION {user}; nothing was created"
        )
    return StoreError(
        f"role {user!r} may not use srt's schema {schema!r} in database {db!r} ({why}); "
        f"the schema's owner grants it: GRANT USAGE ON SCHEMA {schema} TO {user}; GRANT "
        f"SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {user}; "
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {user}"
    )


def migrate(
    conn: psycopg.Connection[Any], schema: str, sql: Callable[[str], str], create: bool = True
) -> None:
    """Bring ``schema`` to this srt's version (``_migrate``), on a server srt supports, with
    a refused privilege said plainly."""
    found = conn.info.server_version  # reported at connect: no round trip
    if found < sch.MIN_SERVER_VERSION:
        raise StoreError(
            f"the server runs PostgreSQL {_release(found)}; srt needs "
            f"{_release(sch.MIN_SERVER_VERSION)} or newer: upgrade it or point srt at "
            "another server (nothing was created)"
        )
    try:
        _migrate(conn, schema, sql, create)
    except psycopg.errors.InsufficientPrivilege as exc:  # reading what the store holds
        raise _denied(conn, schema, exc, False) from exc


def _migrate(
    conn: psycopg.Connection[Any], schema: str, sql: Callable[[str], str], create: bool
) -> None:
    """Bring srt's schema named ``schema`` to this srt's version (creating it in a new
    store, unless not ``create``: then a schema without srt's store is refused and nothing
    is made), under an advisory lock so that processes opening it at once migrate it once.
    ``sql`` renders a statement's ``{s}`` as the schema."""
    try:  # the usual case in one round trip: srt's schema at this srt's version
        got = conn.execute(sql("SELECT application, version FROM {s}.srt_schema"))
        if got.fetchall() == [(sch.APPLICATION, sch.SCHEMA_VERSION)]:
            return
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        pass  # a new store (or not srt's): the full check below says which
    found = version(conn, schema, sql)
    if found == sch.SCHEMA_VERSION:
        return
    if found == 0 and not create:
        raise NotAnSrtDatabaseError(
            f"schema {schema!r} holds no srt store (check the URL's ?schema=); nothing was created"
        )
    try:
        _make(conn, schema, sql)
    except psycopg.errors.InsufficientPrivilege as exc:  # making or migrating it
        raise _denied(conn, schema, exc, True) from exc


def _make(conn: psycopg.Connection[Any], schema: str, sql: Callable[[str], str]) -> None:
    """Create or migrate ``schema`` to this srt's version, in one transaction under the
    advisory lock (another process may have done it meanwhile)."""
    with conn.transaction():
        # Names in the migration (types, and the built-ins the functions' bound bodies
        # call) resolve in pg_catalog only, whatever the connection's search_path.
        conn.execute(f"SET LOCAL search_path = {sch.PINNED_PATH}")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(schema),))
        current = version(conn, schema, sql)  # another process may have migrated meanwhile
        # CREATE SCHEMA IF NOT EXISTS wants CREATE on the database even when the schema
        # is there: one made for this role (CREATE SCHEMA ... AUTHORIZATION) is used as is.
        if current == 0 and not _exists(conn, schema):
            conn.execute(sql("CREATE SCHEMA IF NOT EXISTS {s}"))
        for step in range(current, sch.SCHEMA_VERSION):
            conn.execute(sql(sch.MIGRATIONS[step]))
        if current == 0:
            _compress_bodies(conn, schema, sql)
            conn.execute(
                sql("INSERT INTO {s}.srt_schema(application, version) VALUES (%s, %s)"),
                (sch.APPLICATION, sch.SCHEMA_VERSION),
            )
        else:  # the one row ``version`` checked, which keeps its store_id
            conn.execute(sql("UPDATE {s}.srt_schema SET version = %s"), (sch.SCHEMA_VERSION,))


def _compress_bodies(conn: psycopg.Connection[Any], schema: str, sql: Callable[[str], str]) -> None:
    """lz4 for a new store's bodies (``schema.LZ4_BODIES``), or, on a server built without
    it, the server's default compression, with a warning: the store works the same, a
    little smaller and slower to read back its long bodies."""
    try:
        with conn.transaction():  # a savepoint: its failure leaves the migration going
            conn.execute(sql(sch.LZ4_BODIES))
    except psycopg.errors.FeatureNotSupported as exc:
        log.warning(
            "PostgreSQL store %r: the server has no lz4 (%s), so message bodies are "
            "compressed with its default_toast_compression (pglz unless set)",
            schema,
            exc.diag.message_primary or "compression method lz4 not supported",
        )
