"""gc in batches, on each engine: writes made between the mark and a batch, between two
batches, or under way while a batch holds its lock(s), that make a candidate reachable
again or name its message, keep it; another gc at the same time counts each node once.

Each engine's gc module (``store.sqlite.gc``, ``store.postgres.gc``) has a ``hook`` the
``between`` fixture sets to run a writer at one phase, deterministically: ``"marked"``
after the mark, ``"locked"`` in each batch once it holds its lock(s), ``"batch"`` after
each batch's commit. ``BATCH`` is made small so a store of a few sessions takes several
batches. After gc every live session reads back as before and ``verify`` is clean. A
naive batched gc (deleting what the mark found, with no re-check under the lock) fails
each of these. The engines' own cases are marked ``SQLITE`` or ``POSTGRES``, each with
why the other engine differs.
"""

from __future__ import annotations

import random
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from types import ModuleType

import psycopg
import pytest

import srt
from pg_support import server_url
from rel_support.waits import joined
from srt import _core
from srt.message import canonicalize
from srt.store import NewNode, Store
from srt.store.postgres import gc as pg_gc
from srt.store.sqlite import gc as sqlite_gc
from srt.store.sqlite import gc_once
from test_gc_random import SEEDS, by_hand
from test_gc_random import _check as random_check

#: A case one engine only has (``store_url`` narrowed to it; the comment says why).
SQLITE = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
POSTGRES = pytest.mark.parametrize("store_url", ["postgres"], indirect=True)

Between = Callable[[str, Callable[[], None]], None]


def items(above: bytes, texts: list[str]) -> list[NewNode]:
    hashes = [_core.digest(b) for b in bodies(texts)]
    prefixes = _core.chain_many(above, hashes)
    return [
        NewNode(h, b, p, None, None)
        for h, b, p in zip(hashes, bodies(texts), prefixes, strict=True)
    ]


def session(store: Store, name: str, texts: list[str]) -> list[int]:
    row = store.create_session(name, None, exist_ok=False)
    return store.append(row.id, None, None, 0, items(_core.ROOT, texts))


def bodies(texts: list[str]) -> list[bytes]:
    return [canonicalize({"role": "user", "content": t})[0] for t in texts]


@pytest.fixture
def engine(store_url: str) -> ModuleType:
    """The batched gc module of ``store_url``'s engine (its ``BATCH`` and ``hook``)."""
    return pg_gc if store_url.startswith("postgresql") else sqlite_gc


@pytest.fixture
def rt(store_rt: srt.Runtime) -> srt.Runtime:
    return store_rt


@pytest.fixture
def between(monkeypatch: pytest.MonkeyPatch, engine: ModuleType) -> Between:
    """Run a writer once, at the first call of the engine's hook in ``phase``; batches
    of 2."""
    monkeypatch.setattr(engine, "BATCH", 2)

    def arm(phase: str, writer: Callable[[], None]) -> None:
        done = []

        def hook(at: str) -> None:
            if at == phase and not done:
                done.append(1)
                writer()

        monkeypatch.setattr(engine, "hook", hook)

    return arm


def check(rt: srt.Runtime, expect: dict[str, list[str]]) -> None:
    for name, texts in expect.items():
        row = rt.store.get_session(name)
        assert row is not None
        assert [bytes(c[2]) for c in rt.store.chain(row.head)] == bodies(texts), name
    assert rt.store.verify().ok
    again = rt.gc()
    assert again.nodes == 0 and again.messages == 0


TEXTS = [f"dead message {i} " + "z" * 50 for i in range(9)]


@pytest.mark.parametrize("phase", ["marked", "batch"])
def test_a_fork_from_a_candidate_keeps_it_and_its_ancestors(
    rt: srt.Runtime, between: Between, phase: str
) -> None:
    ids = session(rt.store, "gone", TEXTS)
    session(rt.store, "live", ["kept"])
    rt.store.delete_session("gone")
    held = ids[3]  # a node id a caller held: a batch of the newest two goes first
    prefix = rt.store.node_prefix(held)

    def fork() -> None:
        row = rt.store.create_session("fork", None, exist_ok=False)
        rt.store.append(row.id, None, held, 4, items(prefix, ["forked"]), parent_prefix=prefix)

    between(phase, fork)
    report = rt.gc()
    assert report.nodes == len(TEXTS) - 4
    check(rt, {"fork": [*TEXTS[:4], "forked"], "live": ["kept"]})


