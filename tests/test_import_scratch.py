"""A killed ``srt import`` leaves its scratch session; a later ``srt import`` or ``srt
gc`` deletes it when its owner is provably dead on this host, never a live import's
and never one recorded on another host. Real child processes, really SIGKILLed."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import srt
from rel_support.waits import WAIT_S
from srt.bench.workloads import chat
from srt.cli._scratch import KEY, OWNER, PENDING, SCRATCH

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("SRT_", "OPENAI_"))}


def _data(seed: int) -> bytes:
    system, pairs = chat(6000, seed=seed, system_chars=2000)  # about 13 MB: batches of 4 MiB
    return b"".join(
        json.dumps(m, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        for m in [system, *(m for pair in pairs for m in pair)]
    )


def _sessions(url: str) -> dict[str, int]:
    with srt.Runtime(url) as rt:
        return {s.name: s.messages for s in rt.sessions()}


def _srt(url: str, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "srt", "--db", url, *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, env=ENV, check=False, timeout=300)


@contextmanager
def _importing(url: str, name: str, data: bytes) -> Iterator[subprocess.Popen[bytes]]:
    """An import of ``name`` stopped mid-file (its stdin open) once it committed a batch."""
    before = set(_sessions(url))
    proc = subprocess.Popen(
        [sys.executable, "-m", "srt", "--db", url, "import", "-", "--name", name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    assert proc.stdin is not None
    try:
        proc.stdin.write(data[: len(data) * 3 // 4])
        proc.stdin.flush()
        deadline = time.monotonic() + 120
        while not any(
            n.startswith(SCRATCH) and n.endswith(f"-{name}") and d and n not in before
            for n, d in _sessions(url).items()
        ):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the import committed no batch"
            time.sleep(0.05)
        yield proc
    finally:
        if proc.returncode is None:  # (not read to its end by the test)
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=WAIT_S)


def _scratch(url: str, name: str) -> str:
    (found,) = [n for n in _sessions(url) if n.startswith(SCRATCH) and n.endswith(f"-{name}")]
    return found


def test_gc_deletes_a_killed_imports_scratch_session_and_not_a_live_ones(store_url: str) -> None:
    live_data = _data(4)
    with _importing(store_url, "live", live_data) as live:
        live_scratch = _scratch(store_url, "live")
        with _importing(store_url, "dead", _data(3)) as dead:
            dead.send_signal(signal.SIGKILL)
        killed = _scratch(store_url, "dead")
        assert live_scratch in _sessions(store_url)  # (the second import left it: alive)
        dry = _srt(store_url, "gc", "--dry-run")
        assert dry.returncode == 0, dry
        assert b"would remove 1 scratch session of an srt import killed on this host" in dry.stdout
        assert killed in _sessions(store_url)
        run = _srt(store_url, "gc")
        assert run.returncode == 0, run
        assert b"removed 1 scratch session of an srt import killed on this host" in run.stdout
        left = _sessions(store_url)
        assert killed not in left and live_scratch in left  # (the live import's stays)
        out, err = live.communicate(live_data[len(live_data) * 3 // 4 :], timeout=WAIT_S)
        assert (live.returncode, err) == (0, b""), (out, err)
    assert _sessions(store_url) == {"live": live_data.count(b"\n")}
    with srt.Runtime(store_url) as rt:  # the imported session carries no owner record
        assert list(rt.store.scan_objects(kind=PENDING)) == []
        assert list(rt.store.scan_objects(kind=OWNER)) == []
    assert _srt(store_url, "verify").returncode == 0


def test_an_import_deletes_a_dead_scratch_session_of_this_host_only(store_url: str) -> None:
    data = _data(5)
    with _importing(store_url, "elsewhere", data) as proc:
        proc.send_signal(signal.SIGKILL)
    elsewhere = _scratch(store_url, "elsewhere")
    with srt.Runtime(store_url) as rt:  # its owner ran on another host
        got = rt.store.get_object(PENDING, elsewhere, KEY)
        assert got is not None
        value = {**json.loads(got.value), "host": "another-host"}
        rt.store.put_object(PENDING, elsewhere, KEY, json.dumps(value).encode())
    with _importing(store_url, "here", data) as proc:
        proc.send_signal(signal.SIGKILL)
    here = _scratch(store_url, "here")
    assert elsewhere in _sessions(store_url)  # (the import of "here" left it)
    run = _srt(store_url, "import", "-", "--name", "here", stdin=data)
    assert (run.returncode, run.stderr) == (0, b""), run
    left = _sessions(store_url)
    assert here not in left and elsewhere in left
    assert left["here"] == data.count(b"\n")


#: A child ``srt import`` that stops (waits on a pipe) right after its scratch session is
#: created, before anything else of the import: ``python -c _STOPPED URL NAME FILE``.
_STOPPED = """
import sys
from srt.cli import main
from srt.cli._scratch import SCRATCH

