"""The PostgreSQL schema: versioned migrations, and the server-side append.

Every table lives in one PostgreSQL schema of srt's own (``srt`` unless the store is
given another), so srt's tables never meet an application's. ``{s}`` in the SQL below
is that schema's quoted name, checked against ``SCHEMA_NAME`` before use; values are
always bound parameters, never formatted in.

The data model is SQLite's (``srt.store.sqlite``): content-addressed ``messages``
(``bytea`` hash keys, bodies compressed with lz4 when TOASTed, ``LZ4_BODIES``), ``nodes`` chained by
prefix hash, ``sessions`` (named heads), the ``calls`` ledger and ``objects``. Since v8
a message row also holds ``user_turn`` and ``size``, generated from its body, which
``srt ls`` reads instead of the body. Since v9 the search index, when there is one,
reads at most ``SEARCH_TEXT_CAP`` characters of each message's text (``search_text``).
Since v10 ``message_text`` parses a body's JSON once (v3 to v9 parsed it twice).
``srt_schema`` records srt's application name and the schema version; migrations run
in one transaction under an advisory lock, so two processes opening a new store at
once apply each step once.

``append(...)`` is a PL/pgSQL function, so an append is ONE statement and one round
trip, in pipeline mode or not, behind PgBouncer in transaction mode too: it locks the
session row (``FOR UPDATE``), checks the head is still the expected one, inserts the
messages and nodes with ``ON CONFLICT DO NOTHING`` (an existing message is compared
byte for byte, an existing node by parent, message and depth), moves the head
(``UPDATE ... WHERE id = $1 AND head IS NOT DISTINCT FROM $expected``), and writes the
ledger row and the objects given with it. Since v2 it is called with one more argument,
the prefix hash the client chained the new nodes from, and refuses a parent stored with
another (the client, which can hash, checks every other link before it sends the
statement). Anything wrong raises, and the statement
(its implicit transaction) leaves nothing behind. Its errors carry srt's own
SQLSTATEs (``SQLSTATE_*``), which ``errors.translate`` maps to the srt error tree.
Objects an append writes on a condition (``ObjectPut(if_absent=..., expect=...)``) are
written by the client's statement around the call (``appends``), not by the function,
so the condition needed no new function version; so is the check that the sessions of
objects filed under another session than the appended one still exist.
"""

from __future__ import annotations

import re

from ..reports import USER_PREFIX

__all__ = [
    "APPLICATION",
    "LZ4_BODIES",
    "MIGRATIONS",
    "MIN_SERVER_VERSION",
    "PINNED_PATH",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "SQLSTATE_CONFLICT",
    "SQLSTATE_CORRUPT",
    "SQLSTATE_NO_SESSION",
    "TABLES",
]

#: The oldest server srt runs on (``server_version_num``): ``COMPRESSION lz4`` on a
#: column is PostgreSQL 14's.
MIN_SERVER_VERSION = 140000
#: What ``srt_schema.application`` holds in a schema srt created.
APPLICATION = "srt"
#: Schema names srt accepts (a plain lower-case SQL identifier, so quoting is trivial).
SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: srt's tables; a schema holding any of them without ``srt_schema`` is not srt's.
TABLES = ("srt_schema", "messages", "nodes", "sessions", "calls", "objects")

#: Bodies are compressed with lz4 when TOASTed (faster to read back than the default
#: pglz, for 6% more room: docs/bench.md, "The body column's TOAST settings"). Set when a
#: store is created, after v1 made the table, in a savepoint of its migration: a server
#: built without lz4 refuses it (SQLSTATE 0A000, "compression method lz4 not supported")
#: and the store keeps the server's ``default_toast_compression`` (``migrate``).
LZ4_BODIES = "ALTER TABLE {s}.messages ALTER COLUMN body SET COMPRESSION lz4"

SQLSTATE_CONFLICT = "SRT01"  # the head moved, or an object's node is not stored
SQLSTATE_CORRUPT = "SRT02"  # a hash hit with other bytes, a prefix naming another node
SQLSTATE_NO_SESSION = "SRT03"  # the session row is gone

