"""Deterministic, seeded conversation generators for the benchmarks."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

_WORDS = (
    "the of and to in is that for it as with was on be by this are or at from "
    "cache prefix token model request session history reply answer question "
    "function value result python sqlite store hash chain fork branch edit "
    "naïve café déjà–vu — “quoted” 数据 模型 привет мир ✓ → λ"
).split()


def text(rng: random.Random, n_chars: int) -> str:
    """About ``n_chars`` characters of word salad (ASCII with some Unicode)."""
    out: list[str] = []
    size = 0
    while size < n_chars:
        w = rng.choice(_WORDS)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)[:n_chars]


def words(rng: random.Random, n_chars: int) -> str:
    """``text``'s word salad drawn in one call (``rng.choices``): much faster, for the
    workloads that generate millions of messages (``many``, ``budget``)."""
    out = " ".join(rng.choices(_WORDS, k=n_chars // 4 + 4))
    while len(out) < n_chars:
        out += " " + " ".join(rng.choices(_WORDS, k=n_chars // 4 + 4))
    return out[:n_chars]


def chat(
    turns: int,
    *,
    seed: int = 1,
    system_chars: int = 4096,
    user: tuple[int, int] = (200, 800),
    assistant: tuple[int, int] = (500, 3000),
) -> tuple[dict[str, Any], Iterator[tuple[dict[str, Any], dict[str, Any]]]]:
    """A system message and ``turns`` (user, assistant) pairs, fully determined by ``seed``."""
    rng = random.Random(seed)
    system = {"role": "system", "content": text(rng, system_chars)}

    def gen() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        for _ in range(turns):
            u = {"role": "user", "content": text(rng, rng.randint(*user))}
            a = {"role": "assistant", "content": text(rng, rng.randint(*assistant))}
            yield u, a

    return system, gen()


TOOLS = [
    {
        "type": "function",
        "function": {
            "description": "Search the code base; returns matching files with context.",
            "name": "search",
            "parameters": {
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
                "type": "object",
            },
        },
    },
    {
        "type": "function",
        "function": {
            "description": "Read a file and return its contents.",
            "name": "read_file",
            "parameters": {
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
                "type": "object",
            },
        },
    },
    {
        "type": "function",
        "function": {
            "description": "Run a shell command in the sandbox and return its output.",
            "name": "run",
            "parameters": {
                "properties": {"command": {"type": "string"}},
                "required": ["command"],
                "type": "object",
            },
        },
    },
]


def _call(rng: random.Random, n: int) -> dict[str, Any]:
    name = rng.choice(("search", "read_file", "run"))
    key = {"search": "query", "read_file": "path", "run": "command"}[name]
    args = json.dumps({key: text(rng, rng.randint(10, 60))}, ensure_ascii=False)
    return {
        "id": f"call_{n:06d}",
        "type": "function",
        "function": {"name": name, "arguments": args},
    }


def agent(
    tasks: int,
    *,
    seed: int = 1,
    system_chars: int = 3072,
    rounds: tuple[int, int] = (2, 8),
    result: tuple[int, int] = (2_000, 16_000),
) -> tuple[dict[str, Any], Iterator[list[dict[str, Any]]]]:
    """A tool-call loop: per task a user request, then ``rounds`` rounds of an assistant
    message with one or two tool calls and their (large) results, then an answer.

    Yields one list per model call: the messages to append before the call (the user
    request, or the previous round's tool results), then as the last item the reply to
    append after it (the next tool-call message, or the answer). Messages are in srt's
    canonical key order, so ``json.dumps`` of them gives srt's bytes.
    """
    rng = random.Random(seed)
    system = {"role": "system", "content": text(rng, system_chars)}

    def gen() -> Iterator[list[dict[str, Any]]]:
        n = 0
        for _ in range(tasks):
            pending: list[dict[str, Any]] = [
                {"role": "user", "content": text(rng, rng.randint(200, 600))}
            ]
            for _ in range(rng.randint(*rounds)):
                calls = [_call(rng, n + k) for k in range(rng.randint(1, 2))]
                n += len(calls)
                reply = {"role": "assistant", "content": None, "tool_calls": calls}
                yield [*pending, reply]
                pending = [
                    {
                        "role": "tool",
                        "content": text(rng, rng.randint(*result)),
                        "tool_call_id": c["id"],
                    }
                    for c in calls
                ]
            answer = {"role": "assistant", "content": text(rng, rng.randint(300, 1500))}
            yield [*pending, answer]

    return system, gen()


def many(
    sessions: int, turns: int, *, seed: int = 1, system_chars: int = 4096
) -> tuple[dict[str, Any], Iterator[list[dict[str, Any]]]]:
    """``sessions`` short conversations sharing one system prompt: per session ``turns``
    (user 50-200 chars, assistant 100-400 chars) pairs, as one message list."""
    rng = random.Random(seed)
    system = {"role": "system", "content": text(rng, system_chars)}

    def gen() -> Iterator[list[dict[str, Any]]]:
        for _ in range(sessions):
            msgs: list[dict[str, Any]] = []
            for _ in range(turns):
                msgs.append({"role": "user", "content": words(rng, rng.randint(50, 200))})
                msgs.append({"role": "assistant", "content": words(rng, rng.randint(100, 400))})
            yield msgs

    return system, gen()
