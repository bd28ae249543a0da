"""The child of ``tests/test_rel_rekey.py``: rekeys killed at their k-th I/O, and what is left.

    PYTHONPATH=<apsw-sqlite3mc target>:tests python rekey_child.py prepare DIR
    PYTHONPATH=<apsw-sqlite3mc target>:tests python rekey_child.py kill DIR MODE K
    PYTHONPATH=<apsw-sqlite3mc target>:tests python rekey_child.py check MODE DIR...

``prepare`` writes ``DIR/plain.db`` and ``DIR/keyed.db`` (under ``OLD``) and counts the
I/O calls (writes and syncs) of one whole rekey per mode, and of its first step;
``kill`` rekeys ``DIR/srt.db`` through ``FaultVFS`` over SQLite3 Multiple Ciphers' VFS
and SIGKILLs itself at its K-th I/O call (K 0: just after the rename that ends it);
``check`` opens each DIR's file with the mode's old key and its new one, reads
everything through the one that opens, and finishes the rekey. Each prints one JSON line.
Each runs under umask 022, or under ``REKEY_UMASK`` (octal) when it is set.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import sys
from pathlib import Path
from typing import Any

import srt
from rel_support.faultvfs import FaultVFS, Plan
from srt.store.sqlite import SQLiteStore

#: Each mode's old key and new key (``None``: plain).
OLD, NEW = "the old passphrase", "the new passphrase"
MODES: dict[str, tuple[str | None, str | None]] = {
    "plain->key": (None, OLD),
    "key->key": (OLD, NEW),
    "decrypt": (OLD, None),
}
SESSIONS, TURNS = 8, 3
#: The unfinished copy a killed rekey leaves beside the file (``srt.store.sqlite.rekey``).
COPY_SUFFIX = "-rekey"


def turn(s: int, i: int) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": f"question {s}.{i} " + f"{s}-{i} " * 600},
        {"role": "assistant", "content": f"answer {s}.{i} " + f"{i}:{s} " * 600},
    ]


def expected(s: int) -> list[dict[str, str]]:
    return [m for i in range(TURNS) for m in turn(s, i)]


def base(d: Path, mode: str) -> Path:
    return d / ("plain.db" if MODES[mode][0] is None else "keyed.db")


def write_store(path: Path, key: str | None) -> None:
    with srt.Runtime(str(path), key=key) as rt:
        for s in range(SESSIONS):
            session = rt.session(f"s{s}")
            for i in range(TURNS):
                session.append(*turn(s, i))


def rekey_through(vfs: FaultVFS, path: Path, mode: str, plan: Plan) -> int:
    """Rekey ``path`` from ``mode``'s old key to its new one with ``plan`` armed; the
    number of I/O calls it made (if it lives)."""
    old, new = MODES[mode]
    with srt.Runtime(store=SQLiteStore(str(path), vfs=vfs.name, key=old)) as rt:
        vfs.arm(plan)
        rt.rekey(new)
        return vfs.counters.ops


def leaving_wal(vfs: FaultVFS, path: Path, key: str | None) -> int:
    """The I/O calls of a rekey's first step, the file leaving WAL mode."""
    store = SQLiteStore(str(path), vfs=vfs.name, key=key)
    try:
        store.db.close()
        vfs.arm(Plan())
        conn = store.db.open()
        conn.pragma("journal_mode", "delete")
        conn.close()
        return vfs.counters.ops
    finally:
        store.close()


def prepare(d: Path) -> dict[str, Any]:
    write_store(d / "plain.db", None)
    write_store(d / "keyed.db", OLD)
    vfs = FaultVFS("counter", base="multipleciphers-unix")
    ops, first = {}, {}
    for mode in MODES:
        (d / "count").mkdir(mode=0o700)
        shutil.copy(base(d, mode), d / "count" / "srt.db")
        ops[mode] = rekey_through(vfs, d / "count" / "srt.db", mode, Plan())
        shutil.copy(base(d, mode), d / "count" / "srt.db")
        first[mode] = leaving_wal(vfs, d / "count" / "srt.db", MODES[mode][0])
        shutil.rmtree(d / "count")
    return {"ops": ops, "leaving_wal": first}


def kill(d: Path, mode: str, k: str) -> dict[str, Any]:
    """Rekey, SIGKILLed at the K-th I/O call, or with K 0 just after the rename."""
    vfs = FaultVFS("killer", base="multipleciphers-unix")
    if k == "0":
        replace = os.replace

        def replace_and_die(src: str, dst: str) -> None:
            replace(src, dst)
            os.kill(os.getpid(), signal.SIGKILL)

        os.replace = replace_and_die  # (this process does nothing else)
    plan = Plan(op="any", k=int(k), kill=True) if k != "0" else Plan()
    return {"survived": rekey_through(vfs, d / "srt.db", mode, plan)}


def attempt(path: Path, key: str | None) -> dict[str, Any]:
    """Open ``path`` with ``key``: the error's type and text, or what the store holds."""
    try:
        with srt.Runtime(str(path), key=key) as rt:
            return {
                "opens": True,
                "messages_ok": all(
                    rt.session(f"s{s}").messages() == expected(s) for s in range(SESSIONS)
                ),
                "verify_ok": rt.store.verify().ok,
            }
    except srt.SrtError as exc:
        return {"opens": False, "error": [type(exc).__name__, str(exc)]}


def modes(d: Path) -> dict[str, str]:
    """The mode of every file in ``d``, and of ``d`` itself (as ``"."``)."""
    out = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in sorted(d.iterdir())}
    return {".": oct(stat.S_IMODE(d.stat().st_mode)), **out}


def check(mode: str, *dirs: str) -> dict[str, Any]:
    old, new = MODES[mode]
    out: dict[str, Any] = {}
    for name in dirs:
        d = Path(name)
        path = d / "srt.db"
        r: dict[str, Any] = {"files": modes(d)}
        r["old"], r["new"] = attempt(path, old), attempt(path, new)
        if r["old"]["opens"]:  # finish the rekey the kill cut short
            with srt.Runtime(str(path), key=old) as rt:
                rt.rekey(new)
        r["finished"] = attempt(path, new)
        r["files_after"] = modes(d)
        r["copy_left"] = Path(str(path) + COPY_SUFFIX).exists()
        out[d.name] = r
    return out


if __name__ == "__main__":
    from rel_support.lifetime import end_by

    end_by()  # an orphan ends by itself
    os.umask(int(os.environ.get("REKEY_UMASK", "022"), 8))
    command, args = sys.argv[1], sys.argv[2:]
    if command == "prepare":
        result = prepare(Path(args[0]))
    elif command == "kill":
        result = kill(Path(args[0]), args[1], args[2])
    else:
        result = check(args[0], *args[1:])
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
