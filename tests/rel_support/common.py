"""Shared pieces of the reliability tests (``tests/test_rel_*.py``).

* ``SOAK``: the long forms run when ``SRT_SOAK=1``;
* ``emit``: every test's figures, printed past pytest's capture and written as JSON;
* ``verify_store``: an independent check of a whole srt file with plain ``apsw``:
  ``integrity_check``, foreign keys, and every hash and prefix link recomputed;
* ``turn_payload``: the deterministic text of a numbered turn, so a checker can tell
  a complete turn from a half-written one without trusting the writer's word.

The checks never open an srt file with the stdlib ``sqlite3`` module: two SQLite
libraries in one process defeat each other's locks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apsw
import xxhash

from srt.message import canonicalize
from srt.store.sqlite import db as _db

SOAK = os.environ.get("SRT_SOAK", "") not in ("", "0")
ROOT = b"\x00" * 16
TESTS = Path(__file__).resolve().parents[1]
SUPPORT = Path(__file__).resolve().parent

#: Characters of generated turn text: ASCII, 2-, 3- and 4-byte UTF-8, NUL, quotes.
_ALPHABET = "abcdefghij klmnopqrstuvwxyz0123456789" + 'é✓𝄞"\\\n\x00\u2028'


def emit(name: str, figures: dict[str, Any], capsys: Any, basetemp: Path) -> Path:
    """Report ``figures`` (``figures_line``) and write them to ``rel-figures/NAME.json``.

    The JSON goes under the pytest base temp directory and, when set, into
    ``$SRT_REL_FIGURES`` (``bench/reliability.py`` collects it from there).
    """
    figures = {"test": name, "soak": SOAK, **figures}
    text = json.dumps(figures, indent=1, sort_keys=True, default=str)
    dirs = [basetemp / "rel-figures"]
    if os.environ.get("SRT_REL_FIGURES"):
        dirs.append(Path(os.environ["SRT_REL_FIGURES"]))
    out = dirs[0] / f"{name}.json"
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{name}.json").write_text(text + "\n")
    figures_line(capsys, f"{name}: " + json.dumps(figures, sort_keys=True, default=str))
    return out


def figures_line(capsys: Any, line: str) -> None:
    """Report ``[srt-figures] LINE`` in the run's "srt figures" section (tests/conftest.py),
    whichever worker ran the test."""
    capsys.request.node.user_properties.append(("srt-figures", f"[srt-figures] {line}"))


def child_env() -> dict[str, str]:
    """The environment of a child Python: this interpreter's, with ``tests/`` importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.pop("SRT_DB", None)
    return env


def turn_payload(tid: str, limit: int | None = None) -> tuple[str, str]:
    """The (question, answer) text of turn ``tid``: 0 to ``limit`` UTF-8 bytes in all.

    Derived from ``tid`` alone, so a checker recomputes it and any truncated, mixed
    or half-written turn shows as a mismatch. The default limit is 20 KB, or 2 KB
    for ids starting with ``k`` (the crash loop's kills at every I/O point, which
    keep each turn to a few pages so that there are fewer points to kill at).
    """
    if limit is None:
        limit = 2048 if tid.startswith("k") else 20 * 1024
    rng = random.Random(hashlib.sha256(tid.encode()).digest())
    size = rng.randint(0, limit)
    text = "".join(rng.choices(_ALPHABET, k=size)).encode()[:size].decode("utf-8", "ignore")
    cut = rng.randint(0, len(text))
    return f"Q {tid} " + text[:cut], f"A {tid} " + text[cut:]


