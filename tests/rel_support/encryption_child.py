"""Encryption scenarios, run in a child whose ``apsw`` is apsw-sqlite3mc's build.

    PYTHONPATH=<apsw-sqlite3mc target>:tests python encryption_child.py SCENARIO DIR

Each scenario works in DIR and prints one JSON document of what it found; the parent
(``tests/test_rel_encryption.py``) asserts on it. Only one SQLite library is ever in
this process: apsw-sqlite3mc's (never the stdlib ``sqlite3``, never the plain apsw).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw

import srt
from srt import cli

KEY = "correct horse battery staple " + os.urandom(8).hex()
MARKER = "CANARY-TEXT-" + os.urandom(8).hex()


def files(path: str) -> dict[str, bytes]:
    return {
        s or "db": Path(path + s).read_bytes()
        for s in ("", "-wal", "-shm")
        if Path(path + s).exists()
    }


def found(needle: str | bytes, blobs: dict[str, bytes]) -> dict[str, int]:
    raw = needle.encode() if isinstance(needle, str) else needle
    return {name: b.count(raw) for name, b in blobs.items() if raw in b}


def digests(path: str) -> dict[str, str]:
    return {n: hashlib.sha256(b).hexdigest() for n, b in files(path).items()}


def error_of(fn: Callable[[], Any]) -> tuple[str, list[str]]:
    """The type name of what ``fn`` raised (``"none"``), and every text of it."""
    try:
        fn()
    except Exception as exc:
        texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        return type(exc).__name__, texts
    return "none", []


def turn(i: int) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": f"question {i}: {MARKER} " + "x" * 3000},
        {"role": "assistant", "content": f"answer {i}: {MARKER} " + "y" * 3000},
    ]


def at_rest(d: Path) -> dict[str, Any]:
    path = str(d / "db" / "srt.db")
    texts: list[str] = []
    with srt.Runtime(path, key=KEY) as rt:
        texts.append(repr(rt))
        s = rt.session("s")
        for i in range(40):
            s.append(*turn(i))
        rt.store.build_search_index()
        hits = len(rt.store.search(MARKER))
        open_files = files(path)
        texts.append(repr(s))
    closed = files(path)
    everything = {**{f"open {k}": v for k, v in open_files.items()}, **closed}
    listing = {p.name: p.read_bytes() for p in Path(path).parent.iterdir() if p.is_file()}
    return {
        "apsw": apsw.mc_version,
        "wal_bytes_checked_while_open": len(open_files.get("-wal", b"")),
        "files_checked": sorted(everything),
        "marker_in_files": found(MARKER, everything),
        "plain_header": closed["db"].startswith(b"SQLite format 3"),
        "key_in_db_directory": found(KEY, listing),
        "key_in_texts": sum(t.count(KEY) for t in texts),
        "search_hits": hits,
    }


def wrong_keys(d: Path) -> dict[str, Any]:
    path = str(d / "db" / "srt.db")
    with srt.Runtime(path, key=KEY) as rt:
        rt.session("s").append(*turn(0))
    plain = str(d / "plain" / "srt.db")
    with srt.Runtime(plain) as rt:
        rt.session("s").append(*turn(0))
    before, before_plain = digests(path), digests(plain)
    out: dict[str, Any] = {}
    texts: list[str] = []
    for name, fn in (
        ("wrong key", lambda: srt.Runtime(path, key="not " + KEY)),
        ("wrong bytes key", lambda: srt.Runtime(path, key=os.urandom(32))),
        ("no key", lambda: srt.Runtime(path)),
        ("key for a plain file", lambda: srt.Runtime(plain, key=KEY)),
    ):
        out[name], t = error_of(fn)
        texts += t
    out["encrypted file unchanged"] = digests(path) == before
    out["plain file unchanged"] = digests(plain) == before_plain
    out["key_in_error_texts"] = sum(t.count(KEY) for t in texts)
    with srt.Runtime(path, key=KEY) as rt:
        out["right key reads"] = rt.session("s").messages() == turn(0)
    return out


def rekey(d: Path) -> dict[str, Any]:
    path = str(d / "db" / "srt.db")
    new = "another passphrase " + os.urandom(4).hex()
    raw = os.urandom(32)
    out: dict[str, Any] = {}
    with srt.Runtime(path) as rt:  # plain, then encrypted by its first rekey
        s = rt.session("s")
        s.append(*turn(0))
        rt.rekey(KEY)
        s.append(*turn(1))  # the same handle goes on, on the encrypted file
    out["plain -> key: marker in files"] = found(MARKER, files(path))
    out["plain -> key: old (no key) refused"] = error_of(lambda: srt.Runtime(path))[0]
    with srt.Runtime(path, key=KEY) as rt:
        out["plain -> key: reads"] = rt.session("s").messages() == turn(0) + turn(1)
        rt.rekey(new)
    out["key -> new: old key refused"] = error_of(lambda: srt.Runtime(path, key=KEY))[0]
    with srt.Runtime(path, key=new) as rt:
        out["key -> new: reads"] = rt.session("s").messages() == turn(0) + turn(1)
        rt.rekey(raw)
    with srt.Runtime(path, key=raw) as rt:
        out["new -> bytes key: reads"] = rt.session("s").messages() == turn(0) + turn(1)
        rt.rekey(None)
    with srt.Runtime(path) as rt:
        out["decrypted: reads without a key"] = rt.session("s").messages() == turn(0) + turn(1)
        out["decrypted: verify ok"] = rt.store.verify().ok
    return out


def backup(d: Path) -> dict[str, Any]:
    path = str(d / "db" / "srt.db")
    dest = str(d / "backups" / "copy.db")
    acked: list[tuple[int, float]] = []
    stop = threading.Event()
    with srt.Runtime(path, key=KEY) as rt:
        rt.session("w").append(*turn(-1))

        def write() -> None:
            with srt.Runtime(path, key=KEY) as other:
                s = other.session("w")
                i = 0
                while not stop.is_set():
                    s.append(*turn(i), rebase=True)
                    acked.append((i, time.time()))
                    i += 1

        t = threading.Thread(target=write)
        t.start()
        while len(acked) < 20:
            time.sleep(0.01)
        began = time.time()
        report = rt.backup(dest)
        stop.set()
        t.join()
    copy = Path(dest).read_bytes()
    with srt.Runtime(dest, key=KEY) as c:
        msgs = c.session("w").messages()
        ok = c.store.verify().ok
    want = [i for i, at in acked if at < began]
    return {
        "report_encrypted": report.encrypted,
        "copy_plain_header": copy.startswith(b"SQLite format 3"),
        "marker_in_copy": copy.count(MARKER.encode()),
        "copy_without_key": error_of(lambda: srt.Runtime(dest))[0],
        "copy_verify_ok": ok,
        "turns_acknowledged_before_it_began": len(want),
        "all_of_them_in_copy": msgs[: 2 * (len(want) + 1)]
        == turn(-1) + [m for i in want for m in turn(i)],
    }


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli.main(list(argv))
    return code, out.getvalue()


def cli_keys(d: Path) -> dict[str, Any]:
    path = str(d / "db" / "srt.db")
    keys = d / "keys"
    keys.mkdir(mode=0o700)
    good = keys / "key"
    good.write_text(KEY + "\n")
    good.chmod(0o600)
    loose = keys / "loose"
    loose.write_text(KEY)
    loose.chmod(0o644)
    beside = Path(path).parent / "key"
    Path(path).parent.mkdir(mode=0o700, parents=True)
    beside.write_text(KEY)
    beside.chmod(0o600)
    new = keys / "new"
    new.write_bytes(os.urandom(32))
    new.chmod(0o600)
    out: dict[str, Any] = {}
    out["append"] = run_cli(
        "--db", path, "--key-file", str(good), "append", "s", "--role", "user", MARKER
    )[0]
    out["verify"] = run_cli("--db", path, "--key-file", str(good), "verify")
    out["show"] = run_cli("--db", path, "--key-file", str(good), "show", "s")[1].count(MARKER)
    out["no key"] = run_cli("--db", path, "verify")
    out["key file readable by others"] = run_cli("--db", path, "--key-file", str(loose), "verify")
    out["key file beside the database"] = run_cli("--db", path, "--key-file", str(beside), "verify")
    out["rekey"] = run_cli(
        "--db", path, "--key-file", str(good), "rekey", "--new-key-file", str(new)
    )
    out["old key after rekey"] = run_cli("--db", path, "--key-file", str(good), "verify")
    out["new key after rekey"] = run_cli("--db", path, "--key-file", str(new), "verify")
    dest = str(d / "copies" / "copy.db")
    out["backup"] = run_cli("--db", path, "--key-file", str(new), "backup", dest)
    out["backup verify"] = run_cli("--db", dest, "--key-file", str(new), "verify")
    out["marker_in_files"] = found(MARKER, {**files(path), "copy": Path(dest).read_bytes()})
    return out


def hashing_and_key(d: Path) -> dict[str, Any]:
    path = str(d / "db" / "srt.db")
    hk = os.urandom(32)
    with srt.Runtime(path, key=KEY, hash_key=hk) as rt:
        rt.session("s").append(*turn(0))
        mode = rt.hashing
    with srt.Runtime(path, key=KEY, hash_key=hk) as rt:
        reads = rt.session("s").messages() == turn(0)
        ok = rt.store.verify().ok
    return {
        "hashing": mode,
        "reads": reads,
        "verify_ok": ok,
        "without hash key": error_of(lambda: srt.Runtime(path, key=KEY))[0],
        "without key": error_of(lambda: srt.Runtime(path, hash_key=hk))[0],
    }


SCENARIOS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "at_rest": at_rest,
    "wrong_keys": wrong_keys,
    "rekey": rekey,
    "backup": backup,
    "cli": cli_keys,
    "hashing_and_key": hashing_and_key,
}

if __name__ == "__main__":
    from rel_support.lifetime import end_by

    end_by()  # an orphan ends by itself
    result = SCENARIOS[sys.argv[1]](Path(sys.argv[2]))
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
