"""``srt`` against bad input: every failure is one typed ``srt: error:`` line on stderr
with status 1 (2 for usage errors), no traceback, and the store is left as it was
(``srt verify`` passes and the sessions are unchanged).

The commands run in this process through ``srt.cli.main`` (an exception escaping it
fails the test), against real SQLite files in ``tmp_path``; provider calls go over
loopback to ``srt.testing.ProviderServer``.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import srt
from srt.cli import main
from srt.testing import ProviderServer

KEY = "sk-srt-hostile-test-key"


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Srt:
    db: Path
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch

    def __call__(self, *args: str, stdin: bytes = b"") -> Result:
        self.capsys.readouterr()
        stream = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
        self.monkeypatch.setattr(sys, "stdin", stream)
        try:
            code = main(["--db", str(self.db), *args])
        except SystemExit as exc:  # argparse's usage errors
            code = int(exc.code or 0)
        got = self.capsys.readouterr()
        return Result(code, got.out, got.err)

    def ok(self, *args: str, stdin: bytes = b"") -> str:
        r = self(*args, stdin=stdin)
        assert r.code == 0 and "error" not in r.err, r  # (search may say it builds its index)
        return r.out

    def fails(self, *args: str, code: int = 1, stdin: bytes = b"") -> str:
        """Run a command that must fail with one ``srt: error:`` line; return it."""
        r = self(*args, stdin=stdin)
        assert r.code == code, r
        assert r.out == "", r
        if code == 1:
            assert r.err.startswith("srt: error: ") and r.err.count("\n") == 1, r
        return r.err

    def state(self) -> list[tuple[str, list[dict[str, object]]]]:
        """Every session and its messages (to show that a failure changed nothing)."""
        with srt.Runtime(str(self.db)) as rt:
            return [(i.name, rt.session(i.name).messages()) for i in rt.sessions()]

    def verified(self) -> None:
        assert self.ok("verify").startswith("ok: ")


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Srt:
    for var in ("SRT_DB", "SRT_PROVIDER", "SRT_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    c = Srt(tmp_path / "srt.db", capsys, monkeypatch)
    c.ok("append", "a", "--role", "user", "Where is my order?")
    c.ok("append", "a", "--role", "assistant", "It shipped.")
    return c


@pytest.fixture
def server(cli: Srt, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as srv:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", srv.url + "/v1")
        yield srv


# -- search -------------------------------------------------------------------------------


def test_search_limit_beyond_any_integer_column_finds_everything(cli: Srt) -> None:
    # SQLite's LIMIT takes 64 bits; the limit used to reach it unchecked (OverflowError).
    found = cli.ok("search", "--limit", str(10**30), "--json", "order")
    assert [h["places"] for h in json.loads(found)] == [[["a", 1]]]


def test_search_text_with_a_lone_surrogate_is_refused(cli: Srt) -> None:
    # What Python makes of a command-line argument whose bytes are not UTF-8.
    err = cli.fails("search", "ord\udcffer")
    assert "valid Unicode text" in err
    assert "order" in cli.ok("search", "order")


# -- history retention ---------------------------------------------------------------------


def test_history_retention_past_100_years_is_a_usage_error(cli: Srt) -> None:
    # It used to be stored, and every later `srt log` failed on the date (OverflowError).
    err = cli.fails("gc", "--history-retention", "9" * 30 + "d", code=2)
    assert "longer than 100 years" in err
    cli.ok("rewind", "a")
    assert "KEPT UNTIL" in cli.ok("log", "a")


def test_log_shows_a_retention_set_beyond_any_date_as_never(cli: Srt) -> None:
    with srt.Runtime(str(cli.db)) as rt:
        rt.set_history_retention(1e30)  # the API takes any finite number of seconds
        rt.session("a").rewind(1)
    row = cli.ok("log", "a").splitlines()[-1]
    assert "  never  " in row and "rewind" in row
