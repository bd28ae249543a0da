"""gc in batches on PostgreSQL: writes made between the mark and a batch, between two
batches, or under way while a batch holds its locks, that make a candidate reachable
again or name its message, keep it; another gc at the same time counts each node once.

A hook in the gc code (``store.postgres.gc.hook``) runs the writer between the phases,
deterministically; ``BATCH`` is made small so a store of a few sessions takes several
batches. A writer under way while a batch holds its locks runs in a thread, and the
test waits until the server says it is waiting for a lock. After gc every live session
reads back as before and ``verify`` is clean. A naive batched gc (deleting what the mark
found, with no re-check under the locks) fails each of these.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

import srt
from pg_support import server_url
from srt import _core
from srt.message import canonicalize
from srt.store import NewNode, Store
from srt.store.postgres import gc as batched
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


def _bodies(texts: list[str]) -> list[bytes]:
    return [canonicalize({"role": "user", "content": t})[0] for t in texts]


@pytest.fixture
def rt(pg_url: str) -> Iterator[srt.Runtime]:
    with srt.Runtime(pg_url) as r:
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
        assert [bytes(c[2]) for c in rt.store.chain(row.head)] == _bodies(texts), name
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


def test_a_new_node_reusing_a_dead_message_keeps_the_message(
    rt: srt.Runtime, between: Callable[[str, Callable[[], None]], None]
) -> None:
    _session(rt.store, "gone", TEXTS)
    rt.store.delete_session("gone")

    def reuse() -> None:  # below another parent: a new node, the stored message by hash
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

    between("batch", put)  # after the first batch (the newest two) went
    report = rt.gc()
    assert report.nodes == 4
    assert [bytes(c[2]) for c in rt.store.chain(ids[4])] == _bodies(TEXTS[:5])
    assert rt.store.verify().ok


def _gc_elsewhere(url: str, how: str) -> tuple[int, int]:
    """A gc of the store that is not the test's runtime's: another process's, or another
    runtime's in this one. The nodes and messages it deleted."""
    if how == "process":
        code = (
            "import srt, sys\nwith srt.Runtime(sys.argv[1]) as rt:\n"
            "    r = rt.gc(); print(r.nodes, r.messages)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, url], capture_output=True, text=True, check=True
        )
        nodes, messages = out.stdout.split()
        return int(nodes), int(messages)
    with srt.Runtime(url) as other:
        report = other.gc()
        return report.nodes, report.messages


@pytest.mark.parametrize("how", ["process", "runtime"])
@pytest.mark.parametrize("phase", ["marked", "batch"])
def test_another_gc_at_the_same_time_counts_each_node_once(
    rt: srt.Runtime,
    pg_url: str,
    between: Callable[[str, Callable[[], None]], None],
    how: str,
    phase: str,
) -> None:
    """Another gc runs whole between this one's mark and its first batch, or between two
    of its batches: this one drops the candidates the other deleted, and the counts of
    the two add up to the garbage once."""
    _session(rt.store, "gone", TEXTS)
    _session(rt.store, "live", ["kept"])
    rt.store.delete_session("gone")
    other: list[tuple[int, int]] = []
    between(phase, lambda: other.append(_gc_elsewhere(pg_url, how)))
    report = rt.gc()
    assert other[0][0] == (len(TEXTS) if phase == "marked" else len(TEXTS) - 2)
    assert (report.nodes + other[0][0], report.messages + other[0][1]) == (9, 9)
    _check(rt, {"live": ["kept"]})


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


def _under_way(
    rt: srt.Runtime, between: Callable[[str, Callable[[], None]], None], write: Callable[[], None]
) -> list[BaseException]:
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
    thread.join()
    return raised


def test_a_session_created_on_a_candidate_while_a_batch_holds_its_locks_keeps_it(
    rt: srt.Runtime, between: Callable[[str, Callable[[], None]], None]
) -> None:
    """The new session's row lock on its head (checked ``FOR KEY SHARE`` before its
    insert, which waits for the batch) keeps the candidate and its ancestors."""
    ids = _session(rt.store, "gone", TEXTS)
    rt.store.delete_session("gone")
    head, prefix = ids[-1], rt.store.node_prefix(ids[-1])  # in the first batch

    def create() -> None:
        rt.store.create_session("held", head, exist_ok=False, head_prefix=prefix)

    assert _under_way(rt, between, create) == []
    _check(rt, {"held": TEXTS})


def test_an_append_below_a_candidate_a_batch_deletes_meanwhile_is_refused_whole(
    rt: srt.Runtime, between: Callable[[str, Callable[[], None]], None]
) -> None:
    """An append that checked its parent before the batch took its locks, and links it
    after the batch deleted it, is refused as below any collected node: a
    ``ConflictError``, nothing written (not the foreign key's ``StoreError``)."""
    ids = _session(rt.store, "gone", TEXTS)
    _session(rt.store, "live", ["kept"])
    rt.store.delete_session("gone")
    parent, prefix = ids[-1], rt.store.node_prefix(ids[-1])  # in the first batch
    row = rt.store.create_session("late", None, exist_ok=False)

    def append() -> None:
        rt.store.append(row.id, None, parent, 9, _items(prefix, ["late"]), parent_prefix=prefix)

    raised = _under_way(rt, between, append)
    assert len(raised) == 1 and isinstance(raised[0], srt.ConflictError), raised
    assert "collected by gc" in str(raised[0])
    late = rt.store.get_session("late")
    assert late is not None and late.head is None
    _check(rt, {"live": ["kept"]})


def test_a_dry_run_counts_what_gc_then_removes_and_writes_nothing(rt: srt.Runtime) -> None:
    """Expired objects and objects filed under a deleted session do not keep their
    nodes in the dry run's count either."""
    ids = _session(rt.store, "gone", TEXTS[:3])
    kept = _session(rt.store, "kept", ["kept"])
    rt.store.put_object("gctest", "scope", "expired", b"v", node=ids[1], expires=time.time() - 1)
    # filed under a session id no session has once its kind is declared one of those
    rt.store.put_object("gctest.pgorphan", "999999", "orphan", b"v", node=ids[2])
    srt.store.owners.session_kind("gctest.pgorphan")
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
    _check(rt, {"kept": ["kept"]})


@pytest.mark.parametrize("seed", range(6))
def test_random_writes_between_batches(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Random forks, reuses of dead messages and head moves onto dead nodes between
    every two batches: every session reads back as written, and verify is clean."""
    monkeypatch.setattr(batched, "BATCH", 3)
    rng = random.Random(seed)
    with srt.Runtime(pg_url) as rt:
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

        def write(phase: str) -> None:
            if phase == "locked":
                return
            n[0] += 1
            name = f"w{n[0]}"
            nid, held, hist = rng.choice(all_ids)

            def stored() -> bool:  # (ids are never reused on PostgreSQL)
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
            elif kind == 1:  # a dead message again, below a new parent
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
            got = [bytes(c[2]) for c in store.chain(row.head)]
            assert got == _bodies(t), (seed, name)
        assert store.verify().ok


@pytest.mark.parametrize("seed", SEEDS)
def test_gc_random_forest_in_batches_of_one(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """test_gc_random's brute-force reachability, every node its own batch."""
    monkeypatch.setattr(batched, "BATCH", 1)
    random_check(pg_url, seed, renumber=False)
