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
* ``gc``: runs ``srt.maintenance.gc`` on PATH and SIGKILLs itself at its ARG-th write
  or sync (the fault VFS is made the default, since gc opens its own connections).
* ``stream``: appends a question, then streams the reply from the local provider
  server at ARG (a URL); the parent kills it after the first delta.
"""

from __future__ import annotations

import sys

import srt
from rel_support.common import turn_payload
from rel_support.faultvfs import FaultVFS, Plan
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


def main() -> None:
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
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    out("DONE")


if __name__ == "__main__":
    main()
