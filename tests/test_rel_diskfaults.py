"""Disk faults: a VFS that fails the k-th write or sync, a tiny tmpfs, a read-only directory.

``rel_support.faultvfs.FaultVFS`` sits over the default VFS. For an append, a fork,
a file's first search (which builds the search index) and a schema migration it
first counts the writes and syncs the operation makes,
then for every k fails the k-th write (and, separately, the k-th sync) with
``SQLITE_FULL`` or ``SQLITE_IOERR``, once or from k on ("forever"). For each case:

* a typed error: an ``srt.StoreError`` subclass, never an ``apsw`` exception;
* no partial turn: the rows are exactly those before the operation (or, if the
  operation succeeded despite the fault, those plus the whole operation);
* ``PRAGMA integrity_check`` ok and srt's chain invariants hold;
* once the fault clears the same handle appends again, and a fresh runtime reads
  everything back.

The runtime is pointed at the VFS by giving it the engine:
``srt.Runtime(store=SQLiteStore(path, vfs=...))``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

import srt
from rel_support.common import (
    TINY,
    child_env,
    connect,
    emit,
    make_old_db,
    sha256,
    tiny_disk,
    turn_payload,
    verify_store,
)
from rel_support.faultvfs import FaultVFS, Plan
from srt.store.sqlite import SQLiteStore
from srt.store.sqlite import db as _db
from support import snapshot

VFS_NAME = "srt-rel-fault"


@pytest.fixture(scope="module")
def vfs() -> Iterator[FaultVFS]:
    v = FaultVFS(VFS_NAME)
    try:
        yield v
    finally:
        v.unregister()


@pytest.fixture
def faulty_runtime(vfs: FaultVFS) -> Iterator[Callable[[str], srt.Runtime]]:
    """``open(path)``: an ``srt.Runtime`` whose every connection goes through ``vfs``."""
    vfs.reset()
    yield lambda path: srt.Runtime(store=SQLiteStore(path, vfs=VFS_NAME))
    vfs.reset()


def turn(tid: str) -> tuple[dict[str, str], dict[str, str]]:
    q, a = turn_payload(tid, 8192)
    return {"role": "user", "content": q}, {"role": "assistant", "content": a}


def same_size_turn(tag: str) -> tuple[dict[str, str], dict[str, str]]:
    """A turn whose byte length does not depend on ``tag`` (at most 48 characters): the
    heap packs bodies across rows, so an append writes as many pages as its bodies
    need, and every fault case must write exactly what the dry run counted."""
    q, a = turn_payload("same size", 8192)
    mark = tag.ljust(48, ".")
    assert len(mark) == 48
    return {"role": "user", "content": mark + q}, {"role": "assistant", "content": mark + a}


def make_base(path: str) -> None:
    with srt.Runtime(path) as rt:
        s = rt.session("s")
        for i in range(4):
            s.append(*turn(f"base.{i}"))


class Outcomes:
    def __init__(self) -> None:
        self.cases = 0
        self.kinds: Counter[str] = Counter()
        self.failures: list[str] = []

    def fail(self, text: str) -> None:
        self.failures.append(text)


def _check_error(exc: BaseException | None, out: Outcomes, case: str) -> None:
    if exc is None:
        out.kinds["succeeded despite the fault"] += 1
        return
    if isinstance(exc, apsw.Error) or not isinstance(exc, srt.StoreError):
        out.fail(f"{case}: untyped error {type(exc).__module__}.{type(exc).__name__}: {exc}")
        return
    out.kinds[f"{type(exc).__name__}"] += 1
    if not str(exc):
        out.fail(f"{case}: empty error message")


def run_append_or_fork(
    op: str, tmp: Path, template: str, open_rt: Callable[[str], srt.Runtime], vfs: FaultVFS
) -> dict[str, Any]:
    """Every k for writes and syncs, FullError and IOError, once and forever."""
    # (The writes of the append's own transaction; a close's checkpoint is tested with
    # the migration, whose count includes it.)

    def prepare(tag: str) -> tuple[str, srt.Runtime, srt.Session]:
        path = str(tmp / tag / "srt.db")
        os.makedirs(os.path.dirname(path), mode=0o700)
        shutil.copy2(template, path)
        rt = open_rt(path)
        s = rt.session("s")
        s.messages()
        return path, rt, s

    def act(rt: srt.Runtime, s: srt.Session, tag: str) -> None:
        if op == "append":
            s.append(*same_size_turn(tag))
        elif op == "fork":
            s.fork(f"fork-{tag}")
        else:
            assert len(rt.store.search("base")) == 8

    # Dry run: how many writes and syncs does the operation make?
    path, rt, s = prepare(f"{op}-dry")
    vfs.arm(Plan())
    act(rt, s, "dry")
    counts = {"write": vfs.counters.writes, "sync": vfs.counters.syncs}
    rt.close()
    assert counts["write"] > 0

    out = Outcomes()
    for kind in ("write", "sync"):
        for k in range(1, counts[kind] + 1):
            for error in (apsw.FullError, apsw.IOError):
                for forever in (False, True):
                    case = f"{op} {kind} k={k} {error.__name__} {'forever' if forever else 'once'}"
                    tag = f"{op}-{kind}-{k}-{error.__name__}-{int(forever)}"
                    path, rt, s = prepare(tag)
                    before = snapshot(path)
                    want_before = s.messages()
                    vfs.arm(Plan(op=kind, k=k, forever=forever, error=error))
                    exc: BaseException | None = None
                    try:
                        act(rt, s, tag)
                    except BaseException as e:
                        exc = e
                    fired = vfs.counters.fired
                    vfs.reset()  # the fault clears
                    out.cases += 1
                    if not fired:
                        out.fail(f"{case}: the fault never fired")
                    _check_error(exc, out, case)
                    after = snapshot(path)
                    if exc is not None and after != before:
                        out.fail(f"{case}: the failed {op} changed the rows")
                    rep = verify_store(path)
                    if not rep.ok:
                        out.fail(f"{case}: {rep.integrity[:80]} {rep.problems[:2]}")
                    # The same handle works again, and a fresh runtime reads it all back.
                    try:
                        if exc is not None and op == "append":
                            s.append(*same_size_turn(tag))
                        s.append(*turn(tag + ".after"))
                    except BaseException as e:
                        out.fail(f"{case}: the store stayed unusable: {type(e).__name__}: {e}")
                        rt.close()
                        continue
                    rt.close()
                    want = [*want_before]
                    if op == "append":
                        want += [*same_size_turn(tag)]
                    want += [*turn(tag + ".after")]
                    with srt.Runtime(path) as fresh:
                        if fresh.session("s").messages() != want:
                            out.fail(f"{case}: messages differ after recovery")
                        forked = any(i.name == f"fork-{tag}" for i in fresh.sessions())
                        if op == "fork" and forked != (exc is None):
                            out.fail(f"{case}: fork exists={forked} but error={exc!r}")
                        if op == "search":
                            # All or nothing: the index is there only if the search
                            # succeeded, and then it follows the append made since.
                            built = fresh.store.has_search_index()
                            if built != (exc is None):
                                out.fail(f"{case}: index exists={built} but error={exc!r}")
                            if len(fresh.store.search("after")) != 2:
                                out.fail(f"{case}: a search after recovery misses the append")
                            if not fresh.store.verify().ok:
                                out.fail(f"{case}: verify fails after recovery")
    return {
        "writes_per_op": counts["write"],
        "syncs_per_op": counts["sync"],
        "cases": out.cases,
        "outcomes": dict(out.kinds),
        "failures": out.failures[:20],
        "failure_count": len(out.failures),
    }


def test_append_and_fork_under_every_write_and_sync_fault(
    tmp_path: Path,
    faulty_runtime: Callable[[str], srt.Runtime],
    vfs: FaultVFS,
    capsys: Any,
    tmp_path_factory: Any,
) -> None:
    template = str(tmp_path / "template" / "srt.db")
    make_base(template)
    figures = {
        op: run_append_or_fork(op, tmp_path, template, faulty_runtime, vfs)
        for op in ("append", "fork", "search")
    }
    emit("diskfaults_append_fork", figures, capsys, tmp_path_factory.getbasetemp())
    for op, f in figures.items():
        assert f["failure_count"] == 0, (op, f["failures"])
        assert f["cases"] == 4 * (f["writes_per_op"] + f["syncs_per_op"])


def test_migration_under_every_write_and_sync_fault(
    tmp_path: Path,
    faulty_runtime: Callable[[str], srt.Runtime],
    vfs: FaultVFS,
    capsys: Any,
    tmp_path_factory: Any,
) -> None:
    figures: dict[str, Any] = {}
    for old in range(1, _db.SCHEMA_VERSION):
        template = str(tmp_path / f"v{old}" / "srt.db")
        expected = make_old_db(template, old)
        dry = str(tmp_path / f"v{old}-dry" / "srt.db")
        os.makedirs(os.path.dirname(dry), mode=0o700)
        shutil.copy2(template, dry)
        vfs.arm(Plan())
        rt = faulty_runtime(dry)
        at_open = {"write": vfs.counters.writes, "sync": vfs.counters.syncs}
        rt.close()
        counts = {"write": vfs.counters.writes, "sync": vfs.counters.syncs}
        out = Outcomes()
        versions: Counter[int] = Counter()
        for kind in ("write", "sync"):
            for k in range(1, counts[kind] + 1):
                for error in (apsw.FullError, apsw.IOError):
                    for forever in (False, True):
                        case = f"v{old} {kind} k={k} {error.__name__} {forever}"
                        path = str(
                            tmp_path / f"v{old}-{kind}-{k}-{error.__name__}-{forever}" / "db"
                        )
                        os.makedirs(os.path.dirname(path), mode=0o700)
                        shutil.copy2(template, path)
                        vfs.arm(Plan(op=kind, k=k, forever=forever, error=error))
                        exc: BaseException | None = None
                        try:
                            # Open (and migrate), then close (a checkpoint), under the fault.
                            faulty_runtime(path).close()
                        except BaseException as e:
                            exc = e
                        fired = vfs.counters.fired
                        vfs.reset()
                        out.cases += 1
                        if not fired:
                            out.fail(f"{case}: the fault never fired")
                        if exc is None and k > at_open[kind]:
                            # The fault hit the checkpoint of close(), after the migration
                            # had committed; close() swallows it (the WAL keeps the data).
                            out.kinds["no error: fault in the checkpoint on close"] += 1
                        else:
                            _check_error(exc, out, case)
                        with connect(path) as conn:
                            version = int(conn.execute("PRAGMA user_version").get)
                        versions[version] += 1
                        if version not in (old, _db.SCHEMA_VERSION):
                            out.fail(f"{case}: schema left at version {version}")
                        rep = verify_store(path)
                        if not rep.ok:
                            out.fail(f"{case}: {rep.integrity[:80]} {rep.problems[:2]}")
                        for name, msgs in expected.items():
                            if rep.chains.get(name) != msgs:
                                out.fail(f"{case}: session {name} changed")
                        try:
                            with faulty_runtime(path) as again:
                                for name, msgs in expected.items():
                                    if again.session(name, create=False).messages() != msgs:
                                        out.fail(f"{case}: {name} reads wrongly after recovery")
                                again.session("new").append(*turn(case))
                        except BaseException as e:
                            out.fail(f"{case}: unusable after the fault cleared: {e!r}")
        figures[f"from_v{old}"] = {
            "writes": counts["write"],
            "syncs": counts["sync"],
            "writes_before_close": at_open["write"],
            "syncs_before_close": at_open["sync"],
            "cases": out.cases,
            "outcomes": dict(out.kinds),
            "schema_version_after_fault": {str(v): n for v, n in sorted(versions.items())},
            "failures": out.failures[:20],
            "failure_count": len(out.failures),
        }
    emit("diskfaults_migration", figures, capsys, tmp_path_factory.getbasetemp())
    for f in figures.values():
        assert f["failure_count"] == 0, f["failures"]


# -- a tiny disk --------------------------------------------------------------------------

FILLER = 768 * 1024


def test_a_full_disk_is_a_typed_error_and_recoverable(
    tmp_path: Path,
    vfs: FaultVFS,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    tmp_path_factory: Any,
) -> None:
    d = tmp_path / "tiny"
    with tiny_disk(d) as kind:
        path = str(d / "srt.db")
        if kind == "vfs-budget":
            vfs.arm(Plan(budget=TINY - FILLER))
            rt = srt.Runtime(store=SQLiteStore(path, vfs=VFS_NAME))
        else:
            (d / "filler").write_bytes(b"\0" * FILLER)  # freed later: the fault clears
            rt = srt.Runtime(path)
        s = rt.session("s")
        stored = 0
        error: BaseException | None = None
        for i in range(10_000):
            before = snapshot(path)
            try:
                s.append(*turn(f"full.{i}"))
            except BaseException as exc:
                error = exc
                break
            stored += 1
        assert error is not None, "the disk never filled"
        assert isinstance(error, srt.StoreError) and not isinstance(error, apsw.Error), error
        after_error = snapshot(path)
        rep = verify_store(path)
        # Free the space (or lift the budget): the same handle appends again.
        if kind == "vfs-budget":
            vfs.reset()
        else:
            os.remove(d / "filler")
        s.append(*turn("after"))
        rt.close()
        with srt.Runtime(path) as fresh:
            got = fresh.session("s").messages()
        want = [m for i in range(stored) for m in turn(f"full.{i}")] + [*turn("after")]
        final = verify_store(path)
    figures = {
        "disk": kind,
        "disk_bytes": TINY,
        "turns_stored_before_full": stored,
        "error": f"{type(error).__name__}: {error}",
        "rows_changed_by_the_failed_append": after_error != before,
        "integrity_after_error": rep.integrity,
        "integrity_after_recovery": final.integrity,
        "recovered": got == want,
    }
    emit("diskfaults_tiny_disk", figures, capsys, tmp_path_factory.getbasetemp())
    assert after_error == before  # no partial turn
    assert rep.ok and final.ok
    assert got == want
    assert "full" in str(error).lower()


# -- a read-only directory -----------------------------------------------------------------


@contextlib.contextmanager
def read_only(d: Path) -> Iterator[str]:
    """Make ``d`` read-only. Root ignores directory modes, so root bind-mounts it read-only."""
    if os.geteuid() != 0:
        d.chmod(0o555)
        try:
            yield "chmod 0555 (not root)"
        finally:
            d.chmod(0o700)
        return
    subprocess.run(["mount", "--bind", str(d), str(d)], check=True, capture_output=True)
    try:
        subprocess.run(
            ["mount", "-o", "remount,bind,ro", str(d), str(d)], check=True, capture_output=True
        )
        yield "read-only bind mount (root)"
    finally:
        subprocess.run(["umount", str(d)], check=True, capture_output=True)


def _listing(d: Path) -> dict[str, str]:
    return {p.name: sha256(p) for p in sorted(d.iterdir()) if p.is_file()}


def _attempt(path: str) -> tuple[str, list[dict[str, Any]] | None]:
    """Open ``path`` with srt, read session ``s``, try one append; describe what happened."""
    try:
        with srt.Runtime(path) as rt:
            msgs = rt.session("s", create=False).messages() if rt.sessions() else []
            try:
                rt.session("s").append({"role": "user", "content": "write attempt"})
            except srt.StoreError as exc:
                return f"read ok, write refused: {type(exc).__name__}: {exc}", msgs
            return "read and write ok", msgs
    except srt.StoreError as exc:
        return f"refused: {type(exc).__name__}: {exc}", None


def _search(path: str) -> str:
    """Search ``path`` with srt (the first search of a file builds the index)."""
    try:
        with srt.Runtime(path) as rt:
            hits = rt.store.search("hot")
    except srt.StoreError as exc:
        return f"refused: {type(exc).__name__}: {exc}"
    return f"{len(hits)} hits"


def test_a_read_only_directory(tmp_path: Path, capsys: Any, tmp_path_factory: Any) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o700)
    closed = ro / "closed.db"  # closed cleanly: no -wal, no -shm
    make_base(str(closed))
    hot = tmp_path / "hot.db"  # -wal and -shm left as by a crash
    rt = srt.Runtime(str(hot))
    rt.session("s").append(*turn("hot"))
    for suffix in ("", "-wal", "-shm"):
        shutil.copy2(f"{hot}{suffix}", ro / f"hot.db{suffix}")
    rt.store.build_search_index()  # and a copy searched before
    for suffix in ("", "-wal", "-shm"):
        shutil.copy2(f"{hot}{suffix}", ro / f"searched.db{suffix}")
    rt.close()
    want_closed = [m for i in range(4) for m in turn(f"base.{i}")]
    cases = {
        "existing database": (str(closed), want_closed),
        "existing database with -wal and -shm": (str(ro / "hot.db"), [*turn("hot")]),
        "new database": (str(ro / "new.db"), None),
        "new database in a new subdirectory": (str(ro / "sub" / "new.db"), None),
    }
    results: dict[str, str] = {}
    failures: list[str] = []
    before = _listing(ro)
    with read_only(ro) as how:
        for name, (path, want) in cases.items():
            try:
                what, got = _attempt(path)
            except BaseException as exc:
                what, got = f"UNTYPED {type(exc).__module__}.{type(exc).__name__}: {exc}", None
                failures.append(f"{name}: {what}")
            results[name] = what
            if "write ok" in what:
                failures.append(f"{name}: wrote into a read-only directory")
            if got is not None and want is not None and got != want:
                failures.append(f"{name}: read back wrong messages")
        # A first search cannot build the index here: a typed error, nothing written.
        # Where an earlier search built it, searching only reads.
        for name, path, want_search in (
            ("search, never searched", ro / "hot.db", "refused: StoreError: building"),
            ("search, searched before", ro / "searched.db", "2 hits"),  # turn("hot")
        ):
            try:
                what = _search(str(path))
            except BaseException as exc:
                what = f"UNTYPED {type(exc).__module__}.{type(exc).__name__}: {exc}"
            results[name] = what
            if not what.startswith(want_search):
                failures.append(f"{name}: {what}")
        after = _listing(ro)
    # A cleanly closed file there cannot be opened (SQLite must create its -shm): the
    # error says why, not only SQLite's "unable to open database file".
    if results["existing database"].startswith("refused") and (
        "folder writable" not in results["existing database"]
    ):
        failures.append(f"existing database: the refusal does not say why: {results}")
    if after != before:
        failures.append(f"files changed: {sorted(set(after.items()) ^ set(before.items()))}")
    figures = {"how": how, "results": results, "failures": failures}
    emit("diskfaults_read_only_dir", figures, capsys, tmp_path_factory.getbasetemp())
    assert failures == []


@pytest.mark.parametrize(
    "where",
    ["below a regular file", "in a new directory below a regular file", "name too long"],
)
def test_unusable_paths_are_typed_errors(tmp_path: Path, where: str) -> None:
    (tmp_path / "file").write_text("not a directory")
    path = {
        "below a regular file": tmp_path / "file" / "srt.db",
        "in a new directory below a regular file": tmp_path / "file" / "sub" / "srt.db",
        "name too long": tmp_path / ("x" * 300) / "srt.db",
    }[where]
    listing = sorted(os.listdir(tmp_path))
    with pytest.raises(srt.StoreError) as info:
        srt.Runtime(str(path))
    assert not isinstance(info.value, apsw.Error)
    assert str(info.value)
    assert sorted(os.listdir(tmp_path)) == listing
    assert (tmp_path / "file").read_text() == "not a directory"


_UNCONFIRMED_CHILD = """
import json, os, sys
import apsw
import srt
from rel_support.faultvfs import FaultVFS, Plan
from srt.store.sqlite import SQLiteStore
path, kind, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
vfs = FaultVFS("srt-rel-unconfirmed")
rt = srt.Runtime(store=SQLiteStore(path, vfs="srt-rel-unconfirmed", durability="full"))
s = rt.session("s")
s.append({"role": "user", "content": "base"})
vfs.arm(Plan())
s.append({"role": "user", "content": "dry"})
counts = {"write": vfs.counters.writes, "sync": vfs.counters.syncs}
vfs.arm(Plan(op=kind, k=k, error=apsw.IOError))
try:
    s.append({"role": "user", "content": "TOLD-FAILED"})
    error = None
