"""What removing the records of deleted sessions costs ``gc`` on a store with many objects.

    python bench/gc_objects.py                         # SQLite, 2,000 sessions x 50 calls
    python bench/gc_objects.py --url postgresql://...  # a PostgreSQL store (its own schema)
    python bench/gc_objects.py --sessions 500 --calls 20 --rounds 5

A store of ``--sessions`` sessions is written, each a task of ``--calls`` tool calls (a
question, then a reply asking for one call and its result per call), with one record
of an earlier head (naming no node) and ``--calls`` records of started tool calls
(``srt.store.owners`` kinds), and one object of another kind per session; a tenth of
the sessions are then deleted as an srt before this one did (their records stay).
``gc(dry_run=True)`` (all of gc's work, rolled back) is timed ``--rounds`` times in
each of two modes, alternating, in this one process: *without* (no kind declared: gc's
work before records of deleted sessions were removed) and *with* (the declared kinds:
those records are counted and removed too). Printed: the medians, their ratio, and the
count of records gc found.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from srt import _core
from srt.message import canonicalize
from srt.store import NewNode, ObjectPut, Store, open_store, owners


def _build(store: Store, sessions: int, calls: int) -> None:
    for i in range(sessions):
        messages: list[dict[str, object]] = [{"role": "user", "content": f"question {i}"}]
        for c in range(calls):  # a reply asking for one tool call, and its result
            fn = {"name": "act", "arguments": f'{{"n": {c}}}'}
            call = {"id": f"call_{c}", "type": "function", "function": fn}
            messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
            messages.append({"role": "tool", "tool_call_id": f"call_{c}", "content": f"{i}:{c}"})
        bodies = [canonicalize(m)[0] for m in messages]
        hashes = [_core.digest(b) for b in bodies]
        prefixes = _core.chain_many(_core.ROOT, hashes)
        items = [
            NewNode(h, b, p, None, None) for h, b, p in zip(hashes, bodies, prefixes, strict=True)
        ]
        row = store.create_session(f"s{i:06d}", None, exist_ok=False)
        sid = str(row.id)
        # (no node named: both modes then free the same nodes, and only the sweep differs)
        objects = [ObjectPut("srt.head", sid, "h", b"{}")]
        objects += [
            ObjectPut(
                "srt.tool_call", f"{sid}:{prefixes[2 * c + 1].hex()}:call_{c}", "start", b"1:0"
            )
            for c in range(calls)
        ]
        objects.append(ObjectPut("response", f"resp_{i}", "r", b"{}"))
        store.append(row.id, None, None, 0, items, objects=objects)


def _time(store: Store) -> tuple[float, int]:
    t0 = time.perf_counter()
    report = store.gc(dry_run=True)
    return time.perf_counter() - t0, report.orphan_objects


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Run the measurement; what it printed, as figures (``tests/test_bench.py``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", help="a store URL or path (default: a new SQLite file)")
    ap.add_argument("--sessions", type=int, default=2000)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    declared = owners._KINDS  # noqa: SLF001 (a store before the declaration, below)
    times: dict[str, list[float]] = {"without": [], "with": []}
    steady: dict[str, list[float]] = {"without": [], "with": []}
    found = 0
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(args.url or f"{tmp}/gc.db")
        try:
            t0 = time.perf_counter()
            _build(store, args.sessions, args.calls)
            owners._KINDS = set()  # noqa: SLF001
            for i in range(0, args.sessions, 10):
                store.delete_session(f"s{i:06d}")  # (records stay, as an earlier srt left them)
            built = time.perf_counter() - t0
            for _ in range(args.rounds):
                for mode in ("without", "with"):
                    owners._KINDS = set() if mode == "without" else declared  # noqa: SLF001
                    seconds, orphans = _time(store)
                    times[mode].append(seconds)
                    found = orphans if mode == "with" else found
            owners._KINDS = declared  # noqa: SLF001
            store.gc()  # the records of deleted sessions go: gc's work from then on
            for _ in range(args.rounds):
                for mode in ("without", "with"):
                    owners._KINDS = set() if mode == "without" else declared  # noqa: SLF001
                    steady[mode].append(_time(store)[0])
        finally:
            owners._KINDS = declared  # noqa: SLF001
            store.close()
    _print(args, store, built, found, times, "with them")
    _print(args, store, built, 0, steady, "after gc removed them (gc's cost from then on)")
    return {"found": found, "with_them": times, "after": steady}


def _print(
    args: argparse.Namespace,
    store: Store,
    built: float,
    found: int,
    times: dict[str, list[float]],
    when: str,
) -> None:
    total = args.sessions * (args.calls + 2)
    med = {m: statistics.median(v) for m, v in times.items()}
    print(f"-- {when}")
    print(
        f"{store.location.split('?')[0] if args.url else 'sqlite (temporary file)'}: "
        f"{args.sessions:,} sessions, {total:,} objects ({built:.1f} s to build); "
        f"{found:,} records of deleted sessions"
    )
    for mode in ("without", "with"):
        runs = ", ".join(f"{s * 1000:.1f}" for s in times[mode])
        ms = med[mode] * 1000
        print(f"  gc(dry_run=True) {mode:<7} the records' sweep: median {ms:.1f} ms ({runs})")
    print(f"  ratio with/without: {med['with'] / med['without']:.2f}")


if __name__ == "__main__":
    main()
