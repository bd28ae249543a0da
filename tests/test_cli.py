"""The ``srt`` command, run for real in subprocesses against a database in tmp_path."""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import srt
from srt.cli import main
from support import connect, is_url, tamper_body


@dataclass
class Result:
    code: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode("utf-8")


@dataclass
class Cli:
    """Runs ``srt --db <db> ...`` (``python -m srt`` unless another command is given)."""

    db: Path | str  # a file, or a PostgreSQL URL
    env: dict[str, str]

    def raw(self, *args: str, stdin: bytes = b"", command: list[str] | None = None) -> Result:
        argv = [*(command or [sys.executable, "-m", "srt"]), *args]
        proc = subprocess.run(argv, input=stdin, capture_output=True, env=self.env, timeout=120)
        return Result(proc.returncode, proc.stdout, proc.stderr.decode("utf-8"))

    def __call__(self, *args: str, stdin: bytes = b"", command: list[str] | None = None) -> Result:
        return self.raw("--db", str(self.db), *args, stdin=stdin, command=command)

    def ok(self, *args: str, stdin: bytes = b"") -> str:
        r = self(*args, stdin=stdin)
        assert (r.code, r.err) == (0, ""), r
        return r.text

    def fails(self, code: int, *args: str) -> str:
        """Run a command that must fail with ``code``; return its stderr."""
        r = self(*args)
        assert r.code == code, r
        assert r.out == b""
        assert "Traceback" not in r.err
        return r.err


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SRT_DB"}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")  # never the real user data directory
    env["PYTHONUTF8"] = "1"
    return env


@pytest.fixture
def file_cli(tmp_path: Path, env: dict[str, str]) -> Cli:
    """``srt`` on a SQLite file (for what is about files: paths, creation, bytes)."""
    return Cli(tmp_path / "data" / "srt.db", env)


@pytest.fixture
def cli(store_url: str, tmp_path: Path, env: dict[str, str]) -> Cli:
    """``srt`` on each engine in turn: a SQLite file, then a PostgreSQL URL."""
    if is_url(store_url):
        return Cli(store_url, env)
    return Cli(tmp_path / "data" / "srt.db", env)


