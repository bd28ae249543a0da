"""gc in batches (SQLite): writes made between the mark and a batch, or between two
batches, that make a candidate reachable again or name its body, keep it.

A hook in the gc code (``store.sqlite.gc.hook``) runs the writer between the phases,
deterministically; ``BATCH`` is made small so a store of a few sessions takes several
batches. After gc every live session reads back as before and ``verify`` is clean.
A naive batched gc (deleting what the mark found, with no re-check under the lock)
fails each of these.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import srt
from srt import _core
from srt.message import canonicalize
from srt.store import NewNode, Store
from srt.store.sqlite import gc as batched
from srt.store.sqlite import gc_once
from test_gc_random import SEEDS
from test_gc_random import _check as random_check


def _items(above: bytes, texts: list[str]) -> list[NewNode]:
    bodies = [canonicalize({"role": "user", "content": t})[0] for t in texts]
    hashes = [_core.digest(b) for b in bodies]
    prefixes = _core.chain_many(above, hashes)
    return [NewNode(h, b, p, None, None) for h, b, p in zip(hashes, bodies, prefixes, strict=True)]


def _session(store: Store, name: str, texts: list[str]) -> list[int]:
    row = store.create_session(name, None, exist_ok=False)
    return store.append(row.id, None, None, 0, _items(_core.ROOT, texts))


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[srt.Runtime]:
    with srt.Runtime(str(tmp_path / "gc.db")) as r:
        yield r


@pytest.fixture
def between(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, Callable[[], None]], None]:
    """Run a writer once, at the first call of the hook in ``phase``; batches of 2."""
    monkeypatch.setattr(batched, "BATCH", 2)

    def arm(phase: str, writer: Callable[[], None]) -> None:
        done = []

        def hook(at: str) -> None:
            if at == phase and not done:
                done.append(1)
                writer()

        monkeypatch.setattr(batched, "hook", hook)

    return arm


def _check(rt: srt.Runtime, expect: dict[str, list[str]]) -> None:
    for name, texts in expect.items():
        row = rt.store.get_session(name)
        assert row is not None
        got = [canonicalize({"role": "user", "content": t})[0] for t in texts]
        assert [bytes(c[2]) for c in rt.store.chain(row.head)] == got, name
    assert rt.store.verify().ok
    again = rt.gc()
    assert again.nodes == 0 and again.messages == 0


TEXTS = [f"dead message {i} " + "z" * 50 for i in range(9)]


@pytest.mark.parametrize("phase", ["marked", "batch"])
def test_a_fork_from_a_candidate_keeps_it_and_its_ancestors(
    rt: srt.Runtime, between: Callable[[str, Callable[[], None]], None], phase: str
) -> None:
    ids = _session(rt.store, "gone", TEXTS)
    _session(rt.store, "live", ["kept"])
    rt.store.delete_session("gone")
    held = ids[3]  # a node id a caller held: a batch of the newest two goes first
    prefix = rt.store.node_prefix(held)

    def fork() -> None:
        row = rt.store.create_session("fork", None, exist_ok=False)
        rt.store.append(row.id, None, held, 4, _items(prefix, ["forked"]), parent_prefix=prefix)

    between(phase, fork)
    report = rt.gc()
    assert report.nodes == len(TEXTS) - 4
    _check(rt, {"fork": [*TEXTS[:4], "forked"], "live": ["kept"]})


def test_a_new_node_reusing_a_dead_body_keeps_the_body(
    rt: srt.Runtime, between: Callable[[str, Callable[[], None]], None]
) -> None:
    _session(rt.store, "gone", TEXTS)
    rt.store.delete_session("gone")

    def reuse() -> None:  # below another parent: a new node, the stored body found by hash
        _session(rt.store, "reuse", ["first", TEXTS[5]])

    between("marked", reuse)
    report = rt.gc()
    assert (report.nodes, report.messages) == (len(TEXTS), len(TEXTS) - 1)
    _check(rt, {"reuse": ["first", TEXTS[5]]})


def test_a_head_moved_onto_a_candidate_keeps_it(
    rt: srt.Runtime, between: Callable[[str, Callable[[], None]], None]
) -> None:
    ids = _session(rt.store, "s", TEXTS)
    row = rt.store.get_session("s")
    assert row is not None
    rt.store.move_head(row.id, ids[-1], ids[1])  # rewound: the rest is garbage

    def forward() -> None:  # and moved forward again, by a caller holding the old head
        rt.store.move_head(row.id, ids[1], ids[6])

    between("marked", forward)
    report = rt.gc()
    assert report.nodes == 2
    _check(rt, {"s": TEXTS[:7]})


def test_an_object_put_on_a_candidate_keeps_it(
    rt: srt.Runtime, between: Callable[[str, Callable[[], None]], None]
) -> None:
    ids = _session(rt.store, "gone", TEXTS)
    rt.store.delete_session("gone")

    def put() -> None:
        rt.store.put_object("gctest", "scope", "o", b"v", node=ids[4])

    between("batch", put)  # after the first batch (ids 8 and 7) went
    report = rt.gc()
    assert report.nodes == 4
    assert [bytes(c[2]) for c in rt.store.chain(ids[4])] == [
        canonicalize({"role": "user", "content": t})[0] for t in TEXTS[:5]
    ]
    assert rt.store.verify().ok


def test_two_gcs_at_once_take_turns(
    rt: srt.Runtime, between: Callable[[str, Callable[[], None]], None]
) -> None:
    """A second gc in the same process waits for the first, then finds nothing left:
    the counts add up to the garbage once."""
    _session(rt.store, "gone", TEXTS)
    _session(rt.store, "live", ["kept"])
    rt.store.delete_session("gone")
    reports: list[srt.store.GcReport] = []
    other = threading.Thread(target=lambda: reports.append(rt.gc()))

    def start_other() -> None:
        other.start()

    between("marked", start_other)
    reports.append(rt.gc())
    other.join()
    assert sorted((r.nodes, r.messages) for r in reports) == [(0, 0), (9, 9)]
    _check(rt, {"live": ["kept"]})


@pytest.mark.parametrize("seed", range(6))
def test_random_writes_between_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Random forks, reuses of dead bodies and head moves onto dead nodes between every
    two batches: every session reads back as written, and verify is clean."""
    monkeypatch.setattr(batched, "BATCH", 3)
    rng = random.Random(seed)
    with srt.Runtime(str(tmp_path / f"r{seed}.db")) as rt:
        store = rt.store
        texts: dict[str, list[str]] = {}
        all_ids: list[tuple[int, bytes, list[str]]] = []
        for i in range(8):
            t = [f"s{i} m{k} " + "y" * rng.choice((5, 300, 5000)) for k in range(6)]
            ids = _session(store, f"s{i}", t)
            all_ids += [(nid, store.node_prefix(nid), t[: k + 1]) for k, nid in enumerate(ids)]
            texts[f"s{i}"] = t
        for i in rng.sample(range(8), 5):
            store.delete_session(f"s{i}")
            del texts[f"s{i}"]
        n = [0]

        def write(_phase: str) -> None:
            n[0] += 1
            name = f"w{n[0]}"
            nid, held, hist = rng.choice(all_ids)

            def stored() -> bool:  # (a collected id may name a new node since)
                try:
                    return store.node_prefix(nid) == held
                except srt.SrtError:
                    return False

            kind = rng.randrange(3)
            row = store.create_session(name, None, exist_ok=False)
            if kind == 0:  # fork below a node a caller held
                if not stored():
                    store.delete_session(name)
                    return  # collected already
                store.append(row.id, None, nid, len(hist), _items(held, [name]), parent_prefix=held)
                texts[name] = [*hist, name]
            elif kind == 1:  # a dead body again, below a new parent
                body = rng.choice(hist)
                store.append(row.id, None, None, 0, _items(_core.ROOT, [name, body]))
                texts[name] = [name, body]
            else:  # a head moved onto a node a caller held
                if not stored():
                    store.delete_session(name)
                    return
                store.move_head(row.id, None, nid)
                texts[name] = hist

        monkeypatch.setattr(batched, "hook", write)
        rt.gc()
        monkeypatch.setattr(batched, "hook", None)
        for name, t in texts.items():
            row = store.get_session(name)
            assert row is not None
            want = [canonicalize({"role": "user", "content": x})[0] for x in t]
            assert [bytes(c[2]) for c in store.chain(row.head)] == want, (seed, name)
        assert store.verify().ok


