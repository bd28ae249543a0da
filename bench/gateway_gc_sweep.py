"""What the gateway's hourly collection (``gc`` in the lease holder's sweep) costs a
store in use: its wall time, and the commits of turns made while it runs.

    python bench/gateway_gc_sweep.py                         # SQLite, 10,000 x 100
    python bench/gateway_gc_sweep.py --url postgresql://...  # a PostgreSQL store
    python bench/gateway_gc_sweep.py --sessions 1000 --messages 100
    python bench/gateway_gc_sweep.py --batch 1000            # SQLite: nodes per batch at most
    python bench/gateway_gc_sweep.py --once                  # SQLite: and in one transaction
    python bench/gateway_gc_sweep.py --once --rounds 3       # SQLite: alternated, 3 rounds
    python bench/gateway_gc_sweep.py --search                # with a search index

A store of ``--sessions`` sessions of ``--messages`` messages each is written through
the store API (not HTTP); a tenth of them is deleted (their nodes and messages are the
garbage). Then the sweep's collection runs (``orphans.sweep_store``, as the
worker holding the lease runs it: the lease is an object, so the store has an objects
table) while ``--writers`` threads each append turns (a user
message and a reply) to a session of their own, timing each commit. Printed: the
sweep's wall time, what it freed, the turns that failed (the store's lock wait ran
out), and the commit times of those committed during it (p50, p99, max) against the
same turns' with no sweep running. With ``--once`` (SQLite) the same store, copied
before the collection, is then collected again in one transaction (as a dry run, a
file whose ids are out of order or another process's gc is), for the comparison.
``--rounds N`` (SQLite) collects N fresh copies of the one store built (alternating
with ``--once``), so the rounds differ only by the machine's load. ``--search`` writes
words instead (12 of a 30,000-word vocabulary, drawn by a Zipf law, as prose uses them:
the search index's size) and builds the search index (as a first search does) before
the deletes, so the collection also
cleans the index of the collected messages' words; printed too (SQLite): the time from
the last batch's commit to the collection's end ("after the batches": the index's
cleanup, the report's snapshot and the final checkpoint).
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import shutil
import statistics
import tempfile
import threading
import time

import srt
from srt import _core
from srt.gateway import orphans
from srt.message import canonicalize
from srt.store import NewNode, Store


def _words(rng: random.Random, vocabulary: list[str], weights: list[float]) -> str:
    """~80 characters of words drawn from ``vocabulary`` by a Zipf law (as in prose)."""
    return " ".join(rng.choices(vocabulary, cum_weights=weights, k=12))


def _build(store: Store, sessions: int, messages: int, words: bool = False) -> None:
    rng = random.Random(26)
    vocabulary = [f"{w:x}q{w % 7}" for w in range(30_000)] if words else []
    weights = list(itertools.accumulate(1 / (r + 1) for r in range(len(vocabulary))))
    for i in range(sessions):
        msgs = [
            {
                "role": "user" if k % 2 == 0 else "assistant",
                "content": f"s{i} m{k} "
                + (_words(rng, vocabulary, weights) if words else "x" * 80),
            }
            for k in range(messages)
        ]
        bodies = [canonicalize(m)[0] for m in msgs]
        hashes = [_core.digest(b) for b in bodies]
        prefixes = _core.chain_many(_core.ROOT, hashes)
        items = [
            NewNode(h, b, p, None, None) for h, b, p in zip(hashes, bodies, prefixes, strict=True)
        ]
        row = store.create_session(f"gw/t/resp_{i:032x}", None, exist_ok=False)
        store.append(row.id, None, None, 0, items)


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


def _turns(
    rt: srt.Runtime,
    k: int,
    stop: threading.Event,
    out: list[float],
    failed: list[tuple[float, str]],
) -> None:
    s = rt.session(f"writer{k}")
    n = 0
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            s.append(
                [{"role": "user", "content": f"w{k} q{n}"}, {"role": "assistant", "content": "a"}]
            )
        except srt.SrtError as exc:  # the store's lock wait ran out: a failed turn
            failed.append((time.perf_counter() - t0, type(exc).__name__))
        else:
            out.append(time.perf_counter() - t0)
        n += 1
        time.sleep(0.005)


def _measure(rt: srt.Runtime, writers: int, work: float | None) -> tuple[float, list[float], str]:
    """Turns' commit times for ``work`` seconds of quiet (None: during the collection)."""
    stop = threading.Event()
    times: list[list[float]] = [[] for _ in range(writers)]
    failed: list[tuple[float, str]] = []
    threads = [
        threading.Thread(target=_turns, args=(rt, k, stop, times[k], failed))
        for k in range(writers)
    ]
    for t in threads:
        t.start()
    time.sleep(0.3)
    for ts in times:
        ts.clear()
    failed.clear()
    t0 = time.perf_counter()
    said = ""
    if work is None:
        from srt.store.sqlite import gc as batched

        phases: dict[str, float] = {}
        counts: dict[str, int] = {}

        longest = [0.0]  # between two index steps' ends: a step, and the pause before it

        def hook(phase: str) -> None:  # (SQLite's batched gc, between its phases)
            now = time.perf_counter()
            if phase == "index":
                longest[0] = max(longest[0], now - phases.get("index", phases.get("batch", now)))
            phases[phase] = now
            counts[phase] = counts.get(phase, 0) + 1

        batched.hook = hook
        try:  # (as the worker holding the lease runs it; the lease is an object)
            report = orphans.sweep_store(rt, 3600.0)
        finally:
            batched.hook = None
        assert report is not None
        done = time.perf_counter()
        said = f"nodes {report.nodes}, messages {report.messages}"
        if "batch" in phases:
            said += f"; after the batches {done - phases['batch']:.2f} s"
        if "index" in counts:
            said += f" ({counts['index']} index steps, the longest {longest[0] * 1000:.0f} ms)"
    else:
        time.sleep(work)
    wall = time.perf_counter() - t0
    stop.set()
    for t in threads:
        t.join()
    if failed:
        said += f"; {len(failed)} turns failed ({failed[0][1]} after {failed[0][0]:.1f} s)"
    return wall, [x for ts in times for x in ts], said


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", help="a store URL (default: a new SQLite file)")
    ap.add_argument("--sessions", type=int, default=10_000)
    ap.add_argument("--messages", type=int, default=100)
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--batch", type=int, help="SQLite: nodes per gc batch at most (gc.BATCH)")
    ap.add_argument("--once", action="store_true", help="SQLite: also in one transaction")
    ap.add_argument("--rounds", type=int, default=1, help="SQLite: copies of the store collected")
    ap.add_argument("--search", action="store_true", help="build the search index first")
    args = ap.parse_args(argv)
    from srt.store.sqlite import gc as batched

    if args.batch is not None:
        batched.BATCH = args.batch
    with tempfile.TemporaryDirectory() as tmp:
        path = args.url or f"{tmp}/gc.db"
        with srt.Runtime(path) as rt:
            t0 = time.perf_counter()
            _build(rt.store, args.sessions, args.messages, args.search)
            print(f"built {args.sessions} x {args.messages} in {time.perf_counter() - t0:.1f} s")
            if args.search:
                t0 = time.perf_counter()
                n = rt.store.build_search_index()
                print(f"search index of {n} messages built in {time.perf_counter() - t0:.1f} s")
            for i in range(0, args.sessions, 10):
                rt.delete(f"gw/t/resp_{i:032x}")
        if args.url:
            _run(path, "sweep's collection", args.writers)
            return
        mark = batched.mark
        for _ in range(max(1, args.rounds)):
            # (a copy of the closed store: the WAL is in the file)
            _run(shutil.copy(path, f"{tmp}/run.db"), "sweep's collection", args.writers)
            if args.once:
                batched.mark = lambda *_: None  # type: ignore[assignment]  # (gc_once collects)
                _run(shutil.copy(path, f"{tmp}/run.db"), "one transaction", args.writers)
                batched.mark = mark  # type: ignore[assignment]


def _run(path: str, what: str, writers: int) -> None:
    with srt.Runtime(path) as rt:
        load = os.getloadavg()[0]
        wall, during, said = _measure(rt, writers, None)
        _, quiet, _ = _measure(rt, writers, min(max(wall, 1.0), 10.0))
    if not path.startswith("postgresql"):
        for suffix in ("", "-wal", "-shm"):  # (a copy: the next round's takes its place)
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
    ms = 1000.0
    print(f"{what}: {wall:.2f} s ({said}); load average {load:.1f}")
    for name, xs in (("during it", during), ("quiet", quiet)):
        if not xs:
            print(f"turn commits {name}: none committed")
            continue
        print(
            f"turn commits {name}: n={len(xs)} p50 {statistics.median(xs) * ms:.1f} ms, "
            f"p99 {_pct(xs, 0.99) * ms:.1f} ms, max {max(xs) * ms:.1f} ms"
        )


if __name__ == "__main__":
    main()
