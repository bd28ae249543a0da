"""A plain reference for the OpenAI Responses and Azure bodies, written from the spec.

It builds each request as a Python dict and serializes it with ``json.dumps`` once,
without using any ``srt.wire`` code, so the tests can compare srt's incrementally
assembled bytes with it. Input messages and tools are canonical dicts (what
``json.loads`` gives for ``srt.message.canonicalize`` / ``canonical_tool`` bytes).

The Hypothesis strategies at the end generate the conversations both test modules use.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import strategies as st


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _input_part(part: dict[str, Any]) -> dict[str, Any]:
    if part["type"] == "text":
        return {"type": "input_text", "text": part["text"]}
    assert part["type"] == "image_url", part
    image = part["image_url"]
    return {
        "type": "input_image",
        "image_url": image["url"],
        "detail": image.get("detail") or "auto",
    }


def responses_items(msg: dict[str, Any], provider: str, model: str) -> list[dict[str, Any]]:
    """The Responses input items for one canonical message."""
    role = msg["role"]
    if role in ("system", "developer", "user"):
        content = msg["content"]
        if isinstance(content, str):
            return [{"role": role, "content": content}]
        return [{"role": role, "content": [_input_part(p) for p in content]}]
    if role == "tool":
        content = msg["content"]
        if not isinstance(content, str):
            content = "".join(p["text"] for p in content)
        return [{"type": "function_call_output", "call_id": msg["tool_call_id"], "output": content}]
    assert role == "assistant"
    items: list[dict[str, Any]] = []
    for art in msg.get("artifacts", []):
        if art["provider"] == provider and art["model"] == model:
            items.append(art["data"])
    content = msg.get("content")
    if isinstance(content, list):
        content = "".join(p["text"] for p in content)
    text_item = {"role": "assistant", "content": content or ""}
    has_text = bool(content)
    calls = [
        {
            "type": "function_call",
            "call_id": call["id"],
            "name": call["function"]["name"],
            "arguments": call["function"]["arguments"],
        }
        for call in msg.get("tool_calls", [])
    ]
    if has_text or (not items and not calls):
        items.append(text_item)
    return items + calls


def responses_tool(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool["function"]
    out = {"type": "function", "name": fn["name"]}
    if "description" in fn:
        out["description"] = fn["description"]
    out["parameters"] = fn.get("parameters")
    out["strict"] = fn.get("strict", False)
    return out


def responses_dict(
    messages: list[dict[str, Any]],
    *,
    model: str,
    tools: list[dict[str, Any]] | None = None,
    params: dict[str, Any] | None = None,
    provider: str = "openai",
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "input": []}
    for msg in messages:
        body["input"].extend(responses_items(msg, provider, model))
    if tools:
        body["tools"] = [responses_tool(t) for t in tools]
    body.update(params or {})
    return body


def responses_body(messages: list[dict[str, Any]], **kw: Any) -> bytes:
    """The ``openai.responses`` body (``provider="azure"`` for ``azure.responses``)."""
    return encode(responses_dict(messages, **kw))


def chat_body(
    messages: list[dict[str, Any]],
    *,
    model: str,
    tools: list[dict[str, Any]] | None = None,
    params: dict[str, Any] | None = None,
) -> bytes:
    """The Chat Completions body (``azure.chat``): canonical messages minus artifacts."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{k: v for k, v in m.items() if k != "artifacts"} for m in messages],
    }
    if tools:
        body["tools"] = tools
    body.update(params or {})
    return encode(body)


def responses_tail(tools: list[dict[str, Any]] | None, params: dict[str, Any] | None) -> bytes:
    """The bytes after the last input item: everything but the growing item list."""
    whole = encode(responses_dict([], model="m", tools=tools, params=params))
    return whole[len(b'{"model":"m","input":[') :]


def chat_tail(tools: list[dict[str, Any]] | None, params: dict[str, Any] | None) -> bytes:
    whole = chat_body([], model="m", tools=tools, params=params)
    return whole[len(b'{"model":"m","messages":[') :]


# -- Hypothesis strategies shared by the test_wire_responses*.py files and test_wire_azure.py

MODELS = ("gpt-5", "o4-mini", "模型-ü")