_APPEND = r"""
CREATE FUNCTION {s}.append(
    p_session bigint, p_expected bigint, p_parent bigint, p_depth integer,
    p_hashes bytea[], p_bodies bytea[], p_prefixes bytea[], p_metas bytea[], p_statuses text[],
    p_now double precision, p_call jsonb,
    o_kinds text[], o_scopes text[], o_keys text[], o_values bytea[], o_nodes bigint[],
    o_expires double precision[], o_at_head boolean[]
) RETURNS bigint[] LANGUAGE plpgsql AS $fn$
DECLARE
    ids bigint[] := '{}';
    parent bigint := p_parent;
    depth integer := p_depth;
    cur bigint;
    mid bigint;
    nid bigint;
    stored bytea;
    r record;
    onode bigint;
BEGIN
    SELECT head INTO cur FROM {s}.sessions WHERE id = p_session FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the session was deleted' USING ERRCODE = 'SRT03';
    END IF;
    IF cur IS DISTINCT FROM p_expected THEN
        RAISE EXCEPTION 'the session head moved' USING ERRCODE = 'SRT01';
    END IF;
    FOR i IN 1 .. coalesce(array_length(p_hashes, 1), 0) LOOP
        depth := depth + 1;
        mid := NULL;
        INSERT INTO {s}.messages(hash, body) VALUES (p_hashes[i], p_bodies[i])
            ON CONFLICT (hash) DO NOTHING RETURNING id INTO mid;
        IF mid IS NULL THEN
            SELECT m.id, m.body INTO mid, stored FROM {s}.messages m WHERE m.hash = p_hashes[i];
            IF mid IS NULL OR stored IS DISTINCT FROM p_bodies[i] THEN
                RAISE EXCEPTION 'hash collision or damaged row: message % has hash % but '
                    'different bytes; nothing was linked', mid, encode(p_hashes[i], 'hex')
                    USING ERRCODE = 'SRT02';
            END IF;
        END IF;
        nid := NULL;
        INSERT INTO {s}.nodes(parent, message, depth, prefix, meta, status)
            VALUES (parent, mid, depth, p_prefixes[i], p_metas[i], p_statuses[i])
            ON CONFLICT (prefix) DO NOTHING RETURNING id INTO nid;
        IF nid IS NULL THEN
            SELECT n.id, n.parent, n.message, n.depth, n.status INTO r
                FROM {s}.nodes n WHERE n.prefix = p_prefixes[i];
            IF r.id IS NULL OR r.parent IS DISTINCT FROM parent OR r.message <> mid
                    OR r.depth <> depth THEN
                RAISE EXCEPTION 'prefix hash % names node % with a different parent or '
                    'message; nothing was linked', encode(p_prefixes[i], 'hex'), r.id
                    USING ERRCODE = 'SRT02';
            END IF;
            nid := r.id;
            IF r.status IS NOT NULL AND p_statuses[i] IS NULL THEN
                UPDATE {s}.nodes SET status = NULL WHERE id = nid;  -- a complete reply
            END IF;
        END IF;
        parent := nid;
        ids := ids || nid;
    END LOOP;
    UPDATE {s}.sessions SET head = parent, updated = p_now
        WHERE id = p_session AND head IS NOT DISTINCT FROM p_expected;
    IF NOT FOUND THEN  -- unreachable while the row is locked; kept as the CAS itself
        RAISE EXCEPTION 'the session head moved' USING ERRCODE = 'SRT01';
    END IF;
    IF p_call IS NOT NULL THEN
        INSERT INTO {s}.calls SELECT (jsonb_populate_record(NULL::{s}.calls,
            p_call || jsonb_build_object('node', parent, 'id', nextval(
                pg_get_serial_sequence('{s}.calls', 'id'))))).*;
    END IF;
    FOR i IN 1 .. coalesce(array_length(o_kinds, 1), 0) LOOP
        onode := CASE WHEN o_at_head[i] THEN parent ELSE o_nodes[i] END;
        PERFORM {s}.put_object(o_kinds[i], o_scopes[i], o_keys[i], o_values[i], onode,
                               o_expires[i], p_now);
    END LOOP;
    RETURN ids;
END
$fn$;
"""