@contextlib.contextmanager
def connect(path: str, **kw: Any) -> Iterator[apsw.Connection]:
    conn = apsw.Connection(path, **kw)
    try:
        conn.set_busy_timeout(10_000)
        yield conn
    finally:
        conn.close()


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class StoreReport:
    """What ``verify_store`` found: counts, and every problem as a line of text."""

    integrity: str = ""
    messages: int = 0
    nodes: int = 0
    sessions: int = 0
    calls: int = 0
    problems: list[str] = field(default_factory=list)
    #: session name -> list of message bodies (as parsed JSON) from root to head
    chains: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: session name -> head node id
    heads: dict[str, int | None] = field(default_factory=dict)
    #: node id -> status (partial replies)
    status: dict[int, str | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.integrity == "ok" and not self.problems


def verify_store(path: str, *, chains: bool = True) -> StoreReport:
    """Check an srt file as an outsider: SQLite's own checks, then srt's invariants.

    * ``PRAGMA integrity_check`` is ``ok`` and ``foreign_key_check`` is empty;
    * every message's hash is XXH3-128 of its bytes, which are a JSON object with a role;
    * every node's depth is its parent's plus one and its prefix is
      H(parent prefix || message hash);
    * every session head names an existing node;
    * with ``chains``, each session's messages from root to head are returned.
    """
    rep = StoreReport()
    with connect(path) as conn:
        rep.integrity = "\n".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check"))
        fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        if fk:
            rep.problems.append(f"foreign_key_check: {fk[:5]}")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
        if not tables:
            # A kill before the first migration committed leaves srt's freshly created,
            # empty file: nothing was acknowledged in it and the next open initializes it.
            return rep
        # Schema v5 keeps the bodies in a heap and shows them as the view "messages"
        # (id = the body's place in the heap); earlier versions had a messages table.
        heap_layout = "heap" in tables
        if not {"messages" if not heap_layout else "heap", "nodes", "sessions"} <= tables:
            rep.problems.append(f"missing tables: {sorted(tables)}")
            return rep
        hashes: dict[int, bytes] = {}
        bodies: dict[int, dict[str, Any]] = {}
        for mid, h, body in conn.execute("SELECT id, hash, body FROM messages"):
            rep.messages += 1
            if body is None or xxhash.xxh3_128_digest(body) != h:
                rep.problems.append(f"message {mid}: hash does not match its bytes")
                continue
            try:
                value = json.loads(bytes(body).decode("utf-8"))
            except ValueError as exc:
                rep.problems.append(f"message {mid}: not UTF-8 JSON ({exc})")
                continue
            if not isinstance(value, dict) or "role" not in value:
                rep.problems.append(f"message {mid}: not a message object")
            hashes[mid] = h
            bodies[mid] = value
        cols = {r[1] for r in conn.execute("PRAGMA table_info(nodes)")}
        has_status = "status" in cols
        nodes: dict[int, tuple[int | None, int, int, bytes]] = {}
        message = "at" if heap_layout else "message"
        sql = f"SELECT id, parent, {message}, depth, prefix" + (", status" if has_status else "")
        for row in conn.execute(sql + " FROM nodes ORDER BY id"):
            nid, parent, mid, depth, prefix = row[:5]
            rep.nodes += 1
            nodes[nid] = (parent, mid, depth, prefix)
            if has_status:
                rep.status[nid] = row[5]
        for nid, (parent, mid, depth, prefix) in nodes.items():
            if mid not in hashes:
                rep.problems.append(f"node {nid}: message {mid} missing or unreadable")
                continue
            if parent is None:
                want_depth, parent_prefix = 1, ROOT
            elif parent not in nodes:
                rep.problems.append(f"node {nid}: parent {parent} missing")
                continue
            else:
                want_depth, parent_prefix = nodes[parent][2] + 1, nodes[parent][3]
            if depth != want_depth:
                rep.problems.append(f"node {nid}: depth {depth}, expected {want_depth}")
            if prefix != xxhash.xxh3_128_digest(parent_prefix + hashes[mid]):
                rep.problems.append(f"node {nid}: prefix hash does not chain")
        for name, head in conn.execute("SELECT name, head FROM sessions"):
            rep.sessions += 1
            rep.heads[name] = head
            if head is not None and head not in nodes:
                rep.problems.append(f"session {name!r}: head {head} missing")
                continue
            if chains:
                chain: list[dict[str, Any]] = []
                cur = head
                while cur is not None and cur in nodes:
                    chain.append(bodies.get(nodes[cur][1], {}))
                    cur = nodes[cur][0]
                rep.chains[name] = chain[::-1]
        if "calls" in tables:
            rep.calls = int(conn.execute("SELECT count(*) FROM calls").get)
            for cid, node in conn.execute("SELECT id, node FROM calls WHERE node IS NOT NULL"):
                if node not in nodes:
                    rep.problems.append(f"call {cid}: node {node} missing")
    return rep


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) by the nearest-rank method; 0.0 for no values."""
    if not values:
        return 0.0
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q * len(s) + 0.5) - 1))
    return s[k]


def make_old_db(path: str, version: int) -> dict[str, list[dict[str, str]]]:
    """An srt file at schema ``version`` (< current), written with that version's SQL only.
    From v6 on (message bodies in the heap) the sessions are written at v5, then the
    later steps run as the migration runs them."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    expected: dict[str, list[dict[str, str]]] = {}
    with connect(path) as conn:
        conn.execute(f"PRAGMA page_size={_db.PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode=WAL").fetchall()
        with conn:
            for sql in _db.MIGRATIONS[: min(version, 5)]:
                conn.execute(sql)
            conn.execute(f"PRAGMA application_id={_db.APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={version}")
            for s in range(2):
                parent, depth, prefix = None, 0, b"\x00" * 16
                msgs = []
                for i in range(3):
                    q, a = turn_payload(f"old.{s}.{i}", 4096)
                    for msg in (
                        {"role": "user", "content": q},
                        {"role": "assistant", "content": a},
                    ):
                        body, _ = canonicalize(msg)
                        h = xxhash.xxh3_128_digest(body)
                        conn.execute(
                            "INSERT INTO messages(hash, body) VALUES (?, ?) "
                            "ON CONFLICT(hash) DO NOTHING",
                            (h, body),
                        )
                        mid = conn.execute("SELECT id FROM messages WHERE hash = ?", (h,)).get
                        depth += 1
                        prefix = xxhash.xxh3_128_digest(prefix + h)
                        conn.execute(
                            "INSERT INTO nodes(parent, message, depth, prefix) VALUES (?, ?, ?, ?)",
                            (parent, mid, depth, prefix),
                        )
                        parent = conn.last_insert_rowid()
                        msgs.append(msg)
                conn.execute(
                    "INSERT INTO sessions(name, head, created, updated) VALUES (?, ?, 0, 0)",
                    (f"old-{s}", parent),
                )
                expected[f"old-{s}"] = msgs
            for step in _db.MIGRATIONS[5:version]:
                if isinstance(step, str):
                    conn.execute(step)
                else:
                    step(conn)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    return expected


#: The tiny disk's size.
TINY = 2 * 1024 * 1024


@contextlib.contextmanager
def tiny_disk(where: Path, size: int = TINY) -> Iterator[str]:
    """A tmpfs of ``size`` bytes at ``where`` (root), else ``"vfs-budget"``: the caller
    then stands in for the disk with ``FaultVFS``'s byte budget."""
    where.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
            check=True,
            capture_output=True,
            timeout=300,
        )
    except (OSError, subprocess.CalledProcessError):
        yield "vfs-budget"
        return
    try:
        yield "tmpfs"
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True, timeout=300)


def header_short(path: str) -> bool:
    """Whether the file is shorter than the page count its (valid) header gives: the
    state a checkpoint leaves when it is killed or cut short by a full disk."""
    with open(path, "rb") as f:
        head = f.read(100)
    if len(head) < 100:
        return False
    (page_size,) = struct.unpack(">H", head[16:18])
    page_size = 65536 if page_size == 1 else page_size
    counter, pages = struct.unpack(">II", head[24:32])
    (valid_for,) = struct.unpack(">I", head[92:96])
    return bool(pages and counter == valid_for and os.path.getsize(path) < pages * page_size)
