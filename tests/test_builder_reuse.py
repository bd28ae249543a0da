"""What a session's builds reuse from turn to turn (the bare envelope, the kept body's
memory) never changes a byte: each body equals the one a new runtime, which has
nothing to reuse, builds for the same history and arguments, whatever changes between
two builds (the model, the format, the cache key, parameters, tools, a new message)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import srt

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}

#: (format, arguments) in the order the builds go, each one differing from the last.
STEPS: list[tuple[str, dict[str, Any]]] = [
    ("openai.chat", {"model": "m1", "cache": False}),
    ("openai.chat", {"model": "m1", "cache": False}),  # nothing changed
    ("openai.chat", {"model": "m2", "cache": False}),  # another model
    ("openai.chat", {"model": "m2", "cache": True}),  # the cache key goes in
    ("openai.chat", {"model": "m2", "cache": True, "prompt_cache_key": "mine"}),
    ("openai.chat", {"model": "m2", "cache": False, "temperature": 0.5}),
    ("openai.chat", {"model": "m2", "cache": False, "tools": [TOOL]}),
    ("openai.chat", {"model": "m2", "cache": False}),
    ("anthropic.messages", {"model": "claude-x", "cache": False}),
    ("bedrock.converse", {"model": "b", "cache": False}),
    ("openai.responses", {"model": "m2", "cache": False}),
    ("openai.responses", {"model": "m2", "cache": True}),
    ("openai.chat", {"model": "m1", "cache": False}),
]


def test_builds_equal_a_new_runtimes_whatever_changes_between_them(tmp_path: Path) -> None:
    path = str(tmp_path / "a.db")
    rt = srt.Runtime(path)
    s = rt.session("s")
    s.append({"role": "system", "content": "You are terse."})
    checked = 0
    for turn in range(3):
        for i, (fmt, kwargs) in enumerate(STEPS):
            if i % 4 == 0:  # a new message now and then: the last role changes too
                role = "user" if (turn * len(STEPS) + i) % 8 == 0 else "assistant"
                s.append({"role": role, "content": f"message {turn}.{i} " + "x" * 40})
            body = s.request(fmt, **kwargs)
            fresh = srt.Runtime(path)
            try:
                want = fresh.session("s").request(fmt, **kwargs)
            finally:
                fresh.close()
            assert body == want, (turn, i, fmt, kwargs)
            checked += 1
    rt.close()
    assert checked == 3 * len(STEPS)


def test_a_large_body_grows_where_it_is_and_equals_a_new_runtimes(tmp_path: Path) -> None:
    """Past ``OUT_MIN_BYTES`` the body is written by the assembly's ``OutputBuffer``:
    released turn after turn, it grows in its room without moving, and its bytes are a
    new runtime's; held, the next one is new memory and the held one stays as it was."""
    path = str(tmp_path / "b.db")
    rt = srt.Runtime(path)
    s = rt.session("s")
    for i in range(60):  # about 180 KiB of history
        s.append({"role": "user", "content": f"{i} " + "q" * 1500})
        s.append({"role": "assistant", "content": f"{i} " + "a" * 1500})
    body = s.request("openai.chat", model="m", cache=False)
    address = id(body)
    for i in range(4):
        del body
        s.append({"role": "user", "content": f"more {i}"})
        body = s.request("openai.chat", model="m", cache=False)
        assert id(body) == address
    held = body
    s.append({"role": "user", "content": "held"})
    body = s.request("openai.chat", model="m", cache=False)
    assert body is not held and not held.endswith(b'"held"}]}')
    fresh = srt.Runtime(path)
    try:
        assert body == fresh.session("s").request("openai.chat", model="m", cache=False)
    finally:
        fresh.close()
    rt.close()