_PUT_OBJECT = r"""
CREATE FUNCTION {s}.put_object(
    p_kind text, p_scope text, p_key text, p_value bytea, p_node bigint,
    p_expires double precision, p_now double precision
) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    IF p_node IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {s}.nodes WHERE id = p_node) THEN
        RAISE EXCEPTION 'the node an object refers to (%) is not stored (collected by gc?); '
            'nothing was written', p_node USING ERRCODE = 'SRT01';
    END IF;
    INSERT INTO {s}.objects(kind, scope, key, value, node, expires, created, updated)
        VALUES (p_kind, p_scope, p_key, p_value, p_node, p_expires, p_now, p_now)
        ON CONFLICT (kind, scope, key) DO UPDATE SET value = excluded.value,
            node = excluded.node, expires = excluded.expires, updated = excluded.updated;
END
$fn$;
"""

#: The text of a message's JSON ``j``: its content string, or its text parts joined by
#: newlines, else '' (every version of ``message_text`` below selects it).
_CONTENT_TEXT = r"""coalesce(CASE jsonb_typeof(j -> 'content')
        WHEN 'string' THEN j ->> 'content'
        WHEN 'array' THEN (
            SELECT string_agg(p ->> 'text', E'\n' ORDER BY n)
            FROM jsonb_array_elements(j -> 'content') WITH ORDINALITY AS e(p, n)
            WHERE p ->> 'type' = 'text')
        END, '')"""

# The searchable text of a canonical message body: the content string, or its text
# parts joined by newlines, else ''. IMMUTABLE (a pure function of the bytes), so an
# expression index can use it.
_MESSAGE_TEXT = (
    r"""
CREATE FUNCTION {s}.message_text(body bytea) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT """
    + _CONTENT_TEXT
    + r"""
    FROM (SELECT convert_from(body, 'UTF8')::jsonb AS j) AS b
$fn$;
CREATE FUNCTION {s}.message_role(body bytea) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT convert_from(body, 'UTF8')::jsonb ->> 'role'
$fn$;
"""
)

# v2: the append checks the first new node's link. The other links are checked by the
# client (``PostgresStore.append``), which can hash; the server cannot (XXH3 or keyed
# BLAKE2b), so the first link's parent prefix hash travels with the append (``p_above``,
# the prefix the client chained from) and is compared here with the one the parent node
# carries. An overload of v1's function (one more argument, last): v1's stays as it was
# released and does the rest. A mismatch says what SQLite's append says: the head moved
# or the session is gone if so (the compare-and-swap comes first there), else the parent
# is not stored, else the chain is broken.
_APPEND_ABOVE = r"""
CREATE FUNCTION {s}.append(
    p_session bigint, p_expected bigint, p_parent bigint, p_depth integer,
    p_hashes bytea[], p_bodies bytea[], p_prefixes bytea[], p_metas bytea[], p_statuses text[],
    p_now double precision, p_call jsonb,
    o_kinds text[], o_scopes text[], o_keys text[], o_values bytea[], o_nodes bigint[],
    o_expires double precision[], o_at_head boolean[], p_above bytea
) RETURNS bigint[] LANGUAGE plpgsql AS $fn$
DECLARE
    stored bytea;
    cur bigint;
BEGIN
    IF p_parent IS NOT NULL AND p_above IS NOT NULL THEN
        SELECT n.prefix INTO stored FROM {s}.nodes n WHERE n.id = p_parent;
        IF stored IS DISTINCT FROM p_above THEN
            SELECT s.head INTO cur FROM {s}.sessions s WHERE s.id = p_session;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'the session was deleted' USING ERRCODE = 'SRT03';
            ELSIF cur IS DISTINCT FROM p_expected THEN
                RAISE EXCEPTION 'the session head moved' USING ERRCODE = 'SRT01';
            ELSIF stored IS NULL THEN
                RAISE EXCEPTION 'the node to append below (%) is not stored (collected by '
                    'gc?); nothing was written', p_parent USING ERRCODE = 'SRT01';
            END IF;
            RAISE EXCEPTION 'the node to append below (%) carries prefix hash %, not the % '
                'its new messages chain from (a node id collected and reused, or a stale '
                'history); nothing was linked', p_parent, encode(stored, 'hex'),
                encode(p_above, 'hex') USING ERRCODE = 'SRT02';
        END IF;
    END IF;
    RETURN {s}.append(p_session, p_expected, p_parent, p_depth, p_hashes, p_bodies,
        p_prefixes, p_metas, p_statuses, p_now, p_call, o_kinds, o_scopes, o_keys, o_values,
        o_nodes, o_expires, o_at_head);
END
$fn$;
"""