def test_end_to_end(cli: Cli) -> None:
    text = 'héllo 世界 \x1b[31mred\x1b[0m\r\x85 "quoted"\ttab\nsecond line'
    assert cli.ok("append", "chat", "--role", "system", "You are terse.") == "1\n"
    assert cli.ok("append", "chat", "--role", "user", text) == "2\n"
    assert cli.ok(
        "append", "chat", "--role", "assistant", "-", stdin="from stdin ✓\n".encode()
    ) == ("3\n")
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": text},
        {"role": "assistant", "content": "from stdin ✓\n"},
    ]

    listing = cli.ok("ls").splitlines()
    assert listing[0].split() == ["NAME", "TURNS", "MESSAGES", "TOKENS", "BRANCHES", "LAST", "USE"]
    name, turns, count, tokens, branches, day, minute = listing[1].split()
    with srt.Runtime(cli.db) as rt:
        (info,) = rt.sessions()
        bodies = rt.session("chat").messages_bytes()
    assert (name, turns, count, branches) == ("chat", "1", "3", "1")
    assert int(tokens) == sum((len(b) + 3) // 4 for b in bodies)  # the estimate: bytes / 4
    updated = f"{day} {minute}"
    assert updated == datetime.datetime.fromtimestamp(info.updated).strftime("%Y-%m-%d %H:%M")

    shown = cli.ok("show", "chat")
    assert shown == (
        "system: You are terse.\n\n"
        'user: héllo 世界 \\x1b[31mred\\x1b[0m\\x0d\\x85 "quoted"\ttab\nsecond line\n\n'
        "assistant: from stdin ✓\n\n"
    )
    assert json.loads(cli.ok("show", "chat", "--json")) == messages

    r = cli("request", "chat", "--model", "gpt-4o-mini", "--no-cache-hints")
    assert (r.code, r.err) == (0, "")
    expected = json.dumps(
        {"model": "gpt-4o-mini", "messages": messages}, ensure_ascii=False, separators=(",", ":")
    )
    assert r.out == expected.encode("utf-8") + b"\n"
    r2 = cli("request", "chat", "--model", "gpt-4o-mini", "--format", "openai.chat")
    key = json.loads(r2.out)["prompt_cache_key"]
    assert re.fullmatch(r"srt-[0-9a-f]{32}", key)
    with_key = {"model": "gpt-4o-mini", "messages": messages, "prompt_cache_key": key}
    assert (
        r2.out == json.dumps(with_key, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    )

    assert cli.ok("fork", "chat", "branch", "--at", "-1") == "2\n"
    assert json.loads(cli.ok("show", "branch", "--json")) == messages[:2]
    assert cli.ok("fork", "chat", "whole") == "3\n"
    assert cli.ok("fork", "chat", "empty", "--at", "0") == "0\n"
    assert cli.ok("show", "empty") == ""
    assert cli.ok("rewind", "whole") == "2\n"
    assert cli.ok("rewind", "whole", "2") == "0\n"
    assert cli.ok("rename", "branch", "renamed") == ""
    assert json.loads(cli.ok("show", "renamed", "--json")) == messages[:2]
    assert cli.ok("delete", "whole") == ""
    assert cli.ok("delete", "empty") == ""

    sessions = json.loads(cli.ok("ls", "--json"))
    assert [s["name"] for s in sessions] == ["chat", "renamed"]
    assert [s["messages"] for s in sessions] == [3, 2]
    assert set(sessions[0]) == {
        "name",
        "messages",
        "turns",
        "tokens",
        "branches",
        "created",
        "updated",
        "head_prefix",
    }
    assert [s["branches"] for s in sessions] == [2, 2]
    assert sessions[0]["head_prefix"] == info.head_prefix
    # the original is untouched by the fork, rewind and rename of its branches
    assert json.loads(cli.ok("show", "chat", "--json")) == messages


def test_show_renders_parts_and_tool_calls(cli: Cli) -> None:
    with srt.Runtime(cli.db) as rt:
        rt.session("tools").append(
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    {"type": "text", "text": "at \x1bthis"},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "function": {"name": "add", "arguments": '{"a":1,"b":2}'}},
                    {"id": "c2", "function": {"name": "now", "arguments": "{}"}},
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "3"},
        )
    assert cli.ok("show", "tools") == (
        "user: look\n[image]\nat \\x1bthis\n\n"
        'assistant: [tool call add({"a":1,"b":2})]\n[tool call now({})]\n\n'
        "tool: 3\n"
    )


def test_names_are_unicode_and_escaped(cli: Cli) -> None:
    name = "日本語 chat ✓"
    assert cli.ok("append", name, "--role", "user", "hi") == "1\n"
    assert cli.ok("ls").splitlines()[1].startswith("日本語 chat ✓  ")
    # control and bidi-override characters are refused in names
    for bad in ("x\u0085y", "x\u202ey"):
        assert cli.fails(1, "append", bad, "--role", "user", "hi").startswith("srt: error:")
    assert [s["name"] for s in json.loads(cli.ok("ls", "--json"))] == [name]
    assert cli.ok("show", name) == "user: hi\n"
    # a name or text beginning with '-' goes after '--'
    assert cli.ok("append", "--role", "user", "--", "-dash", "-5 degrees") == "1\n"
    assert cli.ok("show", "--", "-dash") == "user: -5 degrees\n"


