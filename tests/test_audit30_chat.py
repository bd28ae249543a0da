"""audit30: ``srt chat`` left without a turn leaves no empty session behind, so ``srt chat
-c`` goes on with the last real conversation (``srt.cli._chat``)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import srt
from srt.testing import ProviderServer
from support import cli_env
from test_cli_chat import run as srt_cli

KEY = "sk-srt-audit30-chat"


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server


def test_a_chat_left_without_a_turn_keeps_no_session(srv: ProviderServer, tmp_path: Path) -> None:
    env = cli_env(tmp_path / "chat.db", SRT_TEST_KEY=KEY)
    chat = ["chat", "--provider", "openai", "--base-url", srv.url + "/v1"]
    chat += ["--key-env", "SRT_TEST_KEY"]
    with srt.Runtime(env["SRT_DB"]) as rt:
        rt.session("kept-empty")  # an empty session of the user's own: not the chat's to drop
    assert srt_cli(env, "append", "real", "--role", "user", "Hello?").returncode == 0
    # Ctrl-D (end of input) at once: a new session, one with a system prompt, one by name.
    for more in ([], ["--system", "Be brief."], ["--session", "typo"]):
        done = srt_cli(env, *chat, *more)
        assert done.returncode == 0, done.stderr
    assert srt_cli(env, *chat, "--session", "kept-empty").returncode == 0
    listed = srt_cli(env, "ls", "--json")
    assert sorted(s["name"] for s in json.loads(listed.stdout)) == ["kept-empty", "real"]
    # -c goes on with the conversation used last, not an empty chat.
    srv.script("openai", ["Hi."])
    again = srt_cli(env, *chat, "-c", stdin="Still there?\n")
    assert again.returncode == 0, again.stderr
    assert "session real (1 messages)" in again.stdout
    # A chat whose message got no reply keeps it (/retry asks again).
    srv.fault("openai", "status", code=401, message="Incorrect API key provided")
    failed = srt_cli(env, *chat, "--session", "asked", stdin="Anyone?\n")
    assert failed.returncode == 0 and "your message is kept" in failed.stdout
    with srt.Runtime(env["SRT_DB"]) as rt:
        assert [m["role"] for m in rt.session("real", create=False).messages()] == [
            "user",
            "user",
            "assistant",
        ]
        assert [m["content"] for m in rt.session("asked", create=False).messages()] == ["Anyone?"]


# -- chat30: /edit and /retry leave the conversation as a user expects --------------------


def chat_bytes(env: dict[str, str], srv: ProviderServer, stdin: bytes, *more: str) -> str:
    """``srt chat`` on piped stdin (no terminal); its stdout."""
    argv = ["chat", "--provider", "openai", "--base-url", srv.url + "/v1"]
    argv += ["--key-env", "SRT_TEST_KEY", *more]
    done = subprocess.run(
        [sys.executable, "-m", "srt", *argv], env=env, input=stdin, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.decode("utf-8", "replace")


def test_a_refused_edit_leaves_no_fork_behind(srv: ProviderServer, tmp_path: Path) -> None:
    env = cli_env(tmp_path / "chat.db", SRT_TEST_KEY=KEY)
    srv.script("openai", ["Blue."])
    # Not UTF-8 (read as a lone surrogate): the edit is refused by the store's checks.
    out = chat_bytes(env, srv, b"Name a colour.\n/edit Name a \xff colour.\n", "--session", "s")
    assert "error: " in out and "lone surrogate" in out, out
    assert "[edited" not in out
    with srt.Runtime(env["SRT_DB"]) as rt:
        assert [i.name for i in rt.sessions()] == ["s"]  # (before: "s~1" was left behind)
        assert [m["content"] for m in rt.session("s", create=False).messages()] == [
            "Name a colour.",
            "Blue.",
        ]
    # A good edit after it still keeps the previous version, as s~1.
    srv.script("openai", ["Red."])
    out = chat_bytes(env, srv, b"/edit Name a warm colour.\n", "--session", "s")
    assert "[edited; the previous version is kept as session s~1]" in out, out
    with srt.Runtime(env["SRT_DB"]) as rt:
        assert [i.name for i in rt.sessions()] == ["s", "s~1"]
        assert [m["content"] for m in rt.session("s", create=False).messages()] == [
            "Name a warm colour.",
            "Red.",
        ]


def test_retry_after_a_complete_reply_replaces_it(srv: ProviderServer, tmp_path: Path) -> None:
    env = cli_env(tmp_path / "chat.db", SRT_TEST_KEY=KEY)
    srv.script("openai", ["Blue.", "Green."])
    out = chat_bytes(env, srv, b"Name a colour.\n/retry\n", "--session", "s")
    # The model was asked the question again, not for a second reply after its first.
    assert srv.log[-1].body["messages"] == [{"role": "user", "content": "Name a colour."}]
    assert "Blue.\n" in out and "[the last reply is replaced; it stays in srt log]" in out
    assert "Green.\n" in out
    with srt.Runtime(env["SRT_DB"]) as rt:
        s = rt.session("s", create=False)
        assert s.messages() == [  # (before: user, "Blue.", "Green.")
            {"role": "user", "content": "Name a colour."},
            {"role": "assistant", "content": "Green."},
        ]
        # the replaced reply stays among the session's earlier heads
        (earlier,) = s.history()
        assert (earlier.action, earlier.messages) == ("rewind", 2)
        rows = rt.store.chain(earlier.head)
        assert [json.loads(r[2])["content"] for r in rows] == ["Name a colour.", "Blue."]