# v3: a message whose text holds U+0000 (legal in JSON, stored as ``\u0000``) no longer
# breaks the search index, search and ``tree``: ``jsonb`` refuses that escape, so the text
# functions read the body through ``message_json``, which turns each escaped NUL (an odd
# run of backslashes before ``u0000``) into a space first, and only in the rare body that
# holds one. Every other body reads as before, so an index built on v2 stays valid. The
# search and tree code take such a message's text from its body instead (faithful).
_MESSAGE_JSON = (
    r"""
CREATE OR REPLACE FUNCTION {s}.message_json(body bytea) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT (CASE WHEN strpos(t, '\u0000') = 0 THEN t
        ELSE regexp_replace(t, '(?<!\\)((?:\\\\)*)\\u0000', '\1 ', 'g') END)::jsonb
    FROM (SELECT convert_from(body, 'UTF8') AS t) AS b
$fn$;
CREATE OR REPLACE FUNCTION {s}.message_text(body bytea) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT """
    + _CONTENT_TEXT
    + r"""
    FROM (SELECT {s}.message_json(body) AS j) AS b
$fn$;
CREATE OR REPLACE FUNCTION {s}.message_role(body bytea) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT {s}.message_json(body) ->> 'role'
$fn$;
"""
)

# v4: srt's functions no longer look names up on the caller's ``search_path``, where a
# schema someone else can write (first in a URL's ``options=-csearch_path=...`` or in a
# role's default path) could stand in for the built-ins and operators they use (an
# ``array_length`` or ``=`` of its own, or a ``convert_from(bytea, text)``, which beats
# the built-in ``convert_from(bytea, name)`` for a ``'UTF8'`` literal even behind
# ``pg_catalog``). As PostgreSQL's docs advise for such functions, the PL/pgSQL ones
# (the appends, ``put_object``) run with ``search_path = pg_catalog, pg_temp`` (every
# srt table they touch is already schema-qualified; one setting saved and restored per
# call). The SQL text functions get SQL-standard bodies (``BEGIN ATOMIC``) instead,
# parsed once here, while the migration pins the path (``Database._migrate``), so every
# name is bound when the function is created: no cost per call, and ``message_role``
# can still be inlined, which a ``SET`` clause would prevent. Their results are v3's, so
# a search index built before stays valid.
_APPEND_ARGS = (
    "bigint, bigint, bigint, integer, bytea[], bytea[], bytea[], bytea[], text[], "
    "double precision, jsonb, text[], text[], text[], bytea[], bigint[], "
    "double precision[], boolean[]"
)
#: The search path srt's PL/pgSQL functions run with, and its migrations.
PINNED_PATH = "pg_catalog, pg_temp"
_PINNED = (
    (
        f"ALTER FUNCTION {{s}}.append({_APPEND_ARGS}) SET search_path = {PINNED_PATH};\n"
        f"ALTER FUNCTION {{s}}.append({_APPEND_ARGS}, bytea) SET search_path = {PINNED_PATH};\n"
        "ALTER FUNCTION {s}.put_object(text, text, text, bytea, bigint, double precision, "
        f"double precision) SET search_path = {PINNED_PATH};\n"
    )
    + r"""
CREATE OR REPLACE FUNCTION {s}.message_json(body bytea) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
BEGIN ATOMIC
    SELECT (CASE WHEN strpos(t, '\u0000') = 0 THEN t
        ELSE regexp_replace(t, '(?<!\\)((?:\\\\)*)\\u0000', '\1 ', 'g') END)::jsonb
    FROM (SELECT convert_from(body, 'UTF8') AS t) AS b;
END;
CREATE OR REPLACE FUNCTION {s}.message_text(body bytea) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
BEGIN ATOMIC
    SELECT """
    + _CONTENT_TEXT
    + r"""
    FROM (SELECT {s}.message_json(body) AS j) AS b;
END;
CREATE OR REPLACE FUNCTION {s}.message_role(body bytea) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
BEGIN ATOMIC
    SELECT {s}.message_json(body) ->> 'role';
END;
"""
)