@pytest.mark.parametrize("seed", SEEDS)
def test_gc_random_forest_in_batches_of_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """test_gc_random's brute-force reachability, every node its own batch."""
    monkeypatch.setattr(batched, "BATCH", 1)
    random_check(str(tmp_path / "srt.db"), seed, renumber=False)


def _gc_elsewhere(rt: srt.Runtime, how: str) -> int:
    """A gc of the store's file that is not ``rt``'s: another process's ``Runtime.gc``
    (batched there), or the one-transaction gc on a connection of its own. The nodes it
    deleted."""
    path = rt.store.db.path
    if how == "process":
        code = "import srt, sys\nwith srt.Runtime(sys.argv[1]) as rt: print(rt.gc().nodes)"
        out = subprocess.run(
            [sys.executable, "-c", code, path], capture_output=True, text=True, check=True
        )
        return int(out.stdout)
    conn = rt.store.db.open()
    try:
        with rt.store.db.lock:
            return gc_once.once(conn, True, False, ()).nodes
    finally:
        conn.close()


@pytest.mark.parametrize("how", ["process", "connection"])
def test_another_gc_between_batches_and_ids_reused_below_the_watermark(
    rt: srt.Runtime, between: Callable[[str, Callable[[], None]], None], how: str
) -> None:
    """Another gc deletes every candidate after the mark, and new nodes take their ids
    again (a file whose id sequence was set back by hand): the watermark node (the
    largest id) comes back identical (same chain, same prefix), and a new node lands on
    an id that was free at the mark, below a candidate id that is now a new node's.
    Neither is seen by a watermark check; the gc epoch the other gc counted sends the
    rest to the one-transaction gc, and nothing live goes."""
    store = rt.store
    assert _session(store, "live", ["kept"]) == [1]
    assert _session(store, "gone", ["g0", "g1", "g2", "g3"]) == [2, 3, 4, 5]
    assert _session(store, "hole", ["h1", "h2"]) == [6, 7]
    assert _session(store, "top", TEXTS) == list(range(8, 17))
    store.delete_session("hole")
    assert rt.gc().nodes == 2  # ids 6 and 7 are free, below live ones
    store.delete_session("gone")
    store.delete_session("top")  # the mark's candidates: 2-5 and 8-16 (the watermark)
    watermark = store.node_prefix(16)
    ids: dict[str, list[int]] = {}

    def elsewhere() -> None:
        assert _gc_elsewhere(rt, how) == 13
        # Node ids are never given again (schema v10) unless the file's sequence is
        # edited by hand, as here: gc must stay correct over such a file too.
        rt.store.db.connection().execute(
            "UPDATE sqlite_sequence SET seq = (SELECT max(id) FROM nodes) WHERE name = 'nodes'"
        )
        ids["v"] = _session(store, "v", ["v0", "v1", "v2", "v3"])
        row = store.create_session("f", None, exist_ok=False)
        held = store.node_prefix(ids["v"][1])
        ids["f"] = store.append(
            row.id, None, ids["v"][1], 2, _items(held, ["f0", "f1"]), parent_prefix=held
        )
        store.delete_session("v")  # f holds v's first two nodes
        ids["again"] = _session(store, "again", TEXTS)

    between("marked", elsewhere)
    rt.gc()
    # the scenario as built: f's nodes on the ids free at the mark, below candidate
    # ids now f's ancestors; the watermark node there again, identical
    assert ids == {"v": [2, 3, 4, 5], "f": [6, 7], "again": list(range(8, 17))}
    assert store.node_prefix(16) == watermark
    _check(rt, {"live": ["kept"], "f": ["v0", "v1", "f0", "f1"], "again": TEXTS})