def test_errors_are_one_clean_line(file_cli: Cli) -> None:
    cli = file_cli
    assert cli.fails(1, "show", "nope") == "srt: error: no session named 'nope'\n"
    err = cli.fails(1, "append", "chat", "--role", "wizard", "hi")
    assert err.startswith("srt: error: unknown role 'wizard'")
    assert err.count("\n") == 1 and err.endswith("\n")
    assert not cli.db.exists()  # a refused message creates neither a file nor a session

    cli.ok("append", "chat", "--role", "user", "hi")
    for args, message in [
        (("request", "nope", "--model", "m"), "no session named 'nope'"),
        (("fork", "chat", "chat"), "a session named 'chat' already exists"),
        (("fork", "chat", "x", "--at", "5"), "at=5 is outside a session of 1 messages"),
        (("rewind", "chat", "2"), "cannot rewind 2 of 1 messages"),
        (("rename", "nope", "x"), "no session named 'nope'"),
        (("delete", "nope"), "no session named 'nope'"),
        (("append", "chat", "--role", "user", "-"), "content: invalid UTF-8 at byte 1"),
    ]:
        r = cli(*args, stdin=b"a\xff")
        assert (r.code, r.out, r.err) == (1, b"", f"srt: error: {message}\n"), args
    assert json.loads(cli.ok("show", "chat", "--json")) == [{"role": "user", "content": "hi"}]


def test_not_a_database(file_cli: Cli, tmp_path: Path) -> None:
    cli = file_cli
    cli.db.parent.mkdir()
    junk = b"not a database, just some text that is long enough" * 4
    cli.db.write_bytes(junk)
    for args in [("ls",), ("append", "s", "--role", "user", "hi")]:
        err = cli.fails(1, *args)
        assert err.startswith("srt: error: ") and err.count("\n") == 1
    assert cli.db.read_bytes() == junk


