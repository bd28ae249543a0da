"""Bad input gets a typed ``srt`` error (issue 13, item 4), never a bare Python exception.

Each input the issue found raising ``KeyError``, ``TypeError``, ``AttributeError``,
``ValueError`` or ``RecursionError`` is a test here; for each, nothing is written.
Then a Hypothesis property feeds random JSON shapes (message-like dicts whose
blocks carry the keys each format reads, with fields missing, of the wrong type,
nested or NaN) into each wire format's ``to_canonical`` and canonicalizes what comes
back, as ``Session.append`` does: any exception that is not an ``srt.SrtError``
fails it. 10,000 examples (each given to every format) in CI (100,000 with
``SRT_SOAK=1``; ``SRT_REL_EXAMPLES=n`` overrides); every hundredth example also goes
through ``Session.append`` on a real file, which must store it or refuse it without
writing.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import srt
from rel_support.common import SOAK, child_env, emit
from srt.message import canonicalize
from srt.testing import ProviderServer
from srt.wire import anthropic, azure, bedrock, convert, openai_responses

N = int(os.environ.get("SRT_REL_EXAMPLES") or (100_000 if SOAK else 10_000))
APPEND_EVERY = 100


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[srt.Runtime]:
    with srt.Runtime(str(tmp_path / "srt.db")) as runtime:
        yield runtime


def _changes(rt: srt.Runtime) -> int:
    return int(rt.store.db.connection().total_changes())


# -- the inputs the issue listed --------------------------------------------------------

BAD_MESSAGES = {
    "anthropic tool_use without id": {
        "role": "assistant",
        "content": [{"type": "tool_use", "name": "f"}],
    },
    "anthropic base64 image without media_type, data not a string": {
        "role": "user",
        "content": [{"type": "image", "source": {"type": "base64", "data": 5}}],
    },
    "bedrock toolUse with a null id and no name": {
        "role": "assistant",
        "content": [{"toolUse": {"toolUseId": None}}],
    },
}


@pytest.mark.parametrize("case", sorted(BAD_MESSAGES))
def test_listed_messages_are_typed_errors(rt: srt.Runtime, case: str) -> None:
    s = rt.session("s")
    s.append({"role": "user", "content": "before"})
    before = _changes(rt)
    with pytest.raises(srt.InvalidMessageError) as info:
        s.append(BAD_MESSAGES[case])
    assert str(info.value) and "Error" not in str(info.value).split(":")[0]
    assert _changes(rt) == before
    assert s.messages() == [{"role": "user", "content": "before"}]


@pytest.mark.parametrize("window", ["small", 5, object()])
def test_a_window_that_is_not_a_policy_is_a_config_error(rt: srt.Runtime, window: Any) -> None:
    s = rt.session("s")
    s.append({"role": "user", "content": "hi"})
    with pytest.raises(srt.ConfigError, match="WindowPolicy"):
        s.request("openai.chat", model="m", window=window)


@pytest.mark.parametrize("value", ["x", None, 1.5, True, [1]])
def test_max_message_bytes_of_the_wrong_type_is_a_config_error(tmp_path: Path, value: Any) -> None:
    with pytest.raises(srt.ConfigError, match="max_message_bytes"):
        srt.Runtime(str(tmp_path / "srt.db"), max_message_bytes=value)
    assert not (tmp_path / "srt.db").exists()


@pytest.mark.parametrize(
    ("option", "value"),
    [("fragment_cache_bytes", "1"), ("fragment_cache_bytes", None), ("redact", "not callable")],
)
def test_other_options_of_the_wrong_type_are_config_errors(
    tmp_path: Path, option: str, value: Any
) -> None:
    with pytest.raises(srt.ConfigError, match=option):
        srt.Runtime(str(tmp_path / "srt.db"), **{option: value})


@pytest.mark.parametrize("dirs", [5, "/tmp/states", b"/tmp", [5], [None], object()])
def test_gc_state_dirs_that_are_not_a_list_of_paths_are_a_config_error(
    tmp_path: Path, dirs: Any
) -> None:
    """Not a list of paths (a lone string would be read one character at a time): a
    ``ConfigError`` naming the option, before anything is collected."""
    with srt.Runtime(str(tmp_path / "srt.db")) as rt:
        rt.session("s").append({"role": "user", "content": "kept"})
        with pytest.raises(srt.ConfigError, match="state_dirs"):
            rt.gc(state_dirs=dirs)
        assert rt.session("s").messages()[0]["content"] == "kept"
        assert rt.gc(state_dirs=(str(tmp_path / "none"),)).state_files == 0


@pytest.mark.parametrize("path", [5, 1.5, b"/tmp/x.db", ["x"], object()])
def test_a_path_of_the_wrong_type_is_a_config_error(path: Any) -> None:
    with pytest.raises(srt.ConfigError, match="path"):
        srt.Runtime(path)


def test_a_path_with_a_nul_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(srt.ConfigError, match="NUL"):
        srt.Runtime(str(tmp_path / "x" / "a\x00b.db"))
    assert not (tmp_path / "x").exists()


def test_a_path_with_a_lone_surrogate_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(srt.ConfigError, match="surrogate"):
        srt.Runtime(str(tmp_path / "x" / "a\ud800b.db"))
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "tools", [-1, 1.5, True, object(), "get_weather", b"x", {"type": "function"}]
)
def test_tools_that_are_not_a_list_are_typed_errors(rt: srt.Runtime, tools: Any) -> None:
    s = rt.session("s")
    s.append({"role": "user", "content": "hi"})
    for fmt, model in (("openai.chat", "m"), ("anthropic.messages", "claude-3-5-haiku-latest")):
        with pytest.raises(srt.InvalidMessageError, match="tools must be a list"):
            s.request(fmt, model=model, tools=tools)
    assert len(s) == 1


def test_import_of_deeply_nested_json_is_one_error_line(tmp_path: Path) -> None:
    db = str(tmp_path / "srt.db")
    doc = "[" * 100_000 + "]" * 100_000
    p = subprocess.run(
        [sys.executable, "-m", "srt", "--db", db, "import", "--name", "deep", "-"],
        input=doc,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert p.returncode == 1, p.stderr
    assert p.stderr.startswith("srt: error: ") and p.stderr.count("\n") == 1, p.stderr
    assert "Traceback" not in p.stderr
    assert not os.path.exists(db)  # refused before any file or session was created


# -- random JSON shapes into every format's to_canonical --------------------------------

KEYS = [
    # every key some converter reads, and a few it does not
    *("role", "content", "type", "text", "source", "media_type", "data", "url", "id"),
    *("name", "input", "tool_use_id", "is_error", "thinking", "signature", "model"),
    *("toolUse", "toolUseId", "toolResult", "image", "format", "bytes", "status"),
    *("reasoningContent", "cachePoint", "document", "guardContent", "call_id"),
    *("arguments", "output", "refusal", "image_url", "detail", "file_id", "annotations"),
    *("tool_calls", "function", "tool_call_id", "metadata", "cache_control", "x"),
]
TYPES = [
    *("text", "image", "document", "tool_use", "tool_result", "thinking"),
    *("redacted_thinking", "message", "function_call", "function_call_output"),
    *("reasoning", "input_text", "output_text", "input_image", "refusal", "base64"),
    *("url", "image_url", "function", "unknown"),
]
ROLES = ["user", "assistant"] * 6 + ["system", "developer", "tool", "model", ""]
STRINGS = ["", "x", "\x00", "\ud800", "é𝄞", "data:;base64,", "{", *TYPES, *ROLES]
FLOATS = [math.nan, math.inf, -math.inf, 0.5, -0.0, 1e308]
MAX_DEPTH = 6
DEEP = 3000  # a nesting deeper than Python's recursion limit


class Shape:
    """A JSON-like value read from Hypothesis bytes, biased towards what converters read:
    messages with a role and a content list of blocks, each block a few of the keys
    above (and often a known ``type``), any value anywhere (NaN, huge ints, lone
    surrogates, the wrong type, nothing at all), and now and then a nesting deeper
    than Python's recursion limit. Much cheaper to draw than ``st.recursive``."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.i = 0

    def byte(self) -> int:
        if self.i >= len(self.data):
            return 0
        self.i += 1
        return self.data[self.i - 1]

    def pick(self, items: list[Any]) -> Any:
        return items[self.byte() % len(items)]

    def value(self, depth: int) -> Any:
        kind = self.byte() % (12 if depth < MAX_DEPTH else 6)
        if kind == 0:
            return None
        if kind == 1:
            return bool(self.byte() & 1)
        if kind == 2:
            return int.from_bytes(bytes(self.byte() for _ in range(9)), "big", signed=True)
        if kind == 3:
            return self.pick(FLOATS)
        if kind == 4:
            return self.pick(STRINGS)
        if kind == 5:
            n = self.byte() % 8
            return "".join(chr((self.byte() << 8 | self.byte()) % 0x110000) for _ in range(n))
        if kind in (6, 7):
            return [self.value(depth + 1) for _ in range(self.byte() % 4)]
        if kind == 8 and self.byte() == 255:
            deep: Any = []
            for _ in range(DEEP):
                deep = [deep]
            return deep
        return self.block(depth + 1)

    def block(self, depth: int) -> dict[str, Any]:
        out = {self.pick(KEYS): self.value(depth + 1) for _ in range(self.byte() % 5)}
        if self.byte() % 3:
            out["type"] = self.pick(TYPES)
        return out

    def message(self) -> dict[str, Any]:
        msg = {self.pick(KEYS): self.value(2) for _ in range(self.byte() % 3)}
        msg["role"] = self.pick(ROLES)
        if self.byte() % 4:
            msg["content"] = [self.block(2) for _ in range(self.byte() % 4)]
        else:
            msg["content"] = self.value(2)
        return msg

    def top(self) -> Any:
        kind = self.byte() % 8
        if kind < 4:
            return self.message()
        if kind == 4:
            return self.block(1)
        if kind == 5:
            return [self.message() if self.byte() % 2 else self.block(1) for _ in range(3)]
        return self.value(1)