def test_a_new_node_reusing_a_dead_message_keeps_the_message(
    rt: srt.Runtime, between: Between
) -> None:
    session(rt.store, "gone", TEXTS)
    rt.store.delete_session("gone")

    def reuse() -> None:  # below another parent: a new node, the stored message by hash
        session(rt.store, "reuse", ["first", TEXTS[5]])

    between("marked", reuse)
    report = rt.gc()
    assert (report.nodes, report.messages) == (len(TEXTS), len(TEXTS) - 1)
    check(rt, {"reuse": ["first", TEXTS[5]]})


def test_a_head_moved_onto_a_candidate_keeps_it(rt: srt.Runtime, between: Between) -> None:
    ids = session(rt.store, "s", TEXTS)
    row = rt.store.get_session("s")
    assert row is not None
    rt.store.move_head(row.id, ids[-1], ids[1])  # rewound: the rest is garbage

    def forward() -> None:  # and moved forward again, by a caller holding the old head
        rt.store.move_head(row.id, ids[1], ids[6])

    between("marked", forward)
    report = rt.gc()
    assert report.nodes == 2
    check(rt, {"s": TEXTS[:7]})


def test_an_object_put_on_a_candidate_keeps_it(rt: srt.Runtime, between: Between) -> None:
    ids = session(rt.store, "gone", TEXTS)
    rt.store.delete_session("gone")

    def put() -> None:
        rt.store.put_object("gctest", "scope", "o", b"v", node=ids[4])

    between("batch", put)  # after the first batch (the newest two) went
    report = rt.gc()
    assert report.nodes == 4
    assert [bytes(c[2]) for c in rt.store.chain(ids[4])] == bodies(TEXTS[:5])
    assert rt.store.verify().ok


def test_a_candidate_below_a_parent_of_a_larger_id_rescued_between_batches_stays_whole(
    rt: srt.Runtime, store_url: str, between: Between
) -> None:
    """Dead nodes whose ids are out of parent-before-child order (the parent's id made
    the largest by hand; only live ones send gc to the walk): the newest-first batches
    meet the parent first. A head moved onto its child after that batch keeps the child
    and its whole chain: the parent was kept for the child (was, on SQLite: deleted in
    the first batch, the child left below a missing node, and gc raised
    ``CorruptionError``)."""
    ids = session(rt.store, "gone", TEXTS[:4])
    rt.store.delete_session("gone")
    first = ids[0]  # the chain's first node, given the largest id
    by_hand(
        store_url,
        (
            f"UPDATE nodes SET id = 1000 WHERE id = {first}",
            f"UPDATE nodes SET parent = 1000 WHERE parent = {first}",
        ),
    )
    child = ids[1]
    row = rt.store.create_session("held", None, exist_ok=False)

    def hold() -> None:  # a caller held the child's id: it is still there
        rt.store.move_head(row.id, None, child)

    between("batch", hold)  # after the first batch (ids 1000 and ids[3]) was decided
    report = rt.gc()
    assert report.nodes == 2
    check(rt, {"held": TEXTS[:2]})