# v8: a message's ``user_turn`` (its canonical body starts ``{"role":"user"``, the
# ``USER_PREFIX`` both engines count turns by) and ``size`` (its body's bytes, the token
# estimate's input), as the server computes them from the body it stores.
_LS_COLUMNS = f"""
ALTER TABLE {{s}}.messages
    ADD COLUMN IF NOT EXISTS user_turn boolean NOT NULL GENERATED ALWAYS AS (
        substring(body FROM 1 FOR {len(USER_PREFIX)}) = '\\x{USER_PREFIX.hex()}'::bytea) STORED,
    ADD COLUMN IF NOT EXISTS size integer NOT NULL GENERATED ALWAYS AS (length(body)) STORED;
"""

#: The full-text index of ``search``: an expression GIN index over each message's text
#: (PostgreSQL's ``simple`` configuration: lower-cased words, no stemming). As on
#: SQLite no migration creates it: the first search does, so appends pay nothing for a
#: search nobody runs; PostgreSQL keeps it in step with every write from then on. No
#: migration builds it either (v9's drops one, the next search builds it again).
SEARCH_INDEX = "messages_fts"
SEARCH_CONFIG = "simple"
#: The characters of a message's text the index reads (``search_text``, since v9).
#: PostgreSQL refuses a tsvector over 1 MB (2**20 - 1 bytes of lexemes and positions),
#: which about 2 MB of varied words make, and the refusal failed the index's build and,
#: once it was built, the append of such a message. The most a character can make is
#: just under 8 bytes: in a hyphenated word of 4-byte letters each letter is indexed
#: twice (``a-b`` gives ``a-b``, ``a`` and ``b``), 4 bytes each, with 6 bytes of
#: position and alignment per lexeme, so 2 parts of 255 letters make 7.996 bytes a
#: character (the whole word stays under 2,047 bytes, the longest lexeme kept; measured:
#: tests/test_pg_search25.py). 128,000 characters make at most 1,023,500 bytes.
#: A new cap needs a new migration (v9's drops an index built before it, ``_SEARCH_TEXT``).
SEARCH_TEXT_CAP = 128_000
#: The indexed expression; a query must use the same one for the index to serve it
#: (``body`` is ``messages.body``, in the index and in ``search.search_sql``).
SEARCH_VECTOR = f"to_tsvector('{SEARCH_CONFIG}', {{s}}.search_text(body))"
#: Built ``CONCURRENTLY``: writers go on meanwhile (``search.build_search_index``).
SEARCH_INDEX_SQL = (
    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {SEARCH_INDEX} ON {{s}}.messages "
    f"USING gin ({SEARCH_VECTOR})"
)
SEARCH_DROP_SQL = f"DROP INDEX IF EXISTS {{s}}.{SEARCH_INDEX}"