INPUT = st.binary(max_size=400).map(lambda data: Shape(data).top())
MODEL = st.sampled_from([None, "claude-x", "gpt-x", "", 5])


def _chat(msg: Any, model: Any = None) -> list[dict[str, Any]]:
    return convert.to_canonical(msg, model)


FORMATS: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "anthropic": anthropic.to_canonical,
    "bedrock": bedrock.to_canonical,
    "openai.responses": openai_responses.to_canonical,
    "azure.responses": azure.to_canonical_responses,
    "any (srt.wire.convert)": _chat,
}


def test_random_shapes_into_every_to_canonical_give_only_typed_errors(
    tmp_path: Path, capsys: Any, tmp_path_factory: Any
) -> None:
    """Each drawn shape goes to every format's converter (so each gets N examples for
    one draw's cost), then what came back is canonicalized."""
    stats: dict[str, Counter[str]] = {fmt: Counter() for fmt in FORMATS}
    untyped: list[str] = []
    appended: Counter[str] = Counter()
    rt = srt.Runtime(str(tmp_path / "srt.db"))
    s = rt.session("p")
    drawn = [0]

    @settings(
        max_examples=N,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    @given(INPUT, MODEL)
    def prop(value: Any, model: Any) -> None:
        drawn[0] += 1
        for fmt, convert_fn in FORMATS.items():
            try:
                out = convert_fn(value, model)
                for msg in out:
                    canonicalize(msg)
            except srt.SrtError as exc:
                assert str(exc)
                stats[fmt][type(exc).__name__] += 1
            except Exception as exc:  # the property: nothing else may escape
                untyped.append(f"{fmt}: {type(exc).__name__}: {exc} <- {value!r:.300}")
                stats[fmt]["UNTYPED " + type(exc).__name__] += 1
            else:
                stats[fmt]["converted"] += 1
        if drawn[0] % APPEND_EVERY == 0:  # and through append, on a real file
            before = _changes(rt)
            try:
                s.append(value, model=model if isinstance(model, str) else None)
            except srt.SrtError:
                appended["refused"] += 1
                if _changes(rt) != before:
                    untyped.append(f"a refused append wrote something: {value!r:.300}")
            except Exception as exc:
                untyped.append(f"append: {type(exc).__name__}: {exc} <- {value!r:.300}")
            else:
                appended["stored"] += 1

    t0 = time.monotonic()
    prop()
    rt.close()
    figures = {
        "examples_per_format": {fmt: sum(c.values()) for fmt, c in stats.items()},
        "outcomes": {fmt: dict(c) for fmt, c in stats.items()},
        "through_append": dict(appended),
        "untyped": len(untyped),
        "untyped_examples": untyped[:10],
        "seconds": round(time.monotonic() - t0, 1),
        "max_examples": N,
    }
    emit("input_random_shapes", figures, capsys, tmp_path_factory.getbasetemp())
    assert untyped == []
    for fmt, c in stats.items():
        assert sum(c.values()) >= N, fmt
        assert c["converted"] > 0 and len(c) > 2, (fmt, c)  # both outcomes were reached


@pytest.mark.parametrize(
    ("option", "value"),
    [("durability", "fast"), ("durability", None), ("key", 5), ("hash_key", "text")],
)
def test_store_options_of_the_wrong_kind_are_config_errors(
    tmp_path: Path, option: str, value: Any
) -> None:
    with pytest.raises(srt.ConfigError, match=option):
        srt.Runtime(str(tmp_path / "srt.db"), **{option: value})
    assert not (tmp_path / "srt.db").exists()


def test_store_options_go_to_the_store_not_beside_it(tmp_path: Path) -> None:
    from srt.store.sqlite import SQLiteStore

    store = SQLiteStore(str(tmp_path / "srt.db"))
    try:
        with pytest.raises(srt.ConfigError, match="durability"):
            srt.Runtime(store=store, durability="full")
    finally:
        store.close()
    with srt.Runtime(store=SQLiteStore(str(tmp_path / "srt.db"), durability="full")) as rt:
        rt.session("s").append({"role": "user", "content": "synced"})
        mode = rt.store.db.connection().execute("PRAGMA synchronous").get  # type: ignore[attr-defined]
    assert mode == 2  # FULL


def test_call_options_of_the_wrong_kind_are_typed_errors(tmp_path: Path) -> None:
    """What ``send``/``stream``/``run`` take beside the messages: a provider, ``append``,
    ``objects``, ``include_partial``, a provider's URL, a task's tools; nothing is sent
    or written."""
    from srt.providers import Anthropic, Bedrock, OpenAI

    srv = ProviderServer(api_key="k")
    rt = srt.Runtime(str(tmp_path / "srt.db"))
    try:
        p = OpenAI("k", base_url=srv.url + "/v1")
        s = rt.session("s")
        s.append({"role": "user", "content": "hi"})
        cases: list[tuple[type[Exception], str, Any]] = [
            (srt.ConfigError, "provider", lambda: s.send(None, model="m")),
            (srt.ConfigError, "provider", lambda: s.stream("openai", model="m").text()),
            (srt.InvalidMessageError, "append", lambda: s.send(p, model="m", append=5)),
            (srt.ConfigError, "objects", lambda: s.send(p, model="m", objects=[1])),
            (srt.ConfigError, "include_partial", lambda: s.send(p, model="m", include_partial=[])),
            (srt.InvalidMessageError, "tools", lambda: s.run(p, model="m", tools=5)),
            (srt.ConfigError, "base_url", lambda: OpenAI("k", base_url=5)),
            (srt.ConfigError, "base_url", lambda: OpenAI("k", base_url="ftp://x")),
            (srt.ConfigError, "no scheme", lambda: OpenAI("k", base_url="sk-proj-secret-123")),
            (srt.ConfigError, "base_url", lambda: Anthropic("k", base_url=["x"])),
            (srt.ConfigError, "endpoint_url", lambda: Bedrock(region="us-east-1", endpoint_url=1)),
        ]
        for error, what, call in cases:
            with pytest.raises(error, match=what) as info:
                call()
            assert "secret" not in str(info.value)
        assert s.messages() == [{"role": "user", "content": "hi"}] and s.calls() == []
        assert srv.log == []
    finally:
        rt.close()
        srv.close()


@pytest.mark.parametrize("name", [[], 5, "\ud800", "a\x00b"])
def test_ledger_rows_of_a_bad_session_name_are_a_typed_error(rt: srt.Runtime, name: Any) -> None:
    with pytest.raises(srt.InvalidSessionNameError):
        rt.calls(name)


def test_a_size_option_past_the_machine_word_is_a_config_error(tmp_path: Path) -> None:
    for option in ("fragment_cache_bytes", "memory_budget", "max_message_bytes"):
        with pytest.raises(srt.ConfigError, match=f"{option} must be at most"):
            srt.Runtime(str(tmp_path / "srt.db"), **{option: 10**30})
    assert not (tmp_path / "srt.db").exists()
