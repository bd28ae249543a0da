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
import os
import subprocess
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


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ('"where', 'a double quote (") is never closed'),
        ("where AND", "it ends too soon"),
        ("OR order", '"OR" is out of place'),
        ("where:order", "filters on a column 'where'"),
    ],
)
def test_an_fts_query_fts5_cannot_read_says_what_is_wrong(cli: Srt, query: str, says: str) -> None:
    # These were "srt: error: searching: SQLError: unterminated string" and the like
    # (StoreError; a column filter even a CorruptionError telling to run srt verify).
    err = cli.fails("search", "--fts", query)
    assert err.startswith("srt: error: the search text is not a valid FTS5 query: ")
    assert says in err and "SQLError" not in err and "verify" not in err
    assert "order" in cli.ok("search", "--fts", "where OR nothing")


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


# -- srt prompt: nothing half-written, no secret shown ---------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--model", "gpt\udcff"],  # refused by the wire format, after the message was stored
        ["--base-url", "http://[::1"],  # httpx.InvalidURL escaped as a traceback
        ["--base-url", "http://\udcff/v1"],
        ["--base-url", "http://"],
    ],
    ids=["model-surrogate", "base-url-bracket", "base-url-surrogate", "base-url-no-host"],
)
def test_a_prompt_refused_before_any_reply_leaves_the_session_as_it_was(
    cli: Srt, server: ProviderServer, args: list[str]
) -> None:
    before = cli.state()
    cli.fails("prompt", "--session", "a", *args, "Is it here yet?")
    cli.fails("prompt", "--session", "new", *args, "Is it here yet?")
    assert cli.state() == before
    cli.verified()


def test_a_system_prompt_with_a_lone_surrogate_creates_no_session(
    cli: Srt, server: ProviderServer
) -> None:
    before = cli.state()
    err = cli.fails("prompt", "--session", "new", "--system", "be \udcff terse", "hi")
    assert "lone surrogate" in err
    assert cli.state() == before and server.requests.total() == 0


@pytest.mark.parametrize("bad", ["sk-unicod\u00e9-key", "sk-key\r\nx-injected: 1"])
@pytest.mark.parametrize(
    ("provider", "env", "extra"),
    [
        ("openai", "OPENAI_API_KEY", []),
        ("anthropic", "ANTHROPIC_API_KEY", []),
        ("azure", "AZURE_OPENAI_API_KEY", ["--model", "dep"]),
        ("bedrock", "AWS_BEARER_TOKEN_BEDROCK", ["--region", "us-east-1"]),
    ],
)
def test_a_key_no_http_header_can_carry_is_a_typed_error_that_does_not_show_it(
    cli: Srt,
    server: ProviderServer,
    monkeypatch: pytest.MonkeyPatch,
    bad: str,
    provider: str,
    env: str,
    extra: list[str],
) -> None:
    # A non-ASCII key was a UnicodeEncodeError traceback from the HTTP layer.
    monkeypatch.setenv(env, bad)
    base = ["--base-url", server.url + ("" if provider == "anthropic" else "/v1")]
    err = cli.fails("prompt", "--provider", provider, *base, *extra, "--session", "a", "hi")
    assert "API key holds a character an HTTP header cannot carry" in err
    assert "unicod" not in err and "sk-key" not in err
    assert cli.state()[0][1][-1]["content"] == "It shipped."


def test_a_password_in_the_base_url_is_neither_shown_nor_stored(cli: Srt) -> None:
    # The transport's error text carried the URL whole, and the ledger stored that text.
    secret = "pw-hostile-0451"
    url = f"http://user:{secret}@127.0.0.1:1/v1"
    cli.monkeypatch.setenv("OPENAI_API_KEY", KEY)
    err = cli.fails("prompt", "--base-url", url, "--session", "a", "hi")
    assert "http://127.0.0.1:1/v1/chat/completions" in err and secret not in err
    with srt.Runtime(str(cli.db)) as rt:
        (row,) = rt.calls()
        assert row["status"] == "error" and secret not in repr(row)
    for path in cli.db.parent.iterdir():
        if path.name.startswith(cli.db.name):
            assert secret.encode() not in path.read_bytes()