# v9: the search index reads the first ``SEARCH_TEXT_CAP`` characters of a message's
# text, so that no message makes a tsvector PostgreSQL refuses. An index built before
# (over ``message_text``, uncapped) is dropped, which takes a moment whatever the store's
# size, so a huge message appends once the store is opened by this srt; the next search
# builds the new one outside the open, without blocking writers
# (``search.build_search_index``). This step first rebuilt the index in the migration's
# transaction instead, so every writer waited out the first open (7.3 s for 20,000
# messages); a store migrated so holds the index a store migrated now holds once searched.
# (``left`` of ``message_text``: inlined, so still one SQL function call per message
# indexed; measured a few microseconds a message at most, within the noise of an
# append. ``message_text``'s own query capped instead was slower: the planner pulls the
# subquery up and parses the JSON once per reference to the text, v10's fix.)
_SEARCH_TEXT = f"""
CREATE OR REPLACE FUNCTION {{s}}.search_text(body bytea) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
BEGIN ATOMIC
    SELECT left({{s}}.message_text(body), {SEARCH_TEXT_CAP});
END;
DO $do$ BEGIN
    IF to_regclass('{{s}}.{SEARCH_INDEX}') IS NOT NULL THEN
        {SEARCH_DROP_SQL};
    END IF;
END $do$;
"""

# v10: ``message_text`` parses a body's JSON once. v3's to v9's read it in a subquery
# (``FROM (SELECT message_json(body) AS j)``), which the planner pulls up, putting the call
# in place of each reference to ``j``: the JSON was parsed twice a message (the type of
# its content, then its text), about 40 us a message of 1.2 KB against 25 us now
# (``bench/pg_search_text.py``). Read as a function in FROM, which the planner cannot
# pull up (``message_json`` is STRICT and returns no set), it is called once. The text is
# the same to the byte (``tests/test_pg_text_once.py``), so an index built before stays
# valid and is kept.
_MESSAGE_TEXT_ONCE = (
    r"""
CREATE OR REPLACE FUNCTION {s}.message_text(body bytea) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
BEGIN ATOMIC
    SELECT """
    + _CONTENT_TEXT
    + r"""
    FROM {s}.message_json(body) AS b(j);
END;
"""
)