def _gc_elsewhere(rt: srt.Runtime, url: str, how: str) -> tuple[int, int]:
    """A gc of the store that is not ``rt``'s: another process's ``Runtime.gc``
    (``"process"``), or one in this process (``"here"``): another runtime's on
    PostgreSQL, the one-transaction gc on a connection of its own on SQLite (another
    runtime's would wait for this gc: gcs of a file in one process take turns). The nodes
    and messages it deleted."""
    if how == "process":
        code = (
            "import srt, sys\nwith srt.Runtime(sys.argv[1]) as rt:\n"
            "    r = rt.gc(); print(r.nodes, r.messages)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, url],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        nodes, messages = out.stdout.split()
        return int(nodes), int(messages)
    if url.startswith("postgresql"):
        with srt.Runtime(url) as other:
            report = other.gc()
            return report.nodes, report.messages
    conn = rt.store.db.open()
    try:
        with rt.store.db.lock:
            report = gc_once.once(conn, True, False, ())
            return report.nodes, report.messages
    finally:
        conn.close()


@pytest.mark.parametrize("how", ["process", "here"])
@pytest.mark.parametrize("phase", ["marked", "batch"])
def test_another_gc_at_the_same_time_counts_each_node_once(
    rt: srt.Runtime, store_url: str, between: Between, how: str, phase: str
) -> None:
    """Another gc runs whole between this one's mark and its first batch, or between two
    of its batches: this one drops the candidates the other deleted (on SQLite the gc
    epoch the other counted sends the rest to the one-transaction gc), and the counts of
    the two add up to the garbage once."""
    session(rt.store, "gone", TEXTS)
    session(rt.store, "live", ["kept"])
    rt.store.delete_session("gone")
    other: list[tuple[int, int]] = []
    between(phase, lambda: other.append(_gc_elsewhere(rt, store_url, how)))
    report = rt.gc()
    assert other[0][0] == (len(TEXTS) if phase == "marked" else len(TEXTS) - 2)
    assert (report.nodes + other[0][0], report.messages + other[0][1]) == (9, 9)
    check(rt, {"live": ["kept"]})


# SQLite only: gcs of a file in one process take turns on a lock per file; on
# PostgreSQL two runtimes' gcs run at once (the case above, "here").
@SQLITE
def test_two_gcs_at_once_take_turns(rt: srt.Runtime, between: Between) -> None:
    """A second gc in the same process waits for the first, then finds nothing left:
    the counts add up to the garbage once."""
    session(rt.store, "gone", TEXTS)
    session(rt.store, "live", ["kept"])
    rt.store.delete_session("gone")
    reports: list[srt.store.GcReport] = []
    other = threading.Thread(target=lambda: reports.append(rt.gc()))

    def start_other() -> None:
        other.start()

    between("marked", start_other)
    reports.append(rt.gc())
    joined(other)
    assert sorted((r.nodes, r.messages) for r in reports) == [(0, 0), (9, 9)]
    check(rt, {"live": ["kept"]})


# SQLite only: a deleted rowid can be handed out again (PostgreSQL's ids never are),
# which the gc epoch guards against.
@SQLITE
@pytest.mark.parametrize("how", ["process", "here"])
def test_another_gc_between_batches_and_ids_reused_below_the_watermark(
    rt: srt.Runtime, store_url: str, between: Between, how: str
) -> None:
    """Another gc deletes every candidate after the mark, and new nodes take their ids
    again (a file whose id sequence was set back by hand): the watermark node (the
    largest id) comes back identical (same chain, same prefix), and a new node lands on
    an id that was free at the mark, below a candidate id that is now a new node's.
    Neither is seen by a watermark check; the gc epoch the other gc counted sends the
    rest to the one-transaction gc, and nothing live goes."""
    store = rt.store
    assert session(store, "live", ["kept"]) == [1]
    assert session(store, "gone", ["g0", "g1", "g2", "g3"]) == [2, 3, 4, 5]
    assert session(store, "hole", ["h1", "h2"]) == [6, 7]
    assert session(store, "top", TEXTS) == list(range(8, 17))
    store.delete_session("hole")
    assert rt.gc().nodes == 2  # ids 6 and 7 are free, below live ones
    store.delete_session("gone")
    store.delete_session("top")  # the mark's candidates: 2-5 and 8-16 (the watermark)
    watermark = store.node_prefix(16)
    ids: dict[str, list[int]] = {}

    def elsewhere() -> None:
        assert _gc_elsewhere(rt, store_url, how)[0] == 13
        # Node ids are never given again (gc's ``nodes_floor`` mark) unless the mark is
        # removed by hand, as here: gc must stay correct over such a file too.
        rt.store.db.connection().execute("DELETE FROM srt_meta WHERE key = 'nodes_floor'")
        ids["v"] = session(store, "v", ["v0", "v1", "v2", "v3"])
        row = store.create_session("f", None, exist_ok=False)
        held = store.node_prefix(ids["v"][1])
        ids["f"] = store.append(
            row.id, None, ids["v"][1], 2, items(held, ["f0", "f1"]), parent_prefix=held
        )
        store.delete_session("v")  # f holds v's first two nodes
        ids["again"] = session(store, "again", TEXTS)

    between("marked", elsewhere)
    rt.gc()
    # the scenario as built: f's nodes on the ids free at the mark, below candidate
    # ids now f's ancestors; the watermark node there again, identical
    assert ids == {"v": [2, 3, 4, 5], "f": [6, 7], "again": list(range(8, 17))}
    assert store.node_prefix(16) == watermark
    check(rt, {"live": ["kept"], "f": ["v0", "v1", "f0", "f1"], "again": TEXTS})


# SQLite only: the gc epoch is how a batch there sees another process's gc (PostgreSQL
# re-checks its candidates against the tables under its locks instead).
@SQLITE
def test_every_gc_counts_the_epoch(rt: srt.Runtime) -> None:
    """Each batch and the one-transaction gc add one to the epoch; a dry run does not."""
    session(rt.store, "gone", TEXTS)
    rt.store.delete_session("gone")
    conn = rt.store.db.connection()
    assert gc_once.epoch(conn) == 0
    rt.gc(dry_run=True)
    assert gc_once.epoch(conn) == 0
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sqlite_gc, "BATCH", 4)
        mp.setattr(sqlite_gc, "HOLD", 3600.0)  # (a slow batch must not shrink the next)
        assert rt.gc().nodes == len(TEXTS)
    assert gc_once.epoch(conn) == 3  # batches of 4, 4 and 1
    with rt.store.db.lock:
        gc_once.once(conn, True, False, ())
    assert gc_once.epoch(conn) == 4