def test_usage_errors_exit_2(file_cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    cli = file_cli
    # Two through a real process; the rest through main(), which the script runs.
    for args in [(), ("frobnicate",)]:
        err = cli.fails(2, *args)
        assert err.startswith("usage: srt"), args
    for args in [
        ("db",),
        ("append", "chat", "hi"),  # no --role
        ("request", "chat"),  # no --model
        ("request", "chat", "--model", "m", "--format", "nope"),
        ("rewind", "chat", "-1"),
        ("fork", "chat", "x", "--at", "one"),
        ("export", "chat", "--format", "yaml"),
        ("export", "chat", "--format", "openai"),  # the old short names are gone
        ("import", "x.json", "--format", "markdown"),
        ("search", "x", "--limit", "0"),
        ("search",),  # no TEXT
        ("search", "x", "--drop-index"),
        ("show", "chat", "--json", "--tree"),
        ("chat", "--session", "a", "-c"),
        ("chat", "--provider", "nope"),
        ("--db", "", "ls"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(["--db", str(cli.db), *args])
        assert exc.value.code == 2, args
        assert capsys.readouterr().err.startswith("usage: srt"), args
    assert not cli.db.exists()


def test_reading_never_creates_the_database(file_cli: Cli) -> None:
    cli = file_cli
    assert cli.ok("ls") == ""
    assert cli.ok("ls", "--json") == "[]\n"
    assert not cli.db.parent.exists()


def test_db_path(
    file_cli: Cli, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = file_cli
    assert cli.ok("db", "path") == f"{cli.db}\n"
    from_env = tmp_path / "env.db"
    env["SRT_DB"] = str(from_env)
    assert cli.raw("db", "path").text == f"{from_env}\n"
    assert cli.ok("db", "path") == f"{cli.db}\n"  # --db wins over $SRT_DB
    del env["SRT_DB"]
    monkeypatch.delenv("SRT_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", env["XDG_DATA_HOME"])
    assert cli.raw("db", "path").text == f"{srt.default_path()}\n"
    assert not from_env.exists()


def test_console_script(file_cli: Cli) -> None:
    cli = file_cli
    script = shutil.which("srt", path=cli.env.get("PATH"))
    assert script is not None, "the srt console script is not installed"
    r = cli("append", "s", "--role", "user", "via the script", command=[script])
    assert (r.code, r.text, r.err) == (0, "1\n", "")
    r = cli("ls", "--json", command=[script])
    assert [s["name"] for s in json.loads(r.text)] == ["s"]
    assert cli.raw("--version", command=[script]).text == f"srt {srt.__version__}\n"


# -- export and import, search, stats, tree, gc, verify, vacuum ------------------------------

CONVERSATION: list[dict[str, object]] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "hello ünïcödé"},
    {"role": "assistant", "content": "hi there"},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "add", "arguments": '{"a":1}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "2"},
    {"role": "assistant", "content": "done"},
]


def test_export_import_round_trip(cli: Cli, tmp_path: Path) -> None:
    with srt.Runtime(cli.db) as rt:
        rt.session("orig").append(*CONVERSATION)
        stored = rt.session("orig").messages()
    for fmt in ("openai.chat", "anthropic.messages", "openai.responses", "jsonl"):
        exported = cli.ok("export", "orig", "--format", fmt)
        name = fmt.replace(".", "-")
        path = tmp_path / f"copy-{name}.{'jsonl' if fmt == 'jsonl' else 'json'}"
        path.write_text(exported, encoding="utf-8")
        assert cli.ok("import", str(path), "--format", fmt) == f"copy-{name}: 7 messages\n"
        with srt.Runtime(cli.db) as rt:
            assert rt.session(f"copy-{name}", create=False).messages() == stored, fmt
        if fmt != "jsonl":
            body = json.loads(exported)
            assert body["model"] == ("claude-sonnet-4-5" if "anthropic" in fmt else "gpt-4o-mini")
    # jsonl is the stored bytes, one message a line; stdin works with --name.
    with srt.Runtime(cli.db) as rt:
        lines = b"".join(b + b"\n" for b in rt.session("orig").messages_bytes())
    assert cli("export", "orig", "--format", "jsonl").out == lines
    assert cli.ok("import", "-", "--name", "piped", stdin=lines) == "piped: 7 messages\n"
    # Identical histories share their nodes: every copy is a branch of one tree.
    listing = json.loads(cli.ok("ls", "--json"))
    assert {s["branches"] for s in listing} == {6}
    assert len({s["head_prefix"] for s in listing}) == 1
    err = cli.fails(1, "import", str(tmp_path / "copy-openai-chat.json"))
    assert err == (
        "srt: error: a session named 'copy-openai-chat' already exists; pick another name "
        "with --name\n"
    )
    bad = tmp_path / "bad.json"
    bad.write_text('{"messages": [{"role": "wizard", "content": "x"}]}', encoding="utf-8")
    assert cli.fails(1, "import", str(bad)).startswith("srt: error: unknown role 'wizard'")
    assert "bad" not in {s["name"] for s in json.loads(cli.ok("ls", "--json"))}


def test_export_leaves_out_partial_replies(cli: Cli) -> None:
    from srt.providers import OpenAI
    from srt.testing import ProviderServer

    with ProviderServer() as srv, srt.Runtime(cli.db) as rt:
        provider = OpenAI("sk-test", base_url=srv.url + "/v1")
        s = rt.session("s")
        s.append({"role": "user", "content": "q"})
        srv.fault("openai", "reset_after_events", n=3)  # the stream is cut off
        with pytest.raises(srt.ProviderError):
            "".join(s.stream(provider, model="gpt-4o-mini"))
        provider.close()
        (_q, partial) = s.messages()
    shown = cli.ok("show", "s")
    assert shown == f"user: q\n\nassistant [incomplete]: {partial['content']}\n"
    assert cli.ok("export", "s", "--format", "jsonl") == '{"role":"user","content":"q"}\n'
    assert cli.ok("export", "s", "--format", "jsonl", "--include-partial").count("\n") == 2
    assert json.loads(cli.ok("export", "s", "--format", "openai.chat"))["messages"] == [
        {"role": "user", "content": "q"}
    ]
    tree = cli.ok("show", "s", "--tree")
    assert tree == f"1 user: q\n2 assistant [incomplete]: {partial['content']}  <- s\n"


def test_show_tree_draws_forks(cli: Cli) -> None:
    with srt.Runtime(cli.db) as rt:
        main = rt.session("main")
        main.append(*({"role": "user", "content": f"m{i}"} for i in range(16)))
        main.fork("mid", at=8).append({"role": "user", "content": "mid own"})
        main.fork("early", at=2)
        main.fork("twin")
        rt.session("other").append({"role": "user", "content": "unrelated"})
    assert cli.ok("show", "mid", "--tree") == (
        "1 user: m0\n"
        "2 user: m1  <- early\n"
        "⋮ 4 more messages\n"
        "7 user: m6\n"
        "8 user: m7\n"
        "├─ 9 user: m8\n"
        "│  10 user: m9\n"
        "│  ⋮ 4 more messages\n"
        "│  15 user: m14\n"
        "│  16 user: m15  <- main, twin\n"
        "└─ 9 user: mid own  <- mid\n"
    )
    assert cli.fails(1, "show", "nope", "--tree") == "srt: error: no session named 'nope'\n"
    assert cli.fails(2, "show", "mid", "--tree", "--json").startswith("usage:")


def test_search(cli: Cli) -> None:
    with srt.Runtime(cli.db) as rt:
        s = rt.session("a")
        s.append(
            {"role": "user", "content": "Where is the aardvark?"},
            {"role": "assistant", "content": "The aardvark sleeps. " + "zzz " * 40 + "end."},
        )
        s.fork("b")
        rt.session("c").append({"role": "user", "content": "no match here"})
    first = cli("search", "aardvark", "sleeps")  # builds the index, and says so on stderr
    assert (first.code, first.err) == (0, "building the search index over 3 messages…\n")
    assert first.text == cli.ok("search", "aardvark", "sleeps")  # said once only
    out = first.text.splitlines()
    assert len(out) == 1 and out[0].startswith("a:2, b:2  assistant: The aardvark sleeps. zzz")
    assert len(out[0]) <= 80 and out[0].endswith("…")
    hits = json.loads(cli.ok("search", "AARDVARK", "--json"))
    assert [h["places"] for h in hits] == [[["a", 1], ["b", 1]], [["a", 2], ["b", 2]]] or [
        h["places"] for h in hits
    ] == [[["a", 2], ["b", 2]], [["a", 1], ["b", 1]]]
    assert cli.ok("search", "aard*", "--limit", "1").count("\n") == 1
    assert cli.ok("search", "aardvark NOT sleeps", "--fts").startswith("a:1, b:1  user: Where")
    assert cli.ok("search", "nothing-like-this") == ""
    if is_url(str(cli.db)):
        # PostgreSQL's --fts syntax (websearch_to_tsquery) has no invalid input
        assert cli.ok("search", '"aardvark sleeps" -zzz', "--fts") == ""
        assert cli.ok("search", '"aardvark sleeps" or nothing', "--fts").count("\n") == 1
        return
    err = cli.fails(1, "search", "(", "--fts")
    assert err.startswith("srt: error: the search text is not a valid FTS5 query: it ends")
    assert err.count("\n") == 1


def test_search_drop_index(cli: Cli) -> None:
    with srt.Runtime(cli.db) as rt:
        rt.session("a").append({"role": "user", "content": "Where is the aardvark?"})
    assert cli.ok("search", "--drop-index") == "the database has no search index\n"
    assert cli("search", "aardvark").err == "building the search index over 1 message…\n"
    assert cli.ok("verify").startswith("ok: ")
    assert cli.ok("search", "--drop-index") == (
        "dropped the search index; srt vacuum returns its pages to the disk\n"
    )
    with srt.Runtime(cli.db) as rt:
        assert not rt.store.has_search_index()
    assert cli.ok("vacuum")
    r = cli("search", "aardvark", "--json")
    assert (r.code, r.err) == (0, "building the search index over 1 message…\n")
    assert [h["places"] for h in json.loads(r.text)] == [[["a", 1]]]


def test_stats_from_the_ledger(cli: Cli) -> None:
    from srt.providers import OpenAI
    from srt.testing import ProviderServer

    with ProviderServer() as srv, srt.Runtime(cli.db) as rt:
        provider = OpenAI("sk-test", base_url=srv.url + "/v1")
        s = rt.session("s")
        s.append({"role": "system", "content": "rules " * 1500}, {"role": "user", "content": "a"})
        s.send(provider, model="gpt-4o-mini")
        s.append({"role": "user", "content": "b"})
        s.send(provider, model="gpt-4o-mini")
        rt.session("t").append({"role": "user", "content": "c"})
        rt.session("t").send(provider, model="my-own-model")
        provider.close()
        usage = s.usage()
    assert usage.cache_read_tokens > 0
    figures = json.loads(cli.ok("stats", "s", "--json"))
    assert figures["requests"] == 2 and figures["errors"] == 0
    assert figures["input_tokens"] == usage.input_tokens
    assert figures["cache_read_tokens"] == usage.cache_read_tokens
    assert figures["cache_hit_share"] == round(usage.cache_hit_share, 4)
    cost = figures["cost"]
    careful, no_cache = cost["baselines"]["careful"], cost["baselines"]["no_cache"]
    assert cost["priced_requests"] == 2 and no_cache["saved_usd"] > 0
    assert careful["saved_usd"] == 0  # OpenAI caches automatically: the same bytes, the same bill
    assert cost["total_usd"] == pytest.approx(cost["input_usd"] + cost["output_usd"])
    assert cli.ok("stats").startswith("session t, from the usage ledger:\n")  # the latest
    text = cli.ok("stats", "--all")
    assert text.startswith("all sessions, from the usage ledger:\n  requests        3\n")
    assert "cache hit share" in text and "unpriced        my-own-model" in text
    assert "MODEL" in text and "my-own-model" in text
    cli.ok("delete", "s")
    assert cli.ok("stats", "s").startswith("session s (deleted), from the usage ledger:")
    assert cli.fails(1, "stats", "never") == "srt: error: no session named 'never'\n"


def test_gc_verify_vacuum(file_cli: Cli) -> None:
    cli = file_cli
    for cmd in ("gc", "verify", "vacuum"):
        assert cli.fails(1, cmd) == f"srt: error: no database at {cli.db}\n"
    with srt.Runtime(cli.db) as rt:
        a = rt.session("a")
        a.append({"role": "user", "content": "shared"}, {"role": "assistant", "content": "x"})
        a.fork("b").append({"role": "user", "content": "only in b " + "words " * 5000})
    assert cli.ok("verify") == (
        "ok: 3 messages, 3 nodes, 2 sessions, 0 ledger rows; "
        "every hash, chain and reference checks out\n"
    )
    cli.ok("delete", "b")
    assert cli.ok("gc", "--dry-run").splitlines() == [
        "would remove 1 node and 1 message (29.3 KiB of message bodies) that no session reaches",
        "dry run: nothing was changed",
    ]
    report = json.loads(cli.ok("gc", "--json"))
    assert (report["nodes"], report["messages"], report["checkpointed"]) == (1, 1, True)
    assert report["pages_freed"] >= 1 and report["bytes_freed"] == 2048 * report["pages_freed"]
    assert b"only in b" not in cli.db.read_bytes()
    assert (
        cli.ok("gc") == "removed 0 nodes and 0 messages (0 bytes of message bodies) that "
        "no session reaches\n"
    )
    before, after = re.fullmatch(r"(.+) before, (.+) after\n", cli.ok("vacuum")).groups()  # type: ignore[union-attr]
    assert before != after

    # A body changed by hand: verify names the message and the session reaching it.
    with connect(str(cli.db)) as conn:
        (mid, h) = conn.execute(
            "SELECT id, hash FROM messages WHERE CAST(body AS TEXT) LIKE '%shared%'"
        ).fetchone()
        tamper_body(conn, h, b'{"role":"user","content":"sharex"}')
    r = cli("verify")
    assert r.code == 1 and r.err == ""
    assert r.text == (
        f"FAULT messages row {mid}: the stored body does not hash to its hash {h.hex()}; "
        "reached by 'a' message 1\n"
        "1 fault in 2 messages, 2 nodes, 1 session, 0 ledger rows\n"
    )
    (fault,) = json.loads(cli("verify", "--json").text)["faults"]
    assert (fault["kind"], fault["row"], fault["places"]) == ("message", mid, [["a", 1]])
