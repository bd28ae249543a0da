"""``srt.wire.convert.to_canonical``: shape detection and dispatch.

The Anthropic and Bedrock converters belong to their own modules; here they are
replaced by stub modules in ``sys.modules`` so that only the dispatch is tested.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import srt
from srt.message import canonicalize
from srt.wire import convert
from srt.wire.convert import detect, to_canonical

CHAT_MESSAGES: list[dict[str, Any]] = [
    {"role": "user", "content": "hi"},
    {"role": "user", "content": [{"type": "text", "text": "x"}]},
    {"role": "system", "content": [{"type": "text", "text": "sys"}]},
    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/i.png"}}]},
    {"role": "user", "content": [{"type": "image", "data": b"\x89PNG"}]},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}],
    },
    {"role": "tool", "tool_call_id": "c", "content": "42"},
    {"role": "assistant", "content": "ok", "metadata": {"k": 1}},
    {"role": "user", "content": []},
]


@pytest.mark.parametrize("msg", CHAT_MESSAGES)
def test_chat_passes_through(msg: dict[str, Any]) -> None:
    assert detect(msg) == "chat"
    out = to_canonical(msg, "ignored")
    assert out == [msg]
    assert out[0] is not msg  # a copy: the caller's dict is never aliased


def test_message_records_and_lists_of_chat_messages() -> None:
    assert to_canonical(srt.Message("user", "hi")) == [{"role": "user", "content": "hi"}]
    assert detect(CHAT_MESSAGES) == "list"
    assert to_canonical(CHAT_MESSAGES) == CHAT_MESSAGES
    assert to_canonical([]) == []


RESPONSES_SHAPES: list[dict[str, Any]] = [
    {"type": "message", "role": "user", "content": "hi"},
    {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
    {"role": "user", "content": [{"type": "input_image", "image_url": "https://x/i.png"}]},
    {"role": "assistant", "content": [{"type": "output_text", "text": "a"}]},
    {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
    {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "c", "output": "42"},
    {"type": "reasoning", "id": "rs", "summary": [], "encrypted_content": "e"},
]


@pytest.mark.parametrize("item", RESPONSES_SHAPES)
def test_responses_items_dispatch(item: dict[str, Any]) -> None:
    assert detect(item) == "responses"
    out = to_canonical(item, "gpt-5")
    assert len(out) == 1
    canonicalize(out[0])


def test_a_responses_list_is_read_as_one_input() -> None:
    items = [
        {"role": "user", "content": "weather?"},  # plain: reads the same in every format
        {"type": "reasoning", "id": "rs", "summary": []},
        {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "18C"},
    ]
    assert detect(items) == "responses"
    out = to_canonical(items, "o3")
    assert [m["role"] for m in out] == ["user", "assistant", "tool"]
    assert [c["id"] for c in out[1]["tool_calls"]] == ["c1", "c2"]
    assert out[1]["artifacts"][0]["model"] == "o3"
    # Without a model the reasoning item cannot be attributed.
    with pytest.raises(srt.UnsupportedFeatureError, match="without a model"):
        to_canonical(items)


def test_unknown_item_types_go_to_the_responses_converter() -> None:
    assert detect({"type": "web_search_call", "id": "w"}) == "responses"
    with pytest.raises(srt.UnsupportedFeatureError, match="web_search_call"):
        to_canonical({"type": "web_search_call", "id": "w"})


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []

    def __call__(self, msg: Any, model: str | None = None) -> list[dict[str, Any]]:
        self.calls.append((msg, model))
        return [{"role": "user", "content": "converted"}]


def stub(monkeypatch: pytest.MonkeyPatch, name: str, *, via_format: bool = False) -> Recorder:
    rec = Recorder()
    mod = types.ModuleType(f"srt.wire.{name}")
    if via_format:
        mod.FORMAT = types.SimpleNamespace(to_canonical=rec)  # type: ignore[attr-defined]
    else:
        mod.to_canonical = rec  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, f"srt.wire.{name}", mod)
    return rec


ANTHROPIC_SHAPES: list[dict[str, Any]] = [
    {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
    {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "t", "content": "42"}],
    },
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "hm", "signature": "sig"},
            {"type": "text", "text": "a"},
        ],
    },
    {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "opaque"}]},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "see"},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": "AA"},
            },
        ],
    },
    {
        "role": "user",
        "content": [{"type": "document", "source": {"type": "text", "data": "doc"}}],
    },
    # An Anthropic response object: "type": "message" with typed text blocks.
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": "hello"}],
        "stop_reason": "end_turn",
    },
]

BEDROCK_SHAPES: list[dict[str, Any]] = [
    {"role": "user", "content": [{"text": "hi"}]},
    {
        "role": "user",
        "content": [{"image": {"format": "png", "source": {"bytes": b"\x89PNG"}}}],
    },
    {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t", "name": "f", "input": {}}}]},
    {
        "role": "user",
        "content": [{"toolResult": {"toolUseId": "t", "content": [{"text": "42"}]}}],
    },
    {
        "role": "assistant",
        "content": [
            {"reasoningContent": {"reasoningText": {"text": "hm", "signature": "s"}}},
            {"text": "a"},
        ],
    },
]


@pytest.mark.parametrize("msg", ANTHROPIC_SHAPES)
def test_anthropic_dispatch(monkeypatch: pytest.MonkeyPatch, msg: dict[str, Any]) -> None:
    rec = stub(monkeypatch, "anthropic")
    assert detect(msg) == "anthropic"
    assert to_canonical(msg, "claude-x") == [{"role": "user", "content": "converted"}]
    assert rec.calls == [(msg, "claude-x")]


@pytest.mark.parametrize("msg", BEDROCK_SHAPES)
def test_bedrock_dispatch(monkeypatch: pytest.MonkeyPatch, msg: dict[str, Any]) -> None:
    rec = stub(monkeypatch, "bedrock")
    assert detect(msg) == "bedrock"
    assert to_canonical(msg) == [{"role": "user", "content": "converted"}]
    assert rec.calls == [(msg, None)]


def test_dispatch_to_a_format_method(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = stub(monkeypatch, "anthropic", via_format=True)
    to_canonical(ANTHROPIC_SHAPES[0], "m")
    assert rec.calls == [(ANTHROPIC_SHAPES[0], "m")]


def test_a_mixed_list_is_converted_message_by_message(monkeypatch: pytest.MonkeyPatch) -> None:
    anthropic = stub(monkeypatch, "anthropic")
    bedrock = stub(monkeypatch, "bedrock")
    msgs = [CHAT_MESSAGES[0], ANTHROPIC_SHAPES[0], BEDROCK_SHAPES[0], CHAT_MESSAGES[6]]
    assert detect(msgs) == "list"
    out = to_canonical(msgs, "m")
    assert out == [
        CHAT_MESSAGES[0],
        {"role": "user", "content": "converted"},
        {"role": "user", "content": "converted"},
        CHAT_MESSAGES[6],
    ]
    assert anthropic.calls == [(ANTHROPIC_SHAPES[0], "m")]
    assert bedrock.calls == [(BEDROCK_SHAPES[0], "m")]


def test_a_missing_converter_is_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "srt.wire.anthropic", None)
    with pytest.raises(ImportError, match=r"srt\.wire\.anthropic"):
        to_canonical(ANTHROPIC_SHAPES[0])
    monkeypatch.setitem(sys.modules, "srt.wire.bedrock", types.ModuleType("srt.wire.bedrock"))
    with pytest.raises(ImportError, match="no to_canonical"):
        to_canonical(BEDROCK_SHAPES[0])


@pytest.mark.parametrize(
    "value",
    [
        {"role": "user", "content": [{"type": "input_text", "text": "a"}, {"text": "b"}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}, {"text": "b"}]},
        {"type": "message", "role": "user", "content": [{"toolUse": {}}]},
        "hello",
        None,
        ["hello"],
        [[{"role": "user", "content": "x"}]],
    ],
)
def test_ambiguous_or_invalid_shapes(value: Any) -> None:
    with pytest.raises(srt.InvalidMessageError):
        to_canonical(value)


def test_the_module_imports_no_provider_converter_eagerly() -> None:
    source = convert.__loader__.get_source(convert.__name__)  # type: ignore[union-attr]
    assert source is not None
    assert "import anthropic" not in source and "import bedrock" not in source


def test_session_append_accepts_every_provider_shape(tmp_path: Path) -> None:
    """Anthropic, Bedrock and Responses shapes go through ``append`` as given."""
    rt = srt.Runtime(str(tmp_path / "shapes.db"))
    s = rt.session("s")
    s.append({"role": "user", "content": "weather?"})
    s.append(
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Paris"}},
            ],
        },
        model="claude-x",
    )
    s.append(
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}],
        }
    )
    s.append({"role": "assistant", "content": [{"text": "It is sunny."}]})  # Bedrock
    s.append(
        [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "ok"}]}]
    )
    roles = [m["role"] for m in s.messages()]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]
    art = s.messages()[1]["artifacts"][0]
    assert (art["provider"], art["model"], art["data"]["signature"]) == (
        "anthropic",
        "claude-x",
        "sig",
    )
    body = json.loads(s.request("anthropic.messages", model="claude-x", cache=False))
    assert body["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "hmm",
        "signature": "sig",
    }
    body = json.loads(s.request("openai.chat", model="gpt-4o", cache=False))
    assert "artifacts" not in body["messages"][1] and s.last_build.notes
