"""The CLI cases of issue 14 (item 6), each driven through the ``srt`` console script
that pip installed next to this Python (``python -m srt.bench`` for the bench), in
subprocesses, against srt's local provider server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

import srt
from srt.cli._sessions import STAND_INS
from srt.testing import ProviderServer
from srt.wire import FORMATS
from support import cli_env
from test_cli_chat import Pty

SRT = Path(sys.executable).parent / "srt"  # the console script of this venv
KEY = "sk-console-key"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path / "srt.db", drop=("NO_COLOR",), SRT_TEST_KEY=KEY)


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server


def srt_cmd(
    env: dict[str, str], *args: str, stdin: bytes = b"", cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    assert SRT.is_file(), f"no console script at {SRT}: pip install -e '.[test]'"
    return subprocess.run(
        [str(SRT), *args], env=env, input=stdin, capture_output=True, timeout=120, cwd=cwd
    )


def ok(env: dict[str, str], *args: str, stdin: bytes = b"") -> str:
    r = srt_cmd(env, *args, stdin=stdin)
    assert (r.returncode, r.stderr) == (0, b""), r
    return r.stdout.decode("utf-8")


def provider_args(srv: ProviderServer | str) -> list[str]:
    url = srv if isinstance(srv, str) else srv.url + "/v1"
    return ["--provider", "openai", "--base-url", url, "--key-env", "SRT_TEST_KEY"]


def test_no_color_turns_the_dim_lines_off(srv: ProviderServer, env: dict[str, str]) -> None:
    shown = {}
    for no_color in ("", "1"):
        run_env = {**env, "NO_COLOR": no_color} if no_color else env
        srv.script("openai", ["Hi there."])
        chat = Pty([str(SRT), "chat", *provider_args(srv), "--session", f"c{no_color}"], run_env)
        try:
            chat.expect(r"\n> $")
            chat.ask("hello")
            chat.expect(r"Hi there\.\n\[.* out\]\n> $")
            chat.ctrl_d()
            assert chat.wait() == 0
        finally:
            chat.close()
        shown[no_color] = chat.raw
    assert b"\x1b[2m[" in shown[""]  # a terminal gets the dim status line
    assert b"\x1b[2m" not in shown["1"] and b"\x1b[0m" not in shown["1"]


def test_export_defaults_to_jsonl_and_import_refuses_empty_input(
    env: dict[str, str], tmp_path: Path
) -> None:
    ok(env, "append", "s", "--role", "user", "Where is my order?")
    ok(env, "append", "s", "--role", "assistant", "It shipped.")
    out = tmp_path / "s.jsonl"
    with out.open("wb") as f:  # srt export s > s.jsonl
        r = subprocess.run([str(SRT), "export", "s"], env=env, stdout=f, timeout=60)
    assert r.returncode == 0
    with srt.Runtime(env["SRT_DB"]) as rt:
        stored = rt.session("s").messages_bytes()
    assert out.read_bytes() == b"".join(b + b"\n" for b in stored)
    assert ok(env, "import", str(out), "--name", "copy") == "copy: 2 messages\n"

    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    for args, stdin in ((["import", str(empty)], b""), (["import", "-"], b"\n  \n")):
        r = srt_cmd(env, *args, stdin=stdin)
        assert r.returncode == 1 and r.stdout == b""
        assert r.stderr == b"srt: error: the input is empty: there is nothing to import\n"
    r = srt_cmd(env, "import", "-", "--name", "list", stdin=b"[]")
    assert r.stderr == b"srt: error: the input holds no message: there is nothing to import\n"
    assert [s["name"] for s in json.loads(ok(env, "ls", "--json"))] == ["copy", "s"]


def test_one_set_of_format_names(env: dict[str, str], tmp_path: Path) -> None:
    helps = {cmd: ok(env, cmd, "--help") for cmd in ("export", "import", "request")}
    for name in FORMATS:
        for cmd, text in helps.items():
            assert name in text, (cmd, name)
    for old in ("{openai,", ",anthropic,", ",responses,", ",openai}"):
        assert all(old not in text for text in helps.values())
    ok(env, "append", "t", "--role", "system", "Be brief.")
    ok(env, "append", "t", "--role", "user", "Hello?")
    ok(env, "append", "t", "--role", "assistant", "Hi.")
    with srt.Runtime(env["SRT_DB"]) as rt:
        stored = rt.session("t").messages()
    for name in sorted(FORMATS):
        # export NAME is the body srt request prints without cache hints ...
        body = ok(env, "export", "t", "--format", name)
        model = STAND_INS[name]  # the session has no ledger row naming a model
        request = ok(env, "request", "t", "--format", name, "--model", model, "--no-cache-hints")
        assert body == request, name
        # ... and import takes it back under the same name.
        path = tmp_path / f"{name}.json"
        path.write_text(body, encoding="utf-8")
        copy = name.replace(".", "-")
        assert ok(env, "import", str(path), "--format", name, "--name", copy) == (
            f"{copy}: 3 messages\n"
        )
        with srt.Runtime(env["SRT_DB"]) as rt:
            assert rt.session(copy).messages() == stored, name
    r = srt_cmd(env, "import", str(tmp_path / "openai.chat.json"), "--format", "jsonl")
    assert r.returncode == 1
    assert r.stderr.startswith(b"srt: error: the input is not jsonl: its shape is openai.chat")


def test_show_and_stats_act_on_the_latest_session(srv: ProviderServer, env: dict[str, str]) -> None:
    srv.script("openai", ["A.", "B."])
    ok(env, "prompt", *provider_args(srv), "--session", "a", "first?")
    ok(env, "prompt", *provider_args(srv), "--session", "b", "second?")
    assert ok(env, "show") == ok(env, "show", "b") == "user: second?\n\nassistant: B.\n"
    assert ok(env, "show", "--tree") == ok(env, "show", "b", "--tree")
    assert ok(env, "stats").startswith("session b, from the usage ledger:\n  requests        1\n")
    assert ok(env, "stats", "a").startswith("session a, from the usage ledger:")
    assert ok(env, "stats", "--all").startswith("all sessions, from the usage ledger:\n"
                                                "  requests        2\n")  # fmt: skip
    ok(env, "append", "a", "--role", "user", "more")  # a is now the latest
    assert ok(env, "show").startswith("user: first?")
    empty = {**env, "SRT_DB": env["SRT_DB"] + ".none"}
    r = srt_cmd(empty, "show")
    assert (r.returncode, r.stderr) == (1, b"srt: error: there are no sessions yet\n")


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"  # nothing listens there now


def test_a_prompt_to_an_unreachable_provider_leaves_the_session_as_it_was(
    env: dict[str, str],
) -> None:
    ok(env, "append", "geo", "--role", "user", "Capital of France?")
    ok(env, "append", "geo", "--role", "assistant", "Paris.")
    before = ok(env, "show", "geo", "--json")
    down = provider_args(_closed_port())
    r = srt_cmd(env, "prompt", *down, "--session", "geo", "And of Spain?")
    assert r.returncode == 1 and r.stdout == b""
    assert r.stderr.startswith(b"srt: error: ") and b"Traceback" not in r.stderr
    assert ok(env, "show", "geo", "--json") == before  # no unanswered message
    (left,) = json.loads(ok(env, "log", "geo", "--json"))  # ... yet its text is not lost
    assert (left["messages"], left["last_message"]) == (3, "user: And of Spain?")
    ok(env, "append", "empty", "--role", "user", "x")
    ok(env, "rewind", "empty")  # an existing, empty session stays (empty)
    assert srt_cmd(env, "prompt", *down, "--session", "empty", "Hi?").returncode == 1
    # A new session the prompt would have made is not left behind either.
    r = srt_cmd(env, "prompt", *down, "--system", "Be brief.", "Hello?")
    assert r.returncode == 1
    assert [s["name"] for s in json.loads(ok(env, "ls", "--json"))] == ["empty", "geo"]
    # Both attempts are in the ledger, as failed requests.
    figures = json.loads(ok(env, "stats", "--all", "--json"))
    assert (figures["requests"], figures["errors"]) == (3, 3)


def test_bench_with_a_missing_dir_is_a_clean_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    r = subprocess.run(
        [sys.executable, "-m", "srt.bench", "--dir", str(missing), "--workload", "formats"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.splitlines()[-1] == (
        f"python -m srt.bench: error: --dir {missing} does not exist; create it first, or "
        "leave --dir out for a temp dir"
    )
    assert not missing.exists()


def test_markdown_export(srv: ProviderServer, env: dict[str, str]) -> None:
    ok(env, "append", "m", "--role", "system", "Be brief.")
    ok(env, "append", "m", "--role", "user", "Weather in Paris?")
    with srt.Runtime(env["SRT_DB"]) as rt:
        rt.session("m").append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18 °C"},
            {"role": "assistant", "content": "18 °C, *dry*."},
        )
    assert ok(env, "export", "m", "--format", "markdown") == (
        "# m\n\n"
        "## system\n\nBe brief.\n\n"
        "## user\n\nWeather in Paris?\n\n"
        '## assistant\n\n[tool call weather({"city":"Paris"})]\n\n'
        "## tool (result of call_1)\n\n18 °C\n\n"
        "## assistant\n\n18 °C, *dry*.\n"
    )


def test_log_lists_earlier_heads_and_restores_one(env: dict[str, str]) -> None:
    for role, text in (("user", "Suggest a name."), ("assistant", "Smoke."), ("user", "Why?")):
        ok(env, "append", "n", "--role", role, text)
    assert ok(env, "rewind", "n", "2") == "1\n"
    assert ok(env, "log").startswith("n: 1 message now; earlier heads:\nKEY ")
    (rec,) = json.loads(ok(env, "log", "n", "--json"))
    assert (rec["action"], rec["messages"], rec["last_message"]) == ("rewind", 3, "user: Why?")
    assert (
        ok(env, "log", "n", "--restore", rec["key"]) == f"n: 3 messages (restored {rec['key']})\n"
    )
    assert ok(env, "show", "n") == "user: Suggest a name.\n\nassistant: Smoke.\n\nuser: Why?\n"
    r = srt_cmd(env, "log", "n", "--restore", "nope")
    assert r.returncode == 1 and b"no earlier head 'nope'" in r.stderr
    # gc keeps an earlier head for its retention; --history-retention 0 lets it go.
    ok(env, "rewind", "n", "2")
    assert ok(env, "gc").startswith("removed 0 nodes and 0 messages")
    assert ok(env, "gc", "--history-retention", "0").startswith("removed 2 nodes and 2 messages")
    assert json.loads(ok(env, "log", "n", "--json")) == []


def test_show_marks_compactions_and_lists_what_they_replaced(env: dict[str, str]) -> None:
    with srt.Runtime(env["SRT_DB"]) as rt:
        s = rt.session("c")
        s.append({"role": "system", "content": "sys"}, {"role": "user", "content": "first"})
        for i in range(2):
            s.append(
                {"role": "assistant", "content": f"a{i}"}, {"role": "user", "content": f"q{i}"}
            )
        span_id = s.prefix_hashes()[4].hex()[:12]
        s.compact(5, "a0, q0, a1")
    shown = ok(env, "show", "c")
    head = f"user [summary of 3 messages]: [Summary of 3 earlier messages, span {span_id}]"
    assert f"{head}\na0, q0, a1" in shown
    replaced = ok(env, "show", "c", "--replaced")
    assert (
        "a0, q0, a1\n  │ assistant: a0\n  │ \n  │ user: q0\n  │ \n  │ assistant: a1\n" in replaced
    )


def test_verify_rebuilds_the_ledger(srv: ProviderServer, env: dict[str, str]) -> None:
    srv.script("openai", ["A.", "B."])
    ok(env, "prompt", *provider_args(srv), "--session", "v", "first?")
    ok(env, "prompt", *provider_args(srv), "-c", "second?")
    assert ok(env, "verify") == (
        "ok: 4 messages, 4 nodes, 1 session, 2 ledger rows; every hash, chain and reference "
        "checks out, and every ledger row with a stored reply rebuilds to its recorded body "
        "hash\n"
    )
    with srt.Runtime(env["SRT_DB"]) as rt:
        row = rt.calls()[-1]
    conn = apsw.Connection(env["SRT_DB"])
    conn.execute("UPDATE calls SET body_hash = zeroblob(16) WHERE id = ?", (row["id"],))
    conn.close()
    r = srt_cmd(env, "verify")
    assert r.returncode == 1
    lines = r.stdout.decode().splitlines()
    assert lines[0].startswith(f"FAULT calls row {row['id']}: the body rebuilt from node ")
    assert lines[-1] == "1 fault in 4 messages, 4 nodes, 1 session, 2 ledger rows"


def test_stats_shows_a_local_model_as_local(env: dict[str, str]) -> None:
    from srt.store import CallRecord

    with srt.Runtime(env["SRT_DB"]) as rt:
        rt.session("l").append({"role": "user", "content": "hi"})
        row = rt.store.get_session("l")
        assert row is not None
        for provider, model in (("local", "SmolLM2-135M-Instruct"), ("openai", "gpt-4o-mini")):
            rt.store.record_call(
                CallRecord(
                    at=1.8e9, session=row.id, session_name="l", node=None, provider=provider,
                    model=model, format="openai.chat", body_hash=b"\0" * 16, body_bytes=10,
                    messages=1, input_tokens=2000, cache_read_tokens=1024, output_tokens=5,
                )
            )  # fmt: skip
    text = ok(env, "stats", "l")
    assert "no price known" not in text and "unpriced" not in text
    assert "1 local requests at $0" in text
    figures = json.loads(ok(env, "stats", "l", "--json"))["models"]
    local = figures["SmolLM2-135M-Instruct"]["cost"]
    assert (local["local_requests"], local["total_usd"]) == (1, 0.0)
    assert ok(env, "stats", "l", "--json").count('"local_requests": 1') == 2
