"""``srt import`` of JSON lines refuses a line over ``MESSAGE_TEXT`` bytes once that
many are read (``srt.cli._import_file._rest``), not after reading all of it: a typed
error names the line and the bound, and nothing is imported (neither the name nor the
scratch session), wherever the line is (the first, long enough not to be read to tell
the format; after a value that makes the input JSON lines; after batches already
written). The bound is made 64 KiB here (it is 128 MiB) and the batches 16 KiB.

In-process runs go through ``srt.cli.main`` on a real SQLite file and a real
PostgreSQL schema (``store_url``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import srt
from srt.cli import _import_file
from support import InProcessCli as Cli

BOUND = 64 << 10


@pytest.fixture
def cli(store_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    for var in ("SRT_DB", "SRT_PROVIDER", "SRT_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(_import_file, "MESSAGE_TEXT", BOUND)
    monkeypatch.setattr(_import_file, "BATCH_BYTES", 16 << 10)
    c = Cli(store_url, capsys, monkeypatch)
    assert c("append", "a", "--role", "user", "Where is my order?")[0] == 0
    return c


def _line(message: Any) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def _sized(size: int) -> bytes:
    """A user message's line of exactly ``size`` bytes, its ``\\n`` not counted."""
    pad = size - len(_line({"role": "user", "content": ""})) + 1
    line = _line({"role": "user", "content": "x" * pad})
    assert len(line) == size + 1
    return line


def _short(n: int) -> bytes:
    return b"".join(_line({"role": "user", "content": f"question {i}"}) for i in range(n))


def _refused(cli: Cli, path: Path, number: int) -> str:
    before = cli.names()
    code, out, err = cli("import", str(path), "--name", "big")
    assert (code, out) == (1, ""), err
    assert err.startswith("srt: error: ") and err.count("\n") == 1, err
    assert f"line {number} of {path} is over {BOUND} bytes" in err, err
    assert cli.names() == before  # neither the name nor the scratch session
    return err


def test_a_long_line_after_batches_already_written_is_refused_and_nothing_imported(
    cli: Cli, tmp_path: Path
) -> None:
    good = _short(3000)  # (some 90 KB: batches written before the long line)
    path = tmp_path / "t.jsonl"
    path.write_bytes(good + _sized(BOUND + 1) + _short(3))
    _refused(cli, path, 3001)


def test_a_long_first_line_followed_by_lines_is_refused(cli: Cli, tmp_path: Path) -> None:
    """The case the bound was missing: a first line longer than a batch (so not read to
    tell the format) followed by more lines; read as one document it is no better."""
    path = tmp_path / "t.jsonl"
    path.write_bytes(_sized(4 * BOUND) + _short(3))
    err = _refused(cli, path, 1)
    assert "read as one JSON document" in err, err


def test_a_long_list_of_messages_on_the_first_line_is_refused(cli: Cli, tmp_path: Path) -> None:
    messages = [{"role": "user", "content": f"question {i}"} for i in range(6000)]
    path = tmp_path / "t.jsonl"
    path.write_bytes(_line(messages) + _short(3))
    _refused(cli, path, 1)


def test_a_long_line_after_a_value_is_refused(cli: Cli, tmp_path: Path) -> None:
    """A first line that is JSON but no message, then another: JSON lines, so the
    second is read as a line (it was read whole to tell the format)."""
    path = tmp_path / "t.jsonl"
    path.write_bytes(_line({"model": "m"}) + _sized(2 * BOUND) + _short(3))
    _refused(cli, path, 2)


def test_a_long_line_on_stdin_is_refused(cli: Cli) -> None:
    code, out, err = cli("import", "-", "--name", "big", stdin=_short(5) + _sized(3 * BOUND))
    assert (code, out) == (1, ""), err
    assert f"line 6 of stdin is over {BOUND} bytes" in err, err
    assert cli.names() == ["a"]


@pytest.mark.parametrize("last", [True, False])
def test_a_line_of_exactly_the_bound_is_imported(cli: Cli, tmp_path: Path, last: bool) -> None:
    line = _sized(BOUND)
    path = tmp_path / "t.jsonl"
    path.write_bytes(_short(2) + (line[:-1] if last else line + _short(1)))
    code, out, err = cli("import", str(path), "--name", "edge")
    assert (code, out, err) == (0, f"edge: {3 if last else 4} messages\n", "")
    with srt.Runtime(cli.db) as rt:
        assert rt.session("edge", create=False).messages()[2] == json.loads(line)
    path.write_bytes(_short(2) + _sized(BOUND + 1)[:-1])  # (one byte more, no newline)
    _refused(cli, path, 3)
