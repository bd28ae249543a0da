"""gc against a brute-force reachability, on random forests of sessions (both engines).

Each case builds a random store through the store API: sessions with shared prefixes
(equal histories share nodes), forks below nodes of other sessions, objects that keep a
node alive, deletions of sessions and objects, and bodies of random sizes so freed and
kept messages share heap rows. Before gc the test reads the rows (nodes and their
parents, session heads, object nodes) and computes in Python what is reachable; after
gc exactly the unreachable nodes and the messages no remaining node uses are gone (the
report counts them), every live session reads back as before, and ``verify`` passes.
One variant renumbers the nodes so that parents have larger ids than their children,
which the one-pass mark cannot order: gc falls back to the recursive walk.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import apsw
import psycopg
import pytest

import srt
from srt import _core
from srt.message import canonicalize
from srt.store import NewNode, Store

SEEDS = range(8)


def _items(rng: random.Random, prefix: bytes, texts: list[str]) -> list[NewNode]:
    bodies = [
        canonicalize({"role": "user" if i % 2 == 0 else "assistant", "content": t})[0]
        for i, t in enumerate(texts)
    ]
    hashes = [_core.digest(b) for b in bodies]
    prefixes = _core.chain_many(prefix, hashes)
    return [NewNode(h, b, p, None, None) for h, b, p in zip(hashes, bodies, prefixes, strict=True)]


def _text(rng: random.Random) -> str:
    # a few shared texts (so bodies are stored once for many nodes), most unique, some long
    if rng.random() < 0.3:
        return f"common {rng.randrange(5)}"
    return f"t{rng.getrandbits(40):x} " + "y" * rng.choice((0, 10, 200, 3000, 20000))


def _build(store: Store, rng: random.Random) -> list[str]:
    """A random forest; returns the names of the sessions still there."""
    names: list[str] = []
    nodes: list[tuple[int, bytes, int]] = []  # (id, prefix, depth) of every stored node
    for i in range(rng.randrange(4, 14)):
        name = f"s{i}"
        row = store.create_session(name, None, exist_ok=False)
        parent, prefix, depth = None, _core.ROOT, 0
        head = None  # the session's head (a fork's first append is below another's node)
        if nodes and rng.random() < 0.4:  # a fork below some stored node
            parent, prefix, depth = rng.choice(nodes)
        elif rng.random() < 0.3:  # a shared prefix: a history another session starts with
            rng2 = random.Random(rng.randrange(3))
            texts = [_text(rng2) for _ in range(rng2.randrange(1, 5))]
            items = _items(rng, prefix, texts)
            ids = store.append(row.id, None, None, 0, items, parent_prefix=prefix)
            for k, (nid, item) in enumerate(zip(ids, items, strict=True)):
                nodes.append((nid, item.prefix, k + 1))
            parent, prefix, depth = ids[-1], items[-1].prefix, len(ids)
            head = parent
        for _ in range(rng.randrange(1, 4)):
            items = _items(rng, prefix, [_text(rng) for _ in range(rng.randrange(1, 6))])
            ids = store.append(row.id, head, parent, depth, items, parent_prefix=prefix)
            for k, (nid, item) in enumerate(zip(ids, items, strict=True)):
                nodes.append((nid, item.prefix, depth + k + 1))
            parent, prefix, depth = ids[-1], items[-1].prefix, depth + len(ids)
            head = parent
        names.append(name)
    for k in range(rng.randrange(0, 4)):
        nid, _, _ = rng.choice(nodes)
        store.put_object("gctest", "scope", f"o{k}", b"v", node=nid)
        if rng.random() < 0.3:
            store.delete_object("gctest", "scope", f"o{k}")
    for k, name in enumerate(list(names)):
        if k == 0 or rng.random() < 0.45:  # the first always: every case frees something
            store.delete_session(name)
            names.remove(name)
    return names


class _Rows:
    """The rows gc decides on, read directly from the store's tables."""

    def __init__(self, url: str) -> None:
        self.pg = url.startswith("postgresql")
        self.url = url

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.pg:
            base, schema = (
                self.url.split("?schema=")
                if "?schema=" in self.url
                else (self.url.rsplit("&schema=", 1))
            )
            with psycopg.connect(base) as conn:
                conn.execute(f'SET search_path = "{schema}"')
                return [tuple(r) for r in conn.execute(sql)]
        conn = apsw.Connection(self.url)
        try:
            return [tuple(r) for r in conn.execute(sql)]
        finally:
            conn.close()

    def nodes(self) -> dict[int, tuple[int | None, Any]]:
        """id -> (parent, the message it names: its heap place on SQLite, its id on PG)."""
        sql = (
            "SELECT id, parent, message FROM nodes"
            if self.pg
            else "SELECT id, parent, at FROM nodes"
        )
        return {i: (p, m) for i, p, m in self.query(sql)}

    def roots(self) -> set[int]:
        heads = {h for (h,) in self.query("SELECT head FROM sessions WHERE head IS NOT NULL")}
        if not self.pg and not self.query(
            "SELECT 1 FROM sqlite_schema WHERE name = 'objects'"
        ):  # SQLite creates the objects table with the first object
            return heads
        objs = {n for (n,) in self.query("SELECT node FROM objects WHERE node IS NOT NULL")}
        return heads | objs

    def messages(self) -> set[Any]:
        if self.pg:
            return {m for (m,) in self.query("SELECT id FROM messages")}
        return {at for (at,) in self.query("SELECT DISTINCT at FROM nodes")}


