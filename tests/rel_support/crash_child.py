"""The child of the crash loop (``tests/test_rel_crash.py``): write until killed.

    python crash_child.py MODE PATH CYCLE [ARG]

Every line goes to stdout with one ``write`` and a flush, and an ``ACK`` line is
printed only after the commit has returned, so the parent may hold srt to every
turn it saw acknowledged.

* ``append``: turns of 0-20 KB (a question and its answer, one ``append``) to
  sessions ``s0``-``s2``, with a fork every seventh turn; killed at a random moment.
* ``iokill``: as ``append``, but after ``READY`` the child SIGKILLs itself at its
  ARG-th write or sync (through ``FaultVFS``), so every I/O point of a commit is hit.
* ``migrate``: opens an older-schema file through ``srt.store.sqlite.SQLiteStore``, which migrates
  it, and SIGKILLs itself at its ARG-th write or sync of the migration.
* ``gc``: runs ``rt.store.gc()`` on PATH and SIGKILLs itself at its ARG-th write
  or sync (the fault VFS is made the default, since gc opens its own connections).
* ``stream``: appends a question, then streams the reply from the local provider
  server at ARG (a URL); the parent kills it after the first delta.
* ``ckpt``: a long-lived file's writer (``checkpoint_loop``): appends turns, forks,
  and (ARG ``ops``) also runs explicit checkpoints, retires sessions, collects
  garbage and vacuums; ``CKPT+``/``CKPT-`` mark each checkpoint's start and end
  (``CheckpointVFS``). ARG ``kill=K`` makes it SIGKILL itself at its K-th write
  to the database file, which only a checkpoint writes.
* ``powercut``: appends turns to session ``p`` with ``Runtime(durability=D)`` and, at
  its K-th write or sync (ARG ``D,k=K,keep=N,on=any|sync|db``: counting every I/O,
  only syncs, or only writes to the database file, i.e. checkpoints), cuts the power
  through ``PowerCutVFS`` (every write not yet synced is undone, but each file's
  first N) and dies at once.
"""

from __future__ import annotations

import random
import sys

import srt
from rel_support.common import connect, turn_payload
from rel_support.faultvfs import CheckpointVFS, FaultVFS, Plan
from rel_support.lifetime import end_by
from rel_support.powercut import PowerCutVFS
from srt.store.sqlite import SQLiteStore


def out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def append_loop(rt: srt.Runtime, cycle: str, fork_every: int = 7) -> None:
    sessions = [rt.session(f"s{i}") for i in range(3)]
    out("READY")
    i = 0
    while True:
        tid = f"{cycle}.{i}"
        s = sessions[i % 3]
        q, a = turn_payload(tid)
        out(f"BEGIN {tid}")
        head = s.append({"role": "user", "content": q}, {"role": "assistant", "content": a})
        out(f"ACK {tid} {s.name} {head}")
        if i % fork_every == fork_every - 1:
            name = f"fork-{tid}"
            s.fork(name)
            out(f"FORK {name} {s.name} {tid}")
        i += 1


MAIN_SESSIONS = 3
KEEP_FORKS = 4
CHECKPOINT_MODES = ("PASSIVE", "FULL", "RESTART", "TRUNCATE")


def checkpoint_loop(path: str, cycle: str, arg: str) -> None:
    """Append to a long-lived file until killed, through its checkpoints.

    Turns go to the three newest ``m-*`` sessions, with a fork every seventh turn.
    With ``ops`` in ARG, after a turn: 1 in 25 an explicit checkpoint (any mode, on a
    connection of its own, as another tool would); 1 in 40 the oldest main session
    and all but the newest forks are deleted, a new main session is started and
    ``gc`` runs (it ends with a TRUNCATE checkpoint); 1 in 250 ``vacuum`` (the whole
    file through the WAL, then a checkpoint). Without it, only the automatic
    checkpoint (WAL past 1,000 pages, 16 MB) ever writes the database file.
    """
    vfs = CheckpointVFS("ckwatch", lambda on: out("CKPT+" if on else "CKPT-"), default=True)
    ops = "ops" in arg.split(",")
    kill_at = next((int(a[5:]) for a in arg.split(",") if a.startswith("kill=")), None)
    rng = random.Random(cycle)
    with srt.Runtime(path) as rt:
        infos = sorted(rt.sessions(), key=lambda i: (i.created, i.name))
        mains = [i.name for i in infos if i.name.startswith("m-")][-MAIN_SESSIONS:]
        forks = [i.name for i in infos if i.name.startswith("fork-")]
        for j in range(MAIN_SESSIONS - len(mains)):
            mains.append(f"m-{cycle}-{j}")
            out(f"NEW {mains[-1]}")
        sessions = [rt.session(n) for n in mains]
        vfs.arm(kill_at)
        out("READY")
        i = 0
        while True:
            tid = f"{cycle}.{i}"
            s = sessions[i % len(sessions)]
            q, a = turn_payload(tid)
            out(f"BEGIN {tid}")
            head = s.append({"role": "user", "content": q}, {"role": "assistant", "content": a})
            out(f"ACK {tid} {s.name} {head}")
            if i % 7 == 6:
                name = f"fork-{tid}"
                s.fork(name)
                forks.append(name)
                out(f"FORK {name} {s.name} {tid}")
            i += 1
            if not ops:
                continue
            r = rng.random()
            if r < 1 / 25:
                mode = rng.choice(CHECKPOINT_MODES)
                out(f"OP checkpoint {mode}")
                with connect(path) as conn:
                    conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
            elif r < 1 / 25 + 1 / 40:
                old = sessions.pop(0)
                for name in [old.name, *forks[:-KEEP_FORKS]]:
                    out(f"DELETING {name}")
                    rt.delete(name)
                    out(f"DEL {name}")
                del forks[:-KEEP_FORKS]
                sessions.append(rt.session(f"m-{tid}"))
                out(f"NEW m-{tid}")
                out("OP gc")
                rt.store.gc()
            elif r < 1 / 25 + 1 / 40 + 1 / 250:
                out("OP vacuum")
                rt.store.vacuum()
            else:
                continue
            out("OP done")