def _wait_for_a_lock_wait(schema: str) -> None:
    """Until a statement on ``schema`` waits for a lock (polled: the writer's thread has
    sent it and the server has queued it behind the batch)."""
    with psycopg.connect(server_url(), autocommit=True) as conn:
        for _ in range(30_000):
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE %s",
                (f'%"{schema}".%',),
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the writer never waited for the batch's locks")


def _under_way(rt: srt.Runtime, between: Between, write: Callable[[], None]) -> list[BaseException]:
    """Start ``write`` in a thread while the first batch holds its locks; return once it
    waits for them. What it raised is in the list returned (after the thread ends)."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            write()
        except BaseException as exc:  # (reported to the test)
            raised.append(exc)

    thread = threading.Thread(target=run)

    def start() -> None:
        thread.start()
        _wait_for_a_lock_wait(rt.store.db.schema)

    between("locked", start)
    rt.gc()
    joined(thread)
    return raised


# PostgreSQL only: a writer there checks a node (FOR KEY SHARE) before it waits for the
# batch's table locks; on SQLite a writer does all its work after the batch, under the
# writer lock (the rescue cases above).
@POSTGRES
def test_a_session_created_on_a_candidate_while_a_batch_holds_its_locks_keeps_it(
    rt: srt.Runtime, between: Between
) -> None:
    """The new session's row lock on its head (checked ``FOR KEY SHARE`` before its
    insert, which waits for the batch) keeps the candidate and its ancestors."""
    ids = session(rt.store, "gone", TEXTS)
    rt.store.delete_session("gone")
    head, prefix = ids[-1], rt.store.node_prefix(ids[-1])  # in the first batch

    def create() -> None:
        rt.store.create_session("held", head, exist_ok=False, head_prefix=prefix)

    assert _under_way(rt, between, create) == []
    check(rt, {"held": TEXTS})


# PostgreSQL only: as above (a write there is under way while a batch holds its locks).
@POSTGRES
def test_an_append_below_a_candidate_a_batch_deletes_meanwhile_is_refused_whole(
    rt: srt.Runtime, between: Between
) -> None:
    """An append that checked its parent before the batch took its locks, and links it
    after the batch deleted it, is refused as below any collected node: a
    ``ConflictError``, nothing written (not the foreign key's ``StoreError``)."""
    ids = session(rt.store, "gone", TEXTS)
    session(rt.store, "live", ["kept"])
    rt.store.delete_session("gone")
    parent, prefix = ids[-1], rt.store.node_prefix(ids[-1])  # in the first batch
    row = rt.store.create_session("late", None, exist_ok=False)

    def append() -> None:
        rt.store.append(row.id, None, parent, 9, items(prefix, ["late"]), parent_prefix=prefix)

    raised = _under_way(rt, between, append)
    assert len(raised) == 1 and isinstance(raised[0], srt.ConflictError), raised
    assert "collected by gc" in str(raised[0])
    late = rt.store.get_session("late")
    assert late is not None and late.head is None
    check(rt, {"live": ["kept"]})


def test_a_dry_run_counts_what_gc_then_removes_and_writes_nothing(rt: srt.Runtime) -> None:
    """Expired objects and objects filed under a deleted session do not keep their
    nodes in the dry run's count either."""
    ids = session(rt.store, "gone", TEXTS[:3])
    kept = session(rt.store, "kept", ["kept"])
    rt.store.put_object("gctest", "scope", "expired", b"v", node=ids[1], expires=time.time() - 1)
    # filed under a session id no session has once its kind is declared one of those
    # (a kind of this run's own: a declaration lasts as long as the process)
    kind = f"gctest.orphan{secrets.token_hex(4)}"
    rt.store.put_object(kind, "999999", "orphan", b"v", node=ids[2])
    srt.store.owners.session_kind(kind)
    rt.store.delete_session("gone")
    first = rt.store.node_prefix(ids[0])
    dry = rt.store.gc(dry_run=True, watch=[first])
    assert rt.store.node_prefix(ids[0]) == first  # nothing was deleted
    report = rt.store.gc(watch=[rt.store.node_prefix(kept[0])])
    assert (dry.nodes, dry.messages, dry.objects, dry.orphan_objects, dry.dry_run) == (
        3,
        3,
        1,
        1,
        True,
    )
    # (the real run finds the objects the dry run counted: it deleted nothing)
    assert (report.nodes, report.messages, report.objects, report.orphan_objects) == (3, 3, 1, 1)
    assert len(dry.dead_prefixes) == 1 and report.dead_prefixes == ()
    assert dry.message_bytes == report.message_bytes > 0
    check(rt, {"kept": ["kept"]})


@pytest.mark.parametrize("seed", range(6))
def test_random_writes_between_batches(
    rt: srt.Runtime, engine: ModuleType, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Random forks, reuses of dead messages and head moves onto dead nodes between
    every two batches: every session reads back as written, and verify is clean."""
    monkeypatch.setattr(engine, "BATCH", 3)
    rng = random.Random(seed)
    store = rt.store
    texts: dict[str, list[str]] = {}
    all_ids: list[tuple[int, bytes, list[str]]] = []
    for i in range(8):
        t = [f"s{i} m{k} " + "y" * rng.choice((5, 300, 5000)) for k in range(6)]
        ids = session(store, f"s{i}", t)
        all_ids += [(nid, store.node_prefix(nid), t[: k + 1]) for k, nid in enumerate(ids)]
        texts[f"s{i}"] = t
    for i in rng.sample(range(8), 5):
        store.delete_session(f"s{i}")
        del texts[f"s{i}"]
    n = [0]

    def write(phase: str) -> None:
        if phase == "locked":  # (a write there would wait for the batch: not between)
            return
        n[0] += 1
        name = f"w{n[0]}"
        nid, held, hist = rng.choice(all_ids)

        def stored() -> bool:  # (a collected id may name a new node since, on SQLite)
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
            store.append(row.id, None, nid, len(hist), items(held, [name]), parent_prefix=held)
            texts[name] = [*hist, name]
        elif kind == 1:  # a dead message again, below a new parent
            body = rng.choice(hist)
            store.append(row.id, None, None, 0, items(_core.ROOT, [name, body]))
            texts[name] = [name, body]
        else:  # a head moved onto a node a caller held
            if not stored():
                store.delete_session(name)
                return
            store.move_head(row.id, None, nid)
            texts[name] = hist

    monkeypatch.setattr(engine, "hook", write)
    rt.gc()
    monkeypatch.setattr(engine, "hook", None)
    for name, t in texts.items():
        row = store.get_session(name)
        assert row is not None
        assert [bytes(c[2]) for c in store.chain(row.head)] == bodies(t), (seed, name)
    assert store.verify().ok


@pytest.mark.parametrize("seed", SEEDS)
def test_gc_random_forest_in_batches_of_one(
    store_url: str, engine: ModuleType, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """test_gc_random's brute-force reachability, every node its own batch."""
    monkeypatch.setattr(engine, "BATCH", 1)
    random_check(store_url, seed, renumber=False)