# -- empty option values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["prompt", "--session", "", "hi"],  # was a new session prompt-DATE-TIME
        ["prompt", "--session", "a", "--model", "", "hi"],  # was the default model
        ["prompt", "--session", "a", "--base-url", "", "hi"],  # was $OPENAI_BASE_URL
        ["export", "a", "--format", "openai.chat", "--model", ""],  # was gpt-4o-mini
        ["import", "FILE", "--name", ""],  # was the file's name
        ["log", "a", "--restore", ""],
        ["stats", "--tenant", ""],
        ["prompt", "--session", "a", "--system", "", "hi"],  # was an empty system message
    ],
    ids=[
        "session",
        "model",
        "base-url",
        "export-model",
        "import-name",
        "restore",
        "tenant",
        "system",
    ],
)
def test_an_empty_option_value_is_a_usage_error_not_a_default(
    cli: Srt, server: ProviderServer, tmp_path: Path, args: list[str]
) -> None:
    (tmp_path / "x.jsonl").write_text('{"role":"user","content":"hi"}\n')
    args = [str(tmp_path / "x.jsonl") if a == "FILE" else a for a in args]
    before = cli.state()
    err = cli.fails(*args, code=2)
    assert "must not be empty" in err
    assert cli.state() == before and server.requests.total() == 0


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["show", "a", "--replaced", "--json"], "--json: not allowed with argument --replaced"),
        (["show", "a", "--tree", "--replaced"], "--replaced: not allowed with argument --tree"),
        (["stats", "a", "--tenant", "t"], "--tenant: not allowed with argument NAME"),
        (["stats", "--all", "--tenant", "t"], "--tenant: not allowed with argument --all"),
    ],
    ids=["show-json", "show-tree", "stats-name", "stats-all"],
)
def test_options_that_cannot_go_together_are_a_usage_error(
    cli: Srt, args: list[str], says: str
) -> None:
    # Each of these ran, silently leaving out one of the two: --replaced (the JSON is the
    # messages as stored; a tree has no compaction summaries) or NAME and --all (only the
    # tenant's requests were summed).
    err = cli.fails(*args, code=2)
    assert err.strip().splitlines()[-1] == f"srt {args[0]}: error: argument {says}"
    assert cli.ok(*args[:2])  # each option alone still works


# -- srt copy of an encrypted store ------------------------------------------------------


def test_copy_opens_an_encrypted_store_with_key_file_and_keeps_the_copy_encrypted(
    mc_site: Path, tmp_path: Path
) -> None:
    # --key-file was ignored by copy: an encrypted SRC could not be copied at all, and
    # the error said to use --key-file.
    env = {k: v for k, v in os.environ.items() if k != "SRT_DB"}
    env["PYTHONPATH"] = str(mc_site)
    keys, data = tmp_path / "keys", tmp_path / "data"
    keys.mkdir(mode=0o700)
    data.mkdir(mode=0o700)
    key = keys / "key"
    key.write_text("a passphrase for the copy\n")
    key.chmod(0o600)
    src, dest = str(data / "src.db"), str(data / "dest.db")

    def srt_(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "srt", *args]
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)

    marker = "copied under the key 7731"
    made = srt_("--db", src, "--key-file", str(key), "append", "s", "--role", "user", marker)
    assert made.returncode == 0, made.stderr
    refused = srt_("copy", src, dest)
    assert refused.returncode == 1 and "encrypted" in refused.stderr
    assert not os.path.exists(dest)
    done = srt_("--key-file", str(key), "copy", src, dest)
    assert done.returncode == 0 and "verified by hashes" in done.stdout, done.stderr
    shown = srt_("--db", dest, "--key-file", str(key), "show", "s")
    assert shown.stdout == f"user: {marker}\n", shown.stderr
    assert marker.encode() not in Path(dest).read_bytes()
    assert srt_("--db", dest, "show", "s").returncode == 1  # no key: refused


def test_append_a_tool_result_with_its_call_id(cli: Srt) -> None:
    # The docs list `tool` among append's roles, but no option gave the tool_call_id a
    # tool message needs, so `--role tool` always failed.
    before = cli.state()
    assert "needs --tool-call-id" in cli.fails("append", "a", "--role", "tool", "42")
    assert "needs --tool-call-id" in cli.fails(
        "append", "a", "--role", "user", "--tool-call-id", "call_1", "42"
    )
    assert cli.state() == before
    assert cli.ok("append", "a", "--role", "tool", "--tool-call-id", "call_1", "42") == "3\n"
    last = json.loads(cli.ok("show", "a", "--json"))[-1]
    assert last == {"role": "tool", "content": "42", "tool_call_id": "call_1"}