TEXT = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=24),
    st.sampled_from(
        ["", "\x00", "a\x00b", "naïve — 日本語 🎉", '"q" \\ /', "\u2028\u2029</script>", "\ufeff"]
    ),
)
NAME = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)
CALL_ID = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8).map(
    lambda s: "call_" + s
)
JSON_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)
#: Tool call arguments: a JSON string as the model wrote it (not necessarily valid JSON).
ARGUMENTS = st.one_of(
    st.dictionaries(NAME, JSON_VALUE, max_size=3).map(lambda d: json.dumps(d, ensure_ascii=False)),
    st.just(""),
    TEXT,
)
IMAGE_URL = st.one_of(
    TEXT.map(lambda t: "https://example.com/i.png?q=" + t),
    st.binary(min_size=1, max_size=24).map(  # (an empty image is refused)
        lambda b: "data:image/png;base64," + base64.b64encode(b).decode("ascii")
    ),
)


@st.composite
def image_part(draw: st.DrawFn) -> dict[str, Any]:
    detail = draw(st.sampled_from([None, "low", "high", "auto"]))
    if draw(st.booleans()):
        part: dict[str, Any] = {"type": "image", "data": draw(st.binary(min_size=1, max_size=16))}
        if draw(st.booleans()):
            part["media_type"] = "image/jpeg"
    else:
        part = {"type": "image_url", "image_url": {"url": draw(IMAGE_URL)}}
        if detail is not None:
            part["image_url"]["detail"] = detail
        return part
    if detail is not None:
        part["detail"] = detail
    return part


TEXT_PART = TEXT.map(lambda t: {"type": "text", "text": t})
USER_CONTENT = TEXT | st.lists(TEXT_PART | image_part(), min_size=1, max_size=3)


@st.composite
def artifact(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "provider": draw(st.sampled_from(["openai", "azure", "anthropic"])),
        "model": draw(st.sampled_from(MODELS)),
        "type": "reasoning",
        "data": {
            "type": "reasoning",
            "id": "rs_" + draw(NAME),
            "encrypted_content": draw(TEXT),
            "summary": [{"type": "summary_text", "text": draw(TEXT)}],
        },
    }


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


@st.composite
def turn(draw: st.DrawFn) -> list[dict[str, Any]]:
    """One step of a conversation: a user message, an answer, or a tool-call round."""
    kind = draw(st.sampled_from(["user", "answer", "tools"]))
    if kind == "user":
        return [{"role": "user", "content": draw(USER_CONTENT)}]
    arts = draw(st.lists(artifact(), max_size=2))
    if kind == "answer":
        content = draw(TEXT | st.lists(TEXT_PART, min_size=1, max_size=2))
        msg: dict[str, Any] = {"role": "assistant", "content": content}
        if arts:
            msg["artifacts"] = arts
        return [msg]
    calls = draw(
        st.lists(
            st.builds(tool_call, CALL_ID, NAME, ARGUMENTS),
            min_size=1,
            max_size=3,
        )
    )
    msg = {"role": "assistant", "content": draw(st.none() | TEXT), "tool_calls": calls}
    if arts:
        msg["artifacts"] = arts
    results = [
        {
            "role": "tool",
            "tool_call_id": c["id"],
            "content": draw(TEXT | st.lists(TEXT_PART, min_size=1, max_size=2)),
        }
        for c in calls
    ]
    return [msg, *results]


@st.composite
def conversation(draw: st.DrawFn, max_turns: int = 8) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    if draw(st.booleans()):
        msgs.append({"role": "system", "content": draw(TEXT)})
    if draw(st.booleans()):
        msgs.append({"role": "developer", "content": draw(TEXT | st.lists(TEXT_PART, max_size=2))})
    for t in draw(st.lists(turn(), max_size=max_turns)):
        msgs.extend(t)
    return msgs


@st.composite
def tool_def(draw: st.DrawFn) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": draw(NAME)}
    if draw(st.booleans()):
        fn["description"] = draw(TEXT)
    if draw(st.booleans()):
        fn["parameters"] = {
            "type": "object",
            "properties": draw(st.dictionaries(NAME, st.just({"type": "string"}), max_size=3)),
        }
    if draw(st.booleans()):
        fn["strict"] = draw(st.booleans())
    return {"type": "function", "function": fn}


PARAM_KEYS = (
    "temperature",
    "instructions",
    "store",
    "max_output_tokens",
    "previous_response_id",
    "metadata",
    "top_p",
    "user",
    "reasoning",
)
PARAMS = st.dictionaries(st.sampled_from(PARAM_KEYS), JSON_VALUE, max_size=4)