def by_hand(url: str, updates: Sequence[str]) -> None:
    """Run ``updates`` on the store at ``url`` in one transaction with its foreign keys
    held off (rows written by hand, as another tool may write them); on SQLite, an
    update of ``objects`` only if the file has the table (the first object makes it)."""
    if url.startswith("postgresql"):
        base, schema = url.rsplit("schema=", 1)
        with psycopg.connect(base.rstrip("?&")) as pg:
            # (foreign keys held off for this transaction: the test server's user is a
            # superuser; the caller changes every reference with its row)
            pg.execute("SET LOCAL session_replication_role = replica")
            pg.execute(f'SET LOCAL search_path = "{schema}"')
            for sql in updates:
                pg.execute(sql)
        return
    conn = apsw.Connection(url)
    try:
        conn.execute("PRAGMA foreign_keys=OFF")
        objects = conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 'objects'").fetchall()
        with conn:
            for sql in updates:
                if objects or not sql.startswith("UPDATE objects "):
                    conn.execute(sql)
    finally:
        conn.close()


def _renumber(url: str) -> None:
    """Give every node the negative of its id: parents then have larger ids."""
    by_hand(
        url,
        (
            "UPDATE nodes SET id = -id, parent = -parent",
            "UPDATE sessions SET head = -head WHERE head IS NOT NULL",
            "UPDATE calls SET node = -node WHERE node IS NOT NULL",
            "UPDATE objects SET node = -node WHERE node IS NOT NULL",
        ),
    )


def _check(url: str, seed: int, renumber: bool) -> None:
    rng = random.Random(seed)
    with srt.Runtime(url) as rt:
        kept = _build(rt.store, rng)
    if renumber:
        _renumber(url)
    rows = _Rows(url)
    before = rows.nodes()
    reach: set[int] = set()
    for root in rows.roots():
        n: int | None = root
        while n is not None and n not in reach:
            reach.add(n)
            n = before[n][0]
    dead = set(before) - reach
    used = {before[n][1] for n in reach}
    freed = {before[n][1] for n in dead} - used
    assert dead
    # SQLite: the freed bodies, which must leave the file (and -wal) with secure_delete
    gone_bodies = (
        []
        if rows.pg
        else [bytes(b) for at, b in rows.query("SELECT id, body FROM messages") if at in freed]
    )
    with srt.Runtime(url) as rt:
        chains = {}
        for name in kept:
            row = rt.store.get_session(name)
            assert row is not None
            chains[name] = rt.store.chain(row.head)
        dry = rt.gc(dry_run=True)
        assert (dry.nodes, dry.messages) == (len(dead), len(freed))
        assert set(rows.nodes()) == set(before)  # a dry run writes nothing
        report = rt.gc()
        assert (report.nodes, report.messages) == (len(dead), len(freed))
        assert set(rows.nodes()) == reach
        assert rows.messages() == used
        for name in kept:
            row = rt.store.get_session(name)
            assert row is not None
            assert rt.store.chain(row.head) == chains[name]
        assert rt.store.verify().ok
        if gone_bodies:
            data = b"".join(
                Path(url + ext).read_bytes() for ext in ("", "-wal") if Path(url + ext).exists()
            )
            assert [b for b in gone_bodies if b in data] == []
        again = rt.gc()
        assert (again.nodes, again.messages) == (0, 0)


@pytest.mark.parametrize("seed", SEEDS)
def test_gc_random_forest(store_url: str, seed: int) -> None:
    _check(store_url, seed, renumber=False)


@pytest.mark.parametrize("seed", SEEDS)
def test_gc_random_forest_parents_after_children(store_url: str, seed: int) -> None:
    _check(store_url, seed, renumber=True)
