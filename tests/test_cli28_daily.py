"""``srt`` as a new user lives with it for a day: what that turned up, each checked the
way a user meets it (``python -m srt`` in a child process against the local provider
server, or ``srt.cli.main`` on a real SQLite file).

- ``srt prompt`` interrupted (SIGINT) while waiting for the reply's first byte said
  "the partial reply is kept in session NAME" of a session it had just deleted.
- ``srt search --limit -1`` said "must be 0 or more" of an option that takes 1 or more.
- ``srt export --model M`` was accepted and ignored with jsonl and markdown, and so
  were ``srt search --drop-index``'s ``--limit``, ``--fts`` and ``--json`` and
  ``srt log --restore``'s ``--json``: usage errors now.
- ``srt serve --help`` listed the ``--upstream`` kinds without azure.
- ``srt serve`` on a port in use printed "srt gateway on http://..." and then uvicorn's
  own log line, and exited 3; now one ``srt: error:`` line, status 1, no banner.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import srt
from srt.cli import _serve
from srt.testing import ProviderServer
from support import InProcessCli as Cli
from support import cli_env

KEY = "sk-srt-cli28-test"


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    for var in ("SRT_DB", "SRT_PROVIDER", "SRT_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    c = Cli(str(tmp_path / "srt.db"), capsys, monkeypatch)
    assert c("append", "a", "--role", "user", "Where is my order?")[0] == 0
    return c


def test_prompt_interrupted_before_the_reply_began_says_the_session_was_left(
    tmp_path: Path,
) -> None:
    db = tmp_path / "p.db"
    env = cli_env(db, SRT_TEST_KEY=KEY)
    with ProviderServer(api_key=KEY) as srv:
        srv.fault("openai", "delay", seconds=60)  # (no byte of the reply before the signal)
        argv = ["--provider", "openai", "--base-url", srv.url + "/v1", "--key-env", "SRT_TEST_KEY"]
        p = subprocess.Popen(
            [sys.executable, "-m", "srt", "prompt", *argv, "--session", "s", "Write a novel."],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not srv.log and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.02)  # (until the request is in the server: then it waits)
        assert srv.log, "the request never reached the server"
        p.send_signal(signal.SIGINT)
        _out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "partial reply is kept" not in err, err
    assert err == "srt: interrupted before the reply began; the session was left as it was\n"
    with srt.Runtime(str(db)) as rt:
        assert [i.name for i in rt.sessions()] == []  # (the prompt made it; it is gone)


def test_search_limit_below_one_says_one_or_more(cli: Cli) -> None:
    for value in ("0", "-1"):
        with pytest.raises(SystemExit) as exc:
            cli("search", "order", "--limit", value)
        assert exc.value.code == 2
        err = cli.capsys.readouterr().err
        assert err.endswith(f"error: argument --limit: must be 1 or more, got {value}\n"), err


@pytest.mark.parametrize("fmt", ["jsonl", "markdown"])
def test_export_model_without_a_request_body_is_a_usage_error(cli: Cli, fmt: str) -> None:
    with pytest.raises(SystemExit) as exc:
        cli("export", "a", "--format", fmt, "--model", "gpt-4.1")
    assert exc.value.code == 2
    err = cli.capsys.readouterr().err
    assert err.endswith(
        f"srt export: error: --model names the model of a request body, and --format {fmt} "
        "has none\n"
    ), err
    code, out, _ = cli("export", "a", "--format", "openai.chat", "--model", "gpt-4.1")
    assert code == 0 and out.startswith('{"model":"gpt-4.1",'), out
    assert cli("export", "a")[:2] == (0, '{"role":"user","content":"Where is my order?"}\n')


def test_serve_help_lists_every_upstream_kind(cli: Cli) -> None:
    from srt.gateway.config import KINDS

    assert _serve.KINDS == KINDS
    with pytest.raises(SystemExit) as exc:
        cli("serve", "--help")
    assert exc.value.code == 0
    text = " ".join(cli.capsys.readouterr().out.split())
    assert f"one upstream of this kind ({', '.join(KINDS)})" in text, text


def test_serve_on_a_port_in_use_is_one_error_line_and_no_banner(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        argv = ["serve", "--upstream", "openai", "--open", "--port", str(port)]
        r = subprocess.run(
            [sys.executable, "-m", "srt", *argv],
            env=cli_env(tmp_path / "gw.db", OPENAI_API_KEY=KEY),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert (r.returncode, r.stdout) == (1, ""), r.stderr
    assert r.stderr == f"srt: error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("search", "--drop-index", "--json"), "--drop-index takes no --limit, --fts or --json"),
        (("search", "--drop-index", "--limit", "3"), "--drop-index takes no --limit"),
        (("search", "--drop-index", "--fts"), "--drop-index takes no --limit, --fts"),
        (("log", "a", "--restore", "k.1", "--json"), "--json prints the earlier heads, and"),
    ],
    ids=["drop-json", "drop-limit", "drop-fts", "restore-json"],
)
def test_an_option_the_command_would_ignore_is_a_usage_error(
    cli: Cli, args: tuple[str, ...], says: str
) -> None:
    """``srt search --drop-index --json`` printed text, and ``srt log --restore --json``
    printed its line: the option was accepted and ignored."""
    assert cli("search", "order")[0] == 0  # (an index to drop: the command would run)
    with pytest.raises(SystemExit) as exc:
        cli(*args)
    assert exc.value.code == 2
    err = cli.capsys.readouterr().err
    assert err.startswith("usage: srt") and says in err, err
    code, out, _ = cli("search", "order", "--limit", "1")  # (still there: nothing ran)
    assert code == 0 and "Where is my order?" in out, out
