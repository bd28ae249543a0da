"""Plain reference builders for ``anthropic.messages`` and ``bedrock.converse``.

Each takes canonical message dicts (as ``json.loads(srt.message.canonicalize(m)[0])``
gives them), canonical tool dicts (``json.loads(srt.message.canonical_tool(t))``),
request parameters and the model, builds the whole request body as one Python
dict in one pass (system split off, consecutive same-role messages merged into one
turn) and serializes it with ``json.dumps``. Written from the format's description,
not from ``srt.wire``: the property tests compare the two.

The module also holds the Hypothesis strategies both test modules draw
conversations from.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import strategies as st

DEFAULT_MAX_TOKENS = 4096
BEDROCK_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _params_bytes(params: dict[str, Any]) -> bytes:
    """``,"k":v,...`` for the parameters that follow the message list."""
    return b"," + dumps(params)[1:-1] if params else b""


def _system_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [part["text"] for part in content]


def _split_data_url(url: str) -> tuple[str, str]:
    head, data = url.split(",", 1)
    assert head.startswith("data:") and head.endswith(";base64")
    return head[len("data:") : -len(";base64")], data


def _replayable(msg: dict[str, Any], provider: str, model: str) -> list[Any]:
    return [
        a["data"]
        for a in msg.get("artifacts", [])
        if a["provider"] == provider and a["model"] == model
    ]


# -- Anthropic Messages -------------------------------------------------------------


def _anthropic_part(part: dict[str, Any]) -> dict[str, Any]:
    if part["type"] == "text":
        return {"type": "text", "text": part["text"]}
    url = part["image_url"]["url"]
    if url.startswith("data:"):
        media, data = _split_data_url(url)
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _anthropic_content(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [_anthropic_part(p) for p in content]


def anthropic_blocks(msg: dict[str, Any], model: str) -> tuple[str, list[dict[str, Any]]]:
    """``(wire role, content blocks)`` of one non-system canonical message."""
    role = msg["role"]
    if role == "user":
        return "user", _anthropic_content(msg["content"])
    if role == "tool":
        content = msg["content"]
        if not isinstance(content, str):
            content = [_anthropic_part(p) for p in content]
        return "user", [
            {"type": "tool_result", "tool_use_id": msg["tool_call_id"], "content": content}
        ]
    assert role == "assistant"
    blocks = list(_replayable(msg, "anthropic", model))
    content = msg.get("content")
    if isinstance(content, list):
        blocks += [{"type": "text", "text": p["text"]} for p in content]
    elif content:
        blocks.append({"type": "text", "text": content})
    for call in msg.get("tool_calls", []):
        blocks.append(
            {
                "type": "tool_use",
                "id": call["id"],
                "name": call["function"]["name"],
                "input": json.loads(call["function"]["arguments"] or "{}"),
            }
        )
    return "assistant", blocks


def anthropic_tool(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool["function"]
    out: dict[str, Any] = {"name": fn["name"]}
    if "description" in fn:
        out["description"] = fn["description"]
    out["input_schema"] = fn.get("parameters") or {"type": "object", "properties": {}}
    return out


def anthropic_dict(
    messages: list[dict[str, Any]],
    *,
    model: str,
    tools: list[dict[str, Any]] | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    rest = dict(params or {})
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": rest.pop("max_tokens", DEFAULT_MAX_TOKENS),
    }
    if tools:
        body["tools"] = [anthropic_tool(t) for t in tools]
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for msg in messages:
        if msg["role"] in ("system", "developer"):
            assert not turns, "a system message after the conversation started"
            system += [{"type": "text", "text": t} for t in _system_texts(msg["content"])]
            continue
        role, blocks = anthropic_blocks(msg, model)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    if system:
        body["system"] = system
    body["messages"] = turns
    body.update(rest)
    return body


def anthropic_body(messages: list[dict[str, Any]], **kw: Any) -> bytes:
    return dumps(anthropic_dict(messages, **kw))


def anthropic_tail(messages: list[dict[str, Any]], params: dict[str, Any] | None) -> bytes:
    """The bytes after the last message fragment: end of turn, list, params, body."""
    rest = {k: v for k, v in (params or {}).items() if k != "max_tokens"}
    has_turn = any(m["role"] not in ("system", "developer") for m in messages)
    return (b"]}" if has_turn else b"") + b"]" + _params_bytes(rest) + b"}"


# -- Bedrock Converse ---------------------------------------------------------------


def _bedrock_part(part: dict[str, Any]) -> dict[str, Any]:
    if part["type"] == "text":
        return {"text": part["text"]}
    media, data = _split_data_url(part["image_url"]["url"])
    return {"image": {"format": BEDROCK_IMAGE_FORMATS[media], "source": {"bytes": data}}}


def _bedrock_content(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    return [_bedrock_part(p) for p in content]


def bedrock_blocks(msg: dict[str, Any], model: str) -> tuple[str, list[dict[str, Any]]]:
    role = msg["role"]
    if role == "user":
        return "user", _bedrock_content(msg["content"])
    if role == "tool":
        result = {"toolUseId": msg["tool_call_id"], "content": _bedrock_content(msg["content"])}
        return "user", [{"toolResult": result}]
    assert role == "assistant"
    blocks = list(_replayable(msg, "bedrock", model))
    content = msg.get("content")
    if isinstance(content, list):
        blocks += [{"text": p["text"]} for p in content]
    elif content:
        blocks.append({"text": content})
    for call in msg.get("tool_calls", []):
        use = {
            "toolUseId": call["id"],
            "name": call["function"]["name"],
            "input": json.loads(call["function"]["arguments"] or "{}"),
        }
        blocks.append({"toolUse": use})
    return "assistant", blocks


def bedrock_tool(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool["function"]
    spec: dict[str, Any] = {"name": fn["name"]}
    if "description" in fn:
        spec["description"] = fn["description"]
    spec["inputSchema"] = {"json": fn.get("parameters") or {"type": "object", "properties": {}}}
    return {"toolSpec": spec}


def bedrock_dict(
    messages: list[dict[str, Any]],
    *,
    model: str,
    tools: list[dict[str, Any]] | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if tools:
        body["toolConfig"] = {"tools": [bedrock_tool(t) for t in tools]}
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for msg in messages:
        if msg["role"] in ("system", "developer"):
            assert not turns, "a system message after the conversation started"
            system += [{"text": t} for t in _system_texts(msg["content"])]
            continue
        role, blocks = bedrock_blocks(msg, model)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    if system:
        body["system"] = system
    body["messages"] = turns
    body.update(params or {})
    return body


def bedrock_body(messages: list[dict[str, Any]], **kw: Any) -> bytes:
    return dumps(bedrock_dict(messages, **kw))


def bedrock_tail(messages: list[dict[str, Any]], params: dict[str, Any] | None) -> bytes:
    has_turn = any(m["role"] not in ("system", "developer") for m in messages)
    return (b"]}" if has_turn else b"") + b"]" + _params_bytes(dict(params or {})) + b"}"


# -- conversations for the property tests -------------------------------------------

MODEL = "model-a"
OTHER_MODEL = "model-b"
IMAGE_TYPES = tuple(BEDROCK_IMAGE_FORMATS)

#: Text that is not whitespace alone (which Anthropic and Bedrock refuse, as an empty
#: text): any Unicode scalar value, NUL included, plus a few sharp edges.
texts = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12).filter(
    lambda t: not t.isspace()
) | st.sampled_from(
    ["\x00", "NUL\x00inside", 'quote " and \\ backslash', "a\u2028\u2029", "😀 é 中文", "</x>"]
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(texts, json_values, max_size=4)


@st.composite
def images(draw: st.DrawFn, urls: bool) -> dict[str, Any]:
    if urls and draw(st.booleans()):
        url = "https://example.com/img/" + draw(st.text("abc0123456789", min_size=1)) + ".png"
    else:
        media = draw(st.sampled_from(IMAGE_TYPES))
        data = base64.b64encode(draw(st.binary(min_size=1, max_size=24))).decode("ascii")
        url = f"data:{media};base64,{data}"
    spec: dict[str, Any] = {"url": url}
    if draw(st.booleans()):
        spec["detail"] = "auto"
    return {"type": "image_url", "image_url": spec}


def user_contents(urls: bool) -> st.SearchStrategy[Any]:
    part = st.builds(lambda t: {"type": "text", "text": t}, texts) | images(urls)
    return texts | st.lists(part, min_size=1, max_size=3)


@st.composite
def artifacts(draw: st.DrawFn, provider: str) -> list[dict[str, Any]]:
    owners = st.sampled_from([(provider, MODEL), (provider, OTHER_MODEL), ("openai", MODEL)])
    out = []
    for owner, model in draw(st.lists(owners, min_size=1, max_size=3)):
        if owner == "bedrock":
            data: dict[str, Any] = {
                "reasoningContent": {
                    "reasoningText": {"text": draw(texts), "signature": draw(texts)}
                }
            }
        elif owner == "anthropic" and draw(st.booleans()):
            data = {"type": "redacted_thinking", "data": draw(texts)}
        else:
            data = {"type": "thinking", "thinking": draw(texts), "signature": draw(texts)}
        kind = data.get("type", "reasoningContent")
        out.append({"provider": owner, "model": model, "type": kind, "data": data})
    return out


@st.composite
def conversation_turns(draw: st.DrawFn, provider: str) -> list[list[dict[str, Any]]]:
    """A conversation as turns (lists of raw messages appended together).

    An optional system turn comes first; then user messages, plain assistant
    replies and assistant tool-call messages followed by their results, in any
    order, so consecutive same-role runs occur.
    """
    urls = provider == "anthropic"
    turns: list[list[dict[str, Any]]] = []
    if draw(st.booleans()):
        system = []
        for _ in range(draw(st.integers(1, 2))):
            role = draw(st.sampled_from(["system", "developer"]))
            content = draw(
                texts
                | st.lists(st.builds(lambda t: {"type": "text", "text": t}, texts), min_size=1)
            )
            system.append({"role": role, "content": content})
        turns.append(system)
    calls = 0
    for _ in range(draw(st.integers(1, 7))):
        kind = draw(st.sampled_from(["user", "user", "assistant", "tools"]))
        if kind == "user":
            turns.append([{"role": "user", "content": draw(user_contents(urls))}])
            continue
        msg: dict[str, Any] = {"role": "assistant"}
        if draw(st.booleans()):
            msg["artifacts"] = draw(artifacts(provider))
        if kind == "assistant":
            msg["content"] = draw(
                texts
                | st.lists(st.builds(lambda t: {"type": "text", "text": t}, texts), min_size=1)
            )
            turns.append([msg])
            continue
        msg["content"] = draw(st.none() | st.just("") | texts)
        results = []
        msg["tool_calls"] = []
        for _ in range(draw(st.integers(1, 3))):
            calls += 1
            call_id = f"call_{calls}"
            args = draw(json_objects)
            ensure_ascii = draw(st.booleans())
            arguments = (
                ""
                if not args and draw(st.booleans())
                else json.dumps(args, ensure_ascii=ensure_ascii)
            )
            msg["tool_calls"].append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {
                        "name": draw(st.sampled_from(["lookup", "get_time"])),
                        "arguments": arguments,
                    },
                }
            )
            result: Any = draw(
                st.text(st.characters(codec="utf-8"), max_size=10)
                | st.lists(
                    st.builds(lambda t: {"type": "text", "text": t}, texts), min_size=1, max_size=2
                )
                | (st.lists(images(urls), min_size=1, max_size=1) if urls else st.nothing())
            )
            results.append({"role": "tool", "tool_call_id": call_id, "content": result})
        turns.append([msg, *results])
    return turns


TOOLS = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["lookup", "get_time", "search_web"])},
        optional={
            "description": texts,
            "parameters": st.just(
                {
                    "type": "object",
                    "properties": {"q": {"type": "string", "description": "query"}},
                    "required": ["q"],
                }
            ),
            "strict": st.booleans(),
        },
    ).map(lambda fn: {"type": "function", "function": fn}),
    max_size=3,
    unique_by=lambda t: t["function"]["name"],
)
