"""srt.maintenance: gc, verify, vacuum and the views behind ls and show --tree. Search
and its index are in ``test_maintenance_search``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import srt
from srt.providers import OpenAI
from srt.testing import ProviderServer
from support import connect, snapshot, tamper_body


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def file_bytes(db_path: str) -> bytes:
    """The database file and its WAL, as they are on disk."""
    out = b""
    for p in (db_path, db_path + "-wal"):
        if os.path.exists(p):
            out += Path(p).read_bytes()
    return out


@pytest.fixture
def tree_db(rt: srt.Runtime) -> srt.Runtime:
    """main: system, u1, a1, u2, a2; alt forks main after a1: u2', a2'; empty: nothing."""
    main = rt.session("main")
    main.append(
        {"role": "system", "content": "You are a zebra expert."},
        user("How fast is a zebra?"),
        assistant("About 65 km/h."),
        user("And a quokka?"),
        assistant("Quokkas hop slowly."),
    )
    alt = main.fork("alt", at=3)
    alt.append(user("What do zebras eat?"), assistant("Grass, mostly."))
    rt.session("empty")
    return rt


def test_overview_counts_turns_tokens_and_branches(tree_db: srt.Runtime) -> None:
    rows = {o.name: o for o in tree_db.store.overview()}
    assert list(rows) == ["alt", "empty", "main"]
    main = tree_db.session("main")
    assert rows["main"].messages == 5 and rows["main"].turns == 2
    assert rows["main"].tokens == sum((len(b) + 3) // 4 for b in main.messages_bytes())
    assert rows["main"].head_prefix == main.prefix_hash
    assert (rows["main"].branches, rows["alt"].branches, rows["empty"].branches) == (2, 2, 1)
    assert (rows["empty"].messages, rows["empty"].tokens, rows["empty"].head_prefix) == (
        0,
        0,
        None,
    )


def test_tree_has_every_branch_and_head(tree_db: srt.Runtime) -> None:
    top = tree_db.store.tree("alt")
    assert top is not None and (top.depth, top.role) == (1, "system")
    u1 = top.children[0]
    a1 = u1.children[0]
    assert (u1.text, a1.text) == ("How fast is a zebra?", "About 65 km/h.")
    assert [c.text for c in a1.children] == ["And a quokka?", "What do zebras eat?"]
    ends = [c.children[0] for c in a1.children]
    assert [(n.depth, n.heads, n.children) for n in ends] == [(5, ["main"], []), (5, ["alt"], [])]
    assert tree_db.store.tree("empty") is None
    with pytest.raises(srt.SessionNotFoundError):
        tree_db.store.tree("nope")
    # A fork with nothing of its own is a head in the middle of a run.
    tree_db.session("main").fork("early", at=2)
    top = tree_db.store.tree("main")
    assert top is not None and top.children[0].heads == ["early"]


@pytest.mark.parametrize("indexed", [False, True], ids=["no index", "search index"])
def test_gc_frees_the_deleted_and_keeps_the_forks(tree_db: srt.Runtime, indexed: bool) -> None:
    path = tree_db.path
    if indexed:  # its segments hold the words too: gc must leave none behind
        tree_db.store.build_search_index()
    marker = "QUOKKAMARKER7"  # only in main's own branch
    tree_db.session("main").append(user(f"{marker} " + "unique words " * 2000))
    alt_before = tree_db.session("alt").messages()
    with connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert marker.encode() in file_bytes(path)

    dry = tree_db.store.gc(dry_run=True)
    assert (dry.nodes, dry.messages, dry.dry_run) == (0, 0, True)
    tree_db.delete("main")
    before = snapshot(path)
    dry = tree_db.store.gc(dry_run=True)
    assert (dry.nodes, dry.messages) == (3, 3)
    assert snapshot(path) == before  # a dry run changes nothing

    report = tree_db.store.gc()
    assert (report.nodes, report.messages, report.ledger_rows) == (3, 3, 0)
    assert report.message_bytes > 2000 * 13
    assert report.pages_freed >= 1 and report.checkpointed and report.secure_delete
    assert report.bytes_freed == report.pages_freed * report.page_size
    # The fork is intact, and the deleted branch's text is nowhere in the file or WAL.
    assert tree_db.session("alt").messages() == alt_before
    assert tree_db.store.verify().ok
    data = file_bytes(path)
    for word in (marker, marker.lower(), "And a quokka?", "Quokkas hop slowly."):
        assert word.encode() not in data, word
    assert b"What do zebras eat?" in data
    assert tree_db.store.has_search_index() is indexed
    again = tree_db.store.gc()
    assert (again.nodes, again.messages, again.pages_freed) == (0, 0, 0)


def test_gc_keeps_the_ledger(tree_db: srt.Runtime) -> None:
    with ProviderServer() as srv:
        provider = OpenAI("sk-test", base_url=srv.url + "/v1")
        gone = tree_db.session("main").fork("gone")
        gone.append(user("Is this kept?"))
        gone.send(provider, model="gpt-4o-mini")
        provider.close()
    rows = tree_db.calls()
    assert len(rows) == 1 and rows[0]["node"] is not None
    tree_db.delete("gone")
    report = tree_db.store.gc()
    assert (report.nodes, report.ledger_rows) == (2, 1)
    (row,) = tree_db.calls()
    assert row == {**rows[0], "node": None, "params": None}  # (params rebuild from the node)
    assert tree_db.usage().requests == 1
    assert tree_db.store.verify().ok


def test_gc_refuses_a_broken_reference_and_changes_nothing(tree_db: srt.Runtime) -> None:
    tree_db.delete("alt")
    with connect(tree_db.path) as conn:
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("UPDATE sessions SET head = 999 WHERE name = 'main'")
    before = snapshot(tree_db.path)
    with pytest.raises(srt.CorruptionError, match=r"sessions row .* refers to a missing nodes row"):
        tree_db.store.gc()
    assert snapshot(tree_db.path) == before


_WRITER = textwrap.dedent(
    """
    import sys, srt
    with srt.Runtime(sys.argv[1]) as rt:
        s = rt.session(sys.argv[2])
        for i in range(int(sys.argv[3])):
            s.append({"role": "user", "content": f"{sys.argv[2]} turn {i}"}, rebase=True)
    print("done")
    """
)


def test_gc_is_safe_while_other_processes_write(db_path: str) -> None:
    turns = 150
    with srt.Runtime(db_path) as rt:
        base = rt.session("base")
        base.append(user("shared start"))
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", _WRITER, db_path, f"w{k}", str(turns)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for k in range(2)
        ]
        sweeps = 0
        try:
            while any(w.poll() is None for w in writers) or sweeps < 3:
                doomed = base.fork(f"doomed{sweeps}")
                doomed.append(user(f"garbage {sweeps} " * 50))
                rt.delete(f"doomed{sweeps}")
                assert rt.store.gc().nodes == 1
                sweeps += 1
        finally:
            results = [w.communicate(timeout=60) for w in writers]
        assert [r[0] for r in results] == ["done\n", "done\n"], results
        assert [w.returncode for w in writers] == [0, 0]
        for k in range(2):
            assert [m["content"] for m in rt.session(f"w{k}").messages()] == [
                f"w{k} turn {i}" for i in range(turns)
            ]
        report = rt.store.verify()
        assert report.ok, report.faults
        assert report.sessions == 3 and report.messages == 1 + 2 * turns


def _corrupt(path: str, sql: str, *args: Any) -> None:
    """Change the file by hand, through apsw (never the stdlib sqlite3 module)."""
    with connect(path) as conn:
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute(sql, args)


def test_verify_names_a_corrupted_body_and_who_reaches_it(tree_db: srt.Runtime) -> None:
    assert tree_db.store.verify().ok
    with connect(tree_db.path) as conn:
        (mid, mhash, body) = conn.execute(
            "SELECT id, hash, body FROM messages WHERE CAST(body AS TEXT) LIKE '%65 km/h%'"
        ).fetchone()
        tamper_body(conn, mhash, body.replace(b"65", b"95"))
    report = tree_db.store.verify()
    assert not report.ok and report.messages == 7 and report.nodes == 7
    (fault,) = report.faults
    assert (fault.kind, fault.table, fault.row) == ("message", "messages", mid)
    assert fault.places == (("alt", 3), ("main", 3))
    assert str(fault).startswith(f"messages row {mid}: the stored body does not hash to its hash ")
    assert str(fault).endswith("; reached by 'alt' message 3, 'main' message 3")


def test_verify_finds_broken_chains_heads_and_index(tree_db: srt.Runtime) -> None:
    tree_db.store.build_search_index()
    with connect(tree_db.path) as conn:
        node, depth = conn.execute(
            "SELECT n.id, n.depth FROM nodes n JOIN sessions s ON s.head = n.id "
            "WHERE s.name = 'alt'"
        ).fetchone()
    _corrupt(tree_db.path, "UPDATE nodes SET depth = 9 WHERE id = ?", node)
    _corrupt(tree_db.path, "UPDATE sessions SET head = 4242 WHERE name = 'main'")
    with connect(tree_db.path) as conn:
        second = conn.execute("SELECT id FROM messages ORDER BY id LIMIT 1 OFFSET 1").get
    _corrupt(tree_db.path, "DELETE FROM messages_fts WHERE rowid = ?", second)
    faults = tree_db.store.verify().faults
    assert [(f.kind, f.table) for f in faults] == [
        ("node", "nodes"),
        ("session", "sessions"),
        ("search_index", "messages_fts"),
    ]
    assert faults[0].row == node and faults[0].detail == f"depth 9 should be {depth}"
    assert faults[1].detail == "session 'main': head 4242 is missing"
    assert faults[2].row == second


def test_verify_checks_the_search_index_where_there_is_one(tree_db: srt.Runtime) -> None:
    path = tree_db.path
    assert tree_db.store.verify().ok  # no index: nothing to compare
    tree_db.store.build_search_index()
    _corrupt(path, "INSERT INTO messages_fts(rowid, text) VALUES (99, 'stray')")
    _corrupt(path, "DROP TRIGGER messages_fts_delete")
    faults = tree_db.store.verify().faults
    assert [(f.kind, f.table, f.row) for f in faults] == [
        ("search_index", "messages_fts", 99),
        ("search_index", "messages_fts", None),
    ]
    assert faults[0].detail == "the index holds a message not stored"
    assert faults[1].detail.startswith("its trigger messages_fts_delete is missing")


def test_verify_reports_a_damaged_prefix(tree_db: srt.Runtime) -> None:
    with connect(tree_db.path) as conn:
        (node,) = conn.execute("SELECT id FROM nodes WHERE depth = 2").fetchone()
    _corrupt(tree_db.path, "UPDATE nodes SET prefix = zeroblob(16) WHERE id = ?", node)
    (fault,) = tree_db.store.verify().faults
    assert (fault.kind, fault.row) == ("node", node)
    assert "prefix hash does not chain" in fault.detail
    assert fault.places == (("alt", 2), ("main", 2))


def test_a_damaged_node_hash_leaves_the_chain_readable_and_verify_finds_it(
    tree_db: srt.Runtime,
) -> None:
    """A chain read hashes each body itself and checks it through the prefix chain, so a
    node's stored message hash (the index appends and gc look bodies up by) is not what
    a read trusts: the history reads back intact, and ``verify`` names the node."""
    want = tree_db.session("main").messages()
    with connect(tree_db.path) as conn:
        (node,) = conn.execute("SELECT id FROM nodes WHERE depth = 2").fetchone()
    _corrupt(tree_db.path, "UPDATE nodes SET hash = zeroblob(16) WHERE id = ?", node)
    with srt.Runtime(tree_db.path) as again:
        assert again.session("main").messages() == want
        faults = again.store.verify().faults
    assert faults and all(f.kind in ("message", "node") for f in faults)
    assert any(f.row == node for f in faults if f.kind == "node")


def test_vacuum_returns_free_pages_to_the_disk(rt: srt.Runtime) -> None:
    big = rt.session("big")
    for i in range(40):
        big.append(user(f"{i} " + "filler text " * 4000))
    rt.session("small").append(user("stays"))
    rt.delete("big")
    assert rt.store.gc().messages == 40
    report = rt.store.vacuum()
    assert report.checkpointed
    assert report.bytes_after < report.bytes_before / 4
    assert rt.store.verify().ok
    assert rt.session("small").messages() == [user("stays")]


def test_maintenance_needs_a_file() -> None:
    with srt.Runtime(":memory:") as rt, pytest.raises(srt.ConfigError):
        rt.store.gc()
