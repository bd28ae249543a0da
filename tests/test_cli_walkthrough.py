"""The newcomer's walk-through in docs/cli.md is the output of this test.

It runs the real ``srt`` (``python -m srt``) against srt's local provider server,
the chat under a pseudo-terminal: three turns, a fork, ``show --tree``, ``stats``,
deleting the original and ``gc``. Then it checks what the page promises: the fork is
intact and the original's own text is gone from the file. The page must show this
output; run with ``SRT_UPDATE_DOCS=1`` to rewrite it after a deliberate change.
Volatile values (times, page counts, dollar amounts) are masked when comparing.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import srt
from srt.testing import ProviderServer
from support import cli_env
from test_cli_chat import Pty

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
BEGIN, END = "<!-- walkthrough:begin -->", "<!-- walkthrough:end -->"
KEY = "sk-walkthrough-key"

GUIDE = "House style for answers.\n" + "\n".join(
    f"{i}. "
    + [
        "Prefer a short, concrete answer to a long, general one.",
        "Name one thing and say why in a sentence; offer more only when asked.",
        "Use plain words: a reader should never need a dictionary.",
        "When you suggest a name, make it easy to call out loud across a garden.",
        "Do not repeat the question back; start with the answer.",
        "Keep lists to three items, and put the best one first.",
    ][i % 6]
    for i in range(1, 121)
)
TURNS = ["Suggest a name for a grey cat.", "Why that one?", "And a second choice?"]
REPLIES = [
    "Smoke. Short, soft and grey, like the cat.",
    "One syllable carries well, and the colour is already in the name.",
    "Pebble: small, round and grey.",
]
DOG = ("Suggest a name for a dog instead.", "Pepper, for a salt-and-pepper coat.")

_MASKS = [
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d"), "YYYY-MM-DD HH:MM"),
    (re.compile(r"\$[\d.,]+"), "$N"),
    (re.compile(r"(freed|has) [\d,]+ (free )?pages \([^)]*\)"), r"\1 N \2pages (N)"),
]


def mask(text: str) -> str:
    for pattern, repl in _MASKS:
        text = pattern.sub(repl, text)
    return text


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server


def _tidy(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


class Walk:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.parts: list[str] = []

    def say(self, prose: str) -> None:
        self.parts.append(prose.strip())

    def shell(self, shown: str, *argv: str, stderr: str = "") -> str:
        """Run ``python -m srt ARGV``, showing it as ``$ srt SHOWN``; its stdout. The
        command must print ``stderr`` there (shown first, as it comes first)."""
        r = subprocess.run(
            [sys.executable, "-m", "srt", *argv],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (r.returncode, r.stderr) == (0, stderr), (argv, r)
        out = _tidy(r.stderr + r.stdout)
        self.parts.append(
            f"```console\n$ srt {shown}\n{out}\n```" if out else f"```console\n$ srt {shown}\n```"
        )
        return r.stdout

    def text(self) -> str:
        return "\n\n".join(self.parts)


def walkthrough(tmp_path: Path, srv: ProviderServer) -> tuple[str, Path]:
    db = tmp_path / "srt.db"
    env = cli_env(db, OPENAI_API_KEY=KEY, OPENAI_BASE_URL=srv.url + "/v1")
    w = Walk(env)
    srv.script("openai", REPLIES)
    w.say(
        "Start a chat in a session called `demo`, with the style guide as its system "
        "prompt, and ask three questions. The dim line after each reply is the "
        "request's input tokens, how many the provider served from its prompt cache, "
        "and the output tokens: from the second turn on, the whole conversation so far "
        "is a cached prefix. Ctrl-D leaves."
    )
    chat = Pty(["-m", "srt", "chat", "--session", "demo", "--system", GUIDE], env)
    try:
        chat.expect(r"\n> $")
        for question, answer in zip(TURNS, REPLIES, strict=True):
            chat.sendline(question)
            chat.expect(re.escape(answer) + r"\n\[.*\]\n> $")
        chat.ctrl_d()
        assert chat.wait() == 0
    finally:
        chat.close()
    w.parts.append(
        f'```console\n$ srt chat --session demo --system "$(cat guide.md)"\n{_tidy(chat.text)}\n```'
    )

    w.say(
        "Fork the conversation after the first answer and take it elsewhere. The fork "
        "copies nothing: it is a new name on the same stored messages, and since its "
        "requests begin with the same bytes, the provider's cache serves it too."
    )
    w.shell("fork demo demo-b --at 3", "fork", "demo", "demo-b", "--at", "3")
    srv.script("openai", [DOG[1]])
    w.shell(f'prompt --session demo-b "{DOG[0]}"', "prompt", "--session", "demo-b", DOG[0])
    w.say("The sessions, and the tree the two of them make:")
    w.shell("ls", "ls")
    w.shell("show demo --tree", "show", "demo", "--tree")
    w.say(
        "What it cost, from the usage ledger (`--all`: every session; without it, the "
        "session used last), and what it saved against two clients that keep no state: "
        "a careful one under the same caching rules (on OpenAI the cache is automatic, so "
        "such a client, sending the same bytes, pays what srt paid) and one with no "
        "prompt caching at all:"
    )
    w.shell("stats --all", "stats", "--all")

    with srt.Runtime(str(db)) as rt:
        fork_before = rt.session("demo-b", create=False).messages()
    w.say(
        "Delete the original and collect the garbage. The messages only `demo` "
        "reached are removed, and overwritten: their text can no longer be read from "
        "the file. Everything `demo-b` shares with it stays."
    )
    w.shell("delete demo", "delete", "demo")
    w.shell("gc", "gc")
    w.shell("show demo-b --tree", "show", "demo-b", "--tree")
    w.say(
        "Search every session's messages. A file never searched carries no search "
        "index, so the first search builds it; from then on every append keeps it up "
        "to date."
    )
    w.shell(
        "search grey",
        "search",
        "grey",
        stderr="building the search index over 5 messages…\n",
    )
    w.shell("verify", "verify")

    # What the page promises.
    with srt.Runtime(str(db)) as rt:
        assert [i.name for i in rt.sessions()] == ["demo-b"]
        assert rt.session("demo-b", create=False).messages() == fork_before
        assert [m["content"] for m in fork_before] == [GUIDE, TURNS[0], REPLIES[0], *DOG]
        assert rt.usage().requests == 4  # the ledger keeps the deleted session's requests
    on_disk = b"".join(p.read_bytes() for p in tmp_path.glob("srt.db*"))
    for gone in (TURNS[1], REPLIES[1], TURNS[2], REPLIES[2], "Pebble", "pebble"):
        assert gone.encode() not in on_disk, gone
    for kept in (TURNS[0], REPLIES[0], DOG[1]):
        assert kept.encode() in on_disk, kept
    assert KEY.encode() not in on_disk
    return w.text(), db


def test_walkthrough_in_the_docs(tmp_path: Path, srv: ProviderServer) -> None:
    generated, _db = walkthrough(tmp_path, srv)
    doc = DOCS.read_text(encoding="utf-8")
    head, rest = doc.split(BEGIN + "\n", 1)
    current, tail = rest.split(END, 1)
    if mask(current.strip()) == mask(generated):
        return
    if os.environ.get("SRT_UPDATE_DOCS") == "1":
        DOCS.write_text(f"{head}{BEGIN}\n{generated}\n{END}{tail}", encoding="utf-8")
        return
    diff = "\n".join(
        difflib.unified_diff(
            mask(current.strip()).splitlines(),
            mask(generated).splitlines(),
            "docs/cli.md",
            "this run",
            lineterm="",
        )
    )
    pytest.fail(
        "docs/cli.md's walk-through differs from the real output "
        f"(SRT_UPDATE_DOCS=1 rewrites it):\n{diff}",
        pytrace=False,
    )