except srt.SrtError as exc:
    error = str(exc)
print(json.dumps({"counts": counts, "fired": vfs.counters.fired, "error": error}), flush=True)
os._exit(0)  # no other write: as a crash or a kill right after the failed call
"""


def test_a_commit_the_disk_did_not_confirm_is_not_reported_as_a_plain_failure(
    tmp_path: Path,
) -> None:
    """``durability="full"``: a write or sync of the append fails, and the process ends
    at once. A turn that the reopened file holds (the WAL had it whole, and opening the
    file recovered it) was never reported as simply failed: the error said it may still
    be stored. It is there at most once, and the file verifies."""
    seen: Counter[str] = Counter()
    for kind in ("write", "sync"):
        k, total = 1, 1
        while k <= total:
            path = str(tmp_path / f"{kind}-{k}" / "srt.db")
            os.makedirs(os.path.dirname(path), mode=0o700)
            proc = subprocess.run(
                [sys.executable, "-c", _UNCONFIRMED_CHILD, path, kind, str(k)],
                capture_output=True,
                text=True,
                env=child_env(),
                timeout=60,
            )
            assert proc.returncode == 0, proc.stderr
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            total = got["counts"][kind]
            with srt.Runtime(path) as rt:
                texts = [m["content"] for m in rt.session("s").messages()]
                assert rt.store.verify().ok
            stored = texts.count("TOLD-FAILED")
            assert texts[:2] == ["base", "dry"] and stored <= 1, (kind, k, texts)
            error = got["error"]
            if stored and error is not None:
                assert "may still be stored" in error, (kind, k, error)
            seen[f"{kind}: {'stored' if stored else 'absent'}, {'error' if error else 'ok'}"] += 1
            k += 1
    assert any("stored, error" in case for case in seen), seen  # the case this is about
