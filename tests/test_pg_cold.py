"""The PostgreSQL chain read's statements on a real server: the bodies of a chain whose
message ids fill a range are read by that range, any other chain's by their ids, and
either way the chain is checked (a damaged or missing body is still caught)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

import srt


def _schema(url: str) -> str:
    return url.rsplit("schema=", 1)[1]


@contextmanager
def _statements(rt: srt.Runtime, tmp_path: Path) -> Iterator[list[str]]:
    """The text of each statement parsed on ``rt``'s only connection meanwhile (libpq's
    own protocol trace)."""
    trace = tmp_path / "trace"
    out: list[str] = []
    with open(trace, "w") as f:
        with rt.store.db.connection() as conn:
            conn.pgconn.trace(f.fileno())
            conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            yield out
        finally:
            with rt.store.db.connection() as conn:
                conn.pgconn.untrace()
    for line in trace.read_text().split("\nF\t")[1:]:
        fields = line.split("\t", 2)
        if len(fields) == 3 and fields[1] == "Parse":
            out.append(" ".join(fields[2].split()))


def _bodies_read(statements: list[str]) -> list[str]:
    return [
        "range" if "BETWEEN" in s else "ids"
        for s in statements
        if "FROM" in s and ".messages WHERE id" in s
    ]


def _contents(rt: srt.Runtime, name: str) -> list[str]:
    """The session's messages as a new ``Runtime`` on the store reads them."""
    return [m["content"] for m in srt.Runtime(store=rt.store).session(name).messages()]


def test_a_chain_whose_message_ids_fill_a_range_reads_its_bodies_by_that_range(
    pg_url: str, tmp_path: Path
) -> None:
    with srt.Runtime(pg_url + "&pool_max=1") as rt:
        s = rt.session("a")
        for i in range(40):
            s.append({"role": "user", "content": f"m{i}"})
        with _statements(rt, tmp_path) as sent:
            assert _contents(rt, "a") == [f"m{i}" for i in range(40)]
        assert _bodies_read(sent) == ["range"]


def test_interleaved_chains_read_their_bodies_by_id(pg_url: str, tmp_path: Path) -> None:
    with srt.Runtime(pg_url + "&pool_max=1") as rt:
        a, b = rt.session("a"), rt.session("b")
        for i in range(20):  # each chain's messages are every other id
            a.append({"role": "user", "content": f"a{i}"})
            b.append({"role": "user", "content": f"b{i}"})
        with _statements(rt, tmp_path) as sent:
            assert _contents(rt, "a") == [f"a{i}" for i in range(20)]
            assert _contents(rt, "b") == [f"b{i}" for i in range(20)]
        assert _bodies_read(sent) == ["ids", "ids"]


def test_a_range_holding_another_chains_message_reads_only_this_chains(
    pg_url: str, tmp_path: Path
) -> None:
    """Repeated messages are stored once, so a chain may have fewer distinct ids than
    messages; a range that spans no more ids than the chain has messages is read whole,
    and a message of another session inside it is not taken into the chain."""
    with srt.Runtime(pg_url + "&pool_max=1") as rt:
        a, b = rt.session("a"), rt.session("b")
        a.append({"role": "user", "content": "x"})
        b.append({"role": "user", "content": "between"})
        a.append({"role": "user", "content": "y"})
        a.append({"role": "user", "content": "x"})
        a.append({"role": "user", "content": "x"})
        with rt.store.db.connection() as conn:
            ids = conn.execute(
                f'SELECT id FROM "{_schema(pg_url)}".messages ORDER BY id'
            ).fetchall()
        assert len(ids) == 3  # x, between, y: a's messages span all three
        with _statements(rt, tmp_path) as sent:
            assert _contents(rt, "a") == ["x", "y", "x", "x"]
            assert _contents(rt, "b") == ["between"]
        assert _bodies_read(sent) == ["range", "range"]


@pytest.mark.parametrize("fault", ["damaged", "missing"])
def test_a_body_read_by_its_range_is_still_checked(pg_url: str, fault: str) -> None:
    """A body changed behind srt's back fails the hash check; a message row gone (its
    node's link now dangling) is found by the one-statement walk; either way a
    ``CorruptionError``, as on the read by ids."""
    with srt.Runtime(pg_url) as rt:
        s = rt.session("a")
        for i in range(10):
            s.append({"role": "user", "content": f"m{i}"})
        schema = _schema(pg_url)
        with rt.store.db.connection() as conn:
            target = conn.execute(
                f'SELECT message FROM "{schema}".nodes WHERE depth = 5'
            ).fetchone()
            assert target is not None
            if fault == "damaged":
                conn.execute(
                    f'UPDATE "{schema}".messages SET body = %s WHERE id = %s',
                    (b'{"role":"user","content":"M4"}', target[0]),
                )
            else:  # past the foreign key, as damage would be
                conn.execute("SET session_replication_role = replica")
                conn.execute(f'DELETE FROM "{schema}".messages WHERE id = %s', (target[0],))
                conn.execute("RESET session_replication_role")
        with pytest.raises(srt.CorruptionError):
            srt.Runtime(store=rt.store).session("a").messages()
