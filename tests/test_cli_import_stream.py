"""``srt import`` of JSON lines, streamed: a batch at a time into a scratch session
renamed at the end (``srt.cli._import_file``).

In-process runs go through ``srt.cli.main`` on a real SQLite file and a real
PostgreSQL schema, with batches made small so a few MB of input takes many; the kill
test runs ``python -m srt`` fed through a pipe and SIGKILLs it mid-import.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import srt
from rel_support.waits import WAIT_S
from srt.bench.workloads import chat
from srt.cli import _import_file
from support import InProcessCli as Cli

SMALL_BATCH = 64 << 10


@pytest.fixture
def cli(store_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    for var in ("SRT_DB", "SRT_PROVIDER", "SRT_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(_import_file, "BATCH_BYTES", SMALL_BATCH)
    c = Cli(store_url, capsys, monkeypatch)
    assert c("append", "a", "--role", "user", "Where is my order?")[0] == 0
    return c


def _messages(turns: int, seed: int = 3) -> list[dict[str, Any]]:
    system, pairs = chat(turns, seed=seed, system_chars=2000)
    return [system, *(m for pair in pairs for m in pair)]


def _jsonl(messages: list[dict[str, Any]]) -> bytes:
    return b"".join(
        json.dumps(m, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for m in messages
    )


def _stored(db: str, name: str) -> list[bytes]:
    with srt.Runtime(db) as rt:
        return rt.session(name, create=False).messages_bytes()


def test_a_few_megabytes_import_as_one_append_of_them_all_would(cli: Cli, tmp_path: Path) -> None:
    messages = _messages(1500)  # about 3.4 MB: some fifty batches
    data = _jsonl(messages)
    assert len(data) > 40 * SMALL_BATCH
    with srt.Runtime(cli.db) as rt:  # what srt import did: one append of every message
        rt.session("whole").append(*messages)
    path = tmp_path / "big.jsonl"
    path.write_bytes(data)
    assert cli("import", str(path)) == (0, f"big: {len(messages)} messages\n", "")
    assert _stored(cli.db, "big") == _stored(cli.db, "whole")
    assert b"".join(b + b"\n" for b in _stored(cli.db, "big")) == data
    assert cli.names() == ["a", "big", "whole"]  # no scratch session left


def test_stdin_is_streamed_the_same(cli: Cli) -> None:
    messages = _messages(400)
    got = cli("import", "-", "--name", "piped", stdin=_jsonl(messages))
    assert got == (0, f"piped: {len(messages)} messages\n", "")
    assert [json.loads(b) for b in _stored(cli.db, "piped")] == messages


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (b'{"role":"assistant","content":"cut', "the file is neither JSON nor JSON lines: line"),
        (b'{"role":"wizard","content":"hi"}', "unknown role 'wizard'"),
        (b"\xff\xfe", "the file is not UTF-8 (byte"),
    ],
)
def test_a_bad_line_after_many_batches_names_its_line_and_creates_nothing(
    cli: Cli, tmp_path: Path, bad: bytes, says: str
) -> None:
    good = _jsonl(_messages(800))
    number = good.count(b"\n") + 1
    path = tmp_path / "t.jsonl"
    path.write_bytes(good + bad + b"\n" + _jsonl(_messages(5, seed=4)))
    code, out, err = cli("import", str(path))
    assert (code, out) == (1, ""), err
    assert err.startswith("srt: error: ") and err.count("\n") == 1, err
    assert says in err, err
    if says.startswith("the file is not"):  # (the byte where the line starts, and on)
        assert f"(byte {len(good)})" in err, err
    else:
        assert f"line {number}" in err, err
    assert cli.names() == ["a"]  # neither the name nor the scratch session


def test_an_existing_name_is_refused_and_leaves_nothing(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(_jsonl(_messages(300)))
    code, _out, err = cli("import", str(path))
    assert code == 1
    assert err == (
        "srt: error: a session named 'a' already exists; pick another name with --name\n"
    )
    assert cli.names() == ["a"]
    assert len(_stored(cli.db, "a")) == 1


def test_an_invalid_message_on_a_line_names_the_line(cli: Cli, tmp_path: Path) -> None:
    # Each line's message was refused without saying which line: in a file of a
    # hundred thousand lines, that left the reader to search.
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'{"role":"user","content":"x"}\n\n{"role":"user","content":[1]}\n')
    code, _out, err = cli("import", str(path))
    assert code == 1 and err.startswith("srt: error: line 3: "), err
    assert cli.names() == ["a"]


def _sessions(db: Path) -> dict[str, int]:
    if not db.exists():
        return {}
    with srt.Runtime(str(db)) as rt:
        return {s.name: s.messages for s in rt.sessions()}


def test_a_kill_mid_import_leaves_no_part_of_it_under_its_name(tmp_path: Path) -> None:
    db = tmp_path / "srt.db"
    data = _jsonl(_messages(6000))  # about 13 MB: three batches of 4 MiB, and more
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SRT_", "OPENAI_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "srt", "--db", str(db), "import", "-", "--name", "t"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None
    try:
        proc.stdin.write(data[: len(data) * 3 // 4])
        proc.stdin.flush()
        # The pipe stays open, so the import is mid-file for certain: wait for its
        # batches to be committed (it wrote nothing before the end of its input before).
        deadline = time.monotonic() + 120
        while not any(n.startswith("srt-import-") and d for n, d in _sessions(db).items()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the import committed no batch"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=WAIT_S)
    left = _sessions(db)
    assert "t" not in left
    (scratch,) = left
    assert scratch.startswith("srt-import-") and scratch.endswith("-t")
    assert 0 < left[scratch] < len(_messages(6000))
    # The store is sound, and the same import run to the end takes the name.
    run = subprocess.run(
        [sys.executable, "-m", "srt", "--db", str(db), "import", "-", "--name", "t"],
        input=data,
        capture_output=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert (run.returncode, run.stderr) == (0, b""), run
    assert _sessions(db)["t"] == data.count(b"\n")
    verify = subprocess.run(
        [sys.executable, "-m", "srt", "--db", str(db), "verify"],
        capture_output=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert verify.returncode == 0, verify