def stopping(cls):
    create = cls.create_session
    def created(self, name, *args, **kwargs):
        row = create(self, name, *args, **kwargs)
        if name.startswith(SCRATCH):
            print("created", flush=True)
            sys.stdin.readline()  # (stopped here until killed)
        return row
    cls.create_session = created

from srt.store.sqlite import SQLiteStore
from srt.store.postgres import PostgresStore
stopping(SQLiteStore)
stopping(PostgresStore)
sys.exit(main(["--db", sys.argv[1], "import", sys.argv[3], "--name", sys.argv[2]]))
"""


def test_an_import_killed_just_after_creating_its_scratch_session_is_reaped(
    store_url: str, tmp_path: Path
) -> None:
    """Killed between the scratch session's creation and anything after it: while the
    import lives, neither gc nor another import touches its scratch session; once it is
    SIGKILLed there, ``srt gc`` removes it."""
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"role": "user", "content": "hello"}\n')
    proc = subprocess.Popen(
        [sys.executable, "-c", _STOPPED, store_url, "stopped", str(source)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        said, _, _ = select.select([proc.stdout], [], [], WAIT_S)
        assert said, f"the import said nothing within {WAIT_S:.0f} s"
        assert proc.stdout.readline() == b"created\n", proc.communicate()
        scratch = _scratch(store_url, "stopped")
        # alive: left alone by gc and by another import (which reaps first)
        run = _srt(store_url, "gc")
        assert run.returncode == 0, run
        other = _srt(store_url, "import", "-", "--name", "other", stdin=source.read_bytes())
        assert (other.returncode, other.stderr) == (0, b""), other
        assert scratch in _sessions(store_url)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=WAIT_S)
    dry = _srt(store_url, "gc", "--dry-run")
    assert b"would remove 1 scratch session of an srt import killed" in dry.stdout, dry
    run = _srt(store_url, "gc")
    assert b"removed 1 scratch session of an srt import killed on this host" in run.stdout, run
    assert _sessions(store_url) == {"other": 1}
    assert _srt(store_url, "verify").returncode == 0


def test_a_scratch_session_an_earlier_srt_recorded_under_its_id_is_still_reaped(
    store_url: str,
) -> None:
    """An srt before the records by name filed its record under the session's id
    (``OWNER``): a scratch session it left is reaped as before."""
    data = _data(6)
    with _importing(store_url, "old", data) as proc:
        proc.send_signal(signal.SIGKILL)
    scratch = _scratch(store_url, "old")
    with srt.Runtime(store_url) as rt:  # the record as that srt filed it
        got = rt.store.get_object(PENDING, scratch, KEY)
        row = rt.store.get_session(scratch)
        assert got is not None and row is not None
        rt.store.put_object(OWNER, str(row.id), KEY, got.value)
        rt.store.delete_object(PENDING, scratch, KEY)
    run = _srt(store_url, "gc")
    assert b"removed 1 scratch session of an srt import killed on this host" in run.stdout, run
    assert scratch not in _sessions(store_url)
    with srt.Runtime(store_url) as rt:
        assert list(rt.store.scan_objects(kind=OWNER)) == []