def powercut(path: str, cycle: str, arg: str) -> None:
    durability, *rest = arg.split(",")
    opts = dict(kv.split("=") for kv in rest)
    k, keep, on = int(opts["k"]), int(opts.get("keep", "0")), opts.get("on", "any")
    vfs = PowerCutVFS("powercut", default=True)
    seen = [0]

    def on_io(kind: str, file_kind: str) -> None:
        if (on == "sync" and kind != "s") or (on == "db" and file_kind != "db"):
            return
        seen[0] += 1
        if seen[0] >= k:
            undone = vfs.cut(keep)
            out(f"CUT {kind} {file_kind} undone={sum(undone.values())}")
            vfs.die()

    with srt.Runtime(path, durability=durability) as rt:
        s = rt.session("p")
        len(s)
        vfs.on_io = on_io
        out("READY")
        i = 0
        while True:
            tid = f"{cycle}.{i}"
            q, a = turn_payload(tid)
            out(f"BEGIN {tid}")
            s.append({"role": "user", "content": q}, {"role": "assistant", "content": a})
            out(f"ACK {tid}")
            i += 1


def main() -> None:
    end_by()  # its loops run until the parent kills it: an orphan ends by itself
    mode, path, cycle = sys.argv[1:4]
    arg = sys.argv[4] if len(sys.argv) > 4 else ""
    if mode == "append":
        with srt.Runtime(path) as rt:
            append_loop(rt, cycle)
    elif mode == "iokill":
        vfs = FaultVFS("killer")
        with srt.Runtime(store=SQLiteStore(path, vfs="killer")) as rt:
            vfs.arm(Plan(op="any", k=int(arg), kill=True))
            append_loop(rt, cycle, fork_every=2)
    elif mode == "migrate":
        vfs = FaultVFS("killer")
        vfs.arm(Plan(op="any", k=int(arg), kill=True))
        store = SQLiteStore(path, vfs="killer")
        c = vfs.counters
        out(f"MIGRATED writes={c.writes} syncs={c.syncs}")
        store.close()
        out(f"CLOSED writes={c.writes} syncs={c.syncs}")
    elif mode == "gc":
        vfs = FaultVFS("killer", default=True)  # gc opens connections of its own
        with srt.Runtime(path) as rt:
            vfs.arm(Plan(op="any", k=int(arg), kill=True))
            report = rt.store.gc()
            c = vfs.counters
            out(f"GC nodes={report.nodes} messages={report.messages} writes={c.writes}")
        out(f"CLOSED writes={c.writes} syncs={c.syncs}")
    elif mode == "stream":
        from srt.providers import OpenAI

        p = OpenAI("sk-crash-test", base_url=arg + "/v1")
        with srt.Runtime(path) as rt:
            s = rt.session("chat")
            out("READY")
            q, _ = turn_payload(cycle, 2048)
            head = s.append({"role": "user", "content": q}, rebase=True)
            out(f"ACK {cycle} chat {head}")
            first = True
            stream = s.stream(p, model="gpt-4o", cache=False)
            for _delta in stream:
                if first:
                    out("DELTA")
                    first = False
            out(f"REPLY {cycle} {stream.status} {s.head}")
    elif mode == "ckpt":
        checkpoint_loop(path, cycle, arg)
    elif mode == "powercut":
        powercut(path, cycle, arg)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    out("DONE")


if __name__ == "__main__":
    main()