def test_every_gc_counts_the_epoch(rt: srt.Runtime) -> None:
    """Each batch and the one-transaction gc add one to the epoch; a dry run does not."""
    _session(rt.store, "gone", TEXTS)
    rt.store.delete_session("gone")
    conn = rt.store.db.connection()
    assert gc_once.epoch(conn) == 0
    rt.gc(dry_run=True)
    assert gc_once.epoch(conn) == 0
    batched_nodes = len(TEXTS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(batched, "BATCH", 4)
        assert rt.gc().nodes == batched_nodes
    assert gc_once.epoch(conn) == 3  # batches of 4, 4 and 1
    with rt.store.db.lock:
        gc_once.once(conn, True, False, ())
    assert gc_once.epoch(conn) == 4


def test_a_batch_is_sized_by_the_time_the_last_held_the_lock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The next batch's size is the last one's scaled by ``HOLD`` over the time it held
    the lock (its re-check, deletes, commit and checkpoint): at most doubled or halved,
    at most ``BATCH``, at least one node."""
    monkeypatch.setattr(batched, "HOLD", 0.0625)
    monkeypatch.setattr(batched, "BATCH", 3000)
    assert batched.next_size(1000, 0.0625) == 1000
    assert batched.next_size(1000, 0.078125) == 800
    assert batched.next_size(1000, 0.5) == 500  # halved at most
    assert batched.next_size(1000, 0.001) == 2000  # doubled at most
    assert batched.next_size(2000, 0.001) == 3000  # BATCH at most
    assert batched.next_size(1000, 0.0) == 2000
    assert batched.next_size(1, 10.0) == 1