MIGRATIONS: tuple[str, ...] = (
    # v1: everything SQLite's schema v4 holds: content-addressed messages, a prefix-chained
    # node tree, named heads, the usage ledger (with request parameters) and objects.
    r"""
    CREATE TABLE {s}.srt_schema(
        application text NOT NULL,
        version     integer NOT NULL
    );
    CREATE TABLE {s}.messages(
        id   bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        hash bytea NOT NULL CHECK (length(hash) = 16),
        body bytea NOT NULL
    );
    CREATE UNIQUE INDEX messages_hash ON {s}.messages(hash);
    CREATE TABLE {s}.nodes(
        id      bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        parent  bigint REFERENCES {s}.nodes(id),
        message bigint NOT NULL REFERENCES {s}.messages(id),
        depth   integer NOT NULL CHECK (depth >= 1),
        prefix  bytea NOT NULL CHECK (length(prefix) = 16),
        meta    bytea,
        status  text
    );
    CREATE UNIQUE INDEX nodes_prefix ON {s}.nodes(prefix);
    CREATE INDEX nodes_parent ON {s}.nodes(parent);
    CREATE INDEX nodes_message ON {s}.nodes(message);
    CREATE TABLE {s}.sessions(
        id      bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        name    text NOT NULL UNIQUE,
        head    bigint REFERENCES {s}.nodes(id),
        created double precision NOT NULL,
        updated double precision NOT NULL,
        meta    text
    );
    CREATE INDEX sessions_head ON {s}.sessions(head);
    CREATE TABLE {s}.calls(
        id              bigserial PRIMARY KEY,
        at              double precision NOT NULL,
        session         bigint,
        session_name    text,
        node            bigint REFERENCES {s}.nodes(id) ON DELETE SET NULL,
        provider        text NOT NULL,
        model           text NOT NULL,
        format          text NOT NULL,
        body_hash       bytea NOT NULL,
        body_bytes      bigint NOT NULL,
        messages        bigint NOT NULL,
        input_tokens    bigint,
        cache_read_tokens  bigint,
        cache_write_tokens bigint,
        output_tokens   bigint,
        predicted_cached_tokens bigint,
        explain         text,
        latency_ms      double precision,
        ttft_ms         double precision,
        retries         bigint NOT NULL DEFAULT 0,
        status          text NOT NULL,
        error           text,
        response_id     text,
        previous_response_id text,
        stored          bigint,
        fallback        text,
        params          text
    );
    CREATE INDEX calls_node ON {s}.calls(node);
    CREATE INDEX calls_session ON {s}.calls(session);
    CREATE INDEX calls_session_name ON {s}.calls(session_name);
    CREATE TABLE {s}.objects(
        id      bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        kind    text NOT NULL,
        scope   text NOT NULL,
        key     text NOT NULL,
        value   bytea NOT NULL,
        node    bigint REFERENCES {s}.nodes(id),
        expires double precision,
        created double precision NOT NULL,
        updated double precision NOT NULL
    );
    CREATE UNIQUE INDEX objects_key ON {s}.objects(kind, scope, key);
    CREATE INDEX objects_scope ON {s}.objects(kind, scope, id);
    CREATE INDEX objects_node ON {s}.objects(node) WHERE node IS NOT NULL;
    CREATE INDEX objects_expires ON {s}.objects(expires) WHERE expires IS NOT NULL;
    """
    + _PUT_OBJECT
    + _APPEND
    + _MESSAGE_TEXT,
    # v2: the append compares its parent's stored prefix hash with the caller's.
    _APPEND_ABOVE,
    # v3: message text and role read bodies holding an escaped NUL.
    _MESSAGE_JSON,
    # v4: every function's names bound to pg_catalog, whatever the caller's search_path.
    _PINNED,
    # v5: a random id for the store (``Store.store_id``), as SQLite's srt_meta holds: it
    # scopes the session cache keys and names the local provider's saved KV states. The
    # default gives the row already there its id, and a new store's row its own.
    """
    ALTER TABLE {s}.srt_schema ADD COLUMN IF NOT EXISTS store_id text NOT NULL
        DEFAULT replace(gen_random_uuid()::text, '-', '');
    """,
    # v6: a ledger row's cache writes with a 1-hour TTL and its reasoning tokens, as
    # SQLite's v7 (rows written before hold NULL). ``append`` fills the ledger row from
    # its JSON by the table's own columns, so the function needs no new version.
    """
    ALTER TABLE {s}.calls ADD COLUMN IF NOT EXISTS cache_write_1h_tokens bigint;
    ALTER TABLE {s}.calls ADD COLUMN IF NOT EXISTS reasoning_tokens bigint;
    """,
    # v7: the model a ledger row's reply named when it is not the one asked for, as
    # SQLite's v8 (rows written before hold NULL).
    """
    ALTER TABLE {s}.calls ADD COLUMN IF NOT EXISTS reply_model text;
    """,
    # v8: what ``srt ls`` reads of a message, kept beside its body so that the overview
    # reads no body (``views.overview``): a TOASTed lz4 body is fetched whole even for
    # its first bytes. Generated columns: the server fills them from the body as the
    # append inserts it (no new argument, still one statement), and adding them
    # rewrites the table once, filling every row already there.
    _LS_COLUMNS,
    # v9: the search index reads at most ``SEARCH_TEXT_CAP`` characters of a message.
    _SEARCH_TEXT,
    # v10: a message's text read from one parse of its JSON.
    _MESSAGE_TEXT_ONCE,
)
SCHEMA_VERSION = len(MIGRATIONS)


def render(sql: str, schema: str) -> str:
    """``sql`` with ``{s}`` replaced by the quoted ``schema`` (checked first)."""
    if not SCHEMA_NAME.match(schema):
        raise ValueError(f"not a usable schema name: {schema!r}")
    return sql.replace("{s}", f'"{schema}"')
