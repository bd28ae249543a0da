"""``openai.responses``: Responses input items to canonical messages and back (the items
round trip), and the items that are refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import srt
from srt.message import canonicalize
from srt.wire import build_body
from srt.wire.openai_responses import to_canonical
from test_wire_responses import FMT, REASONING, inputs
from wire_reference_oa import CALL_ID, MODELS, NAME, TEXT

# -- Responses items -> canonical -----------------------------------------------------


def round_trip(items: list[dict[str, Any]], model: str = "gpt-5") -> list[Any]:
    msgs = to_canonical(items, model)
    return inputs(msgs, model)


def test_to_canonical_a_whole_exchange() -> None:
    items: list[dict[str, Any]] = [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "https://x/cat.png", "detail": "high"},
            ],
        },
        REASONING,
        {"role": "assistant", "content": "Let me check."},
        {"type": "function_call", "call_id": "c1", "name": "look", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "look", "arguments": '{"x":1}'},
        {"type": "function_call_output", "call_id": "c1", "output": "a cat"},
        {"type": "function_call_output", "call_id": "c2", "output": "a mat"},
        {"role": "assistant", "content": "A cat."},
    ]
    msgs = to_canonical(items, "gpt-5")
    assert msgs == [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "high"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "look", "arguments": "{}"}},
                {"id": "c2", "type": "function",
                 "function": {"name": "look", "arguments": "{\"x\":1}"}},
            ],
            "artifacts": [
                {"provider": "openai", "model": "gpt-5", "type": "reasoning", "data": REASONING}
            ],
        },
        {"role": "tool", "content": "a cat", "tool_call_id": "c1"},
        {"role": "tool", "content": "a mat", "tool_call_id": "c2"},
        {"role": "assistant", "content": "A cat."},
    ]  # fmt: skip
    assert round_trip(items) == items
    # Another model: the reasoning item is stripped, the rest is unchanged.
    assert inputs(msgs, "gpt-4.1") == [it for it in items if it is not REASONING]


def test_to_canonical_normalisations() -> None:
    items = [
        {"type": "message", "id": "m1", "status": "completed", "role": "user", "content": "hi"},
        {"role": "user",
         "content": [{"type": "input_image", "image_url": "data:image/png;base64,AA=="}]},
        {"role": "user", "content": [{"type": "output_text", "text": "typed as output"}]},
        {"type": "reasoning", "id": "rs", "summary": [], "model": "o3"},
        {
            "type": "message",
            "id": "msg_1",
            "status": "completed",
            "role": "assistant",
            "content": [
                {"type": "refusal", "refusal": "no"},
                {"type": "output_text", "text": "t", "annotations": [], "logprobs": []},
            ],
        },
        {"type": "function_call", "id": "fc_1", "call_id": "c", "name": "f", "arguments": "",
         "status": "completed"},
        {"type": "function_call_output", "id": "fo", "call_id": "c",
         "output": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
    ]  # fmt: skip
    msgs = to_canonical(items)
    assert msgs[3]["artifacts"][0]["model"] == "o3"
    assert "model" not in msgs[3]["artifacts"][0]["data"]
    assert msgs[3]["refusal"] == "no"
    assert inputs(msgs, "o3") == [
        {"role": "user", "content": "hi"},
        {"role": "user", "content": [
            {"type": "input_image", "image_url": "data:image/png;base64,AA==", "detail": "auto"}]},
        {"role": "user", "content": [{"type": "input_text", "text": "typed as output"}]},
        {"type": "reasoning", "id": "rs", "summary": []},
        {"type": "message", "id": inputs(msgs, "o3")[4]["id"], "role": "assistant",
         "status": "completed", "content": [
            {"type": "output_text", "text": "t", "annotations": []},
            {"type": "refusal", "refusal": "no"}]},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": ""},
        {"type": "function_call_output", "call_id": "c", "output": "ab"},
    ]  # fmt: skip


def test_to_canonical_grouping_keeps_item_order() -> None:
    fc = {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}
    msg = {"role": "assistant", "content": "m"}
    empty = {"role": "assistant", "content": ""}
    for items in (
        [msg, REASONING, fc],
        [fc, REASONING],
        [REASONING, fc, REASONING, fc],
        [REASONING, empty, fc],
        [empty, fc],
        [REASONING],
        [msg, msg],
        [fc, msg],
    ):
        assert round_trip(items) == items, items
    assert len(to_canonical([REASONING, msg, fc, fc], "m")) == 1
    assert to_canonical(fc) == to_canonical([fc])


@pytest.mark.parametrize(
    ("items", "match"),
    [
        ([{"type": "web_search_call", "id": "w"}], "web_search_call items"),
        ([{"type": "item_reference", "id": "x"}], "item_reference items"),
        ([REASONING], "without a model"),
        ([{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}], "input_file"),
        ([{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}], "image_url"),
        ([{"role": "user", "content": "x", "phase": "y"}], "phase"),
        ([{"type": "function_call", "call_id": "c", "name": "f", "arguments": "", "ns": 1}], "ns"),
        ([{"role": "critic", "content": "x"}], "critic"),
        ([{"role": "user", "content": [{"type": "refusal", "refusal": "r"}]}], "refusal"),
    ],
)
def test_to_canonical_unsupported(items: list[dict[str, Any]], match: str) -> None:
    with pytest.raises(srt.UnsupportedFeatureError, match=match):
        to_canonical(items)


def test_to_canonical_rejects_non_items() -> None:
    with pytest.raises(srt.InvalidMessageError):
        to_canonical(["not an item"])  # type: ignore[list-item]
    with pytest.raises(srt.InvalidMessageError):
        to_canonical([{"role": "user", "content": 3}])


# Items already in the form render() gives, so the round trip must be exact.
_IN_TEXT = TEXT.map(lambda t: {"type": "input_text", "text": t})
_IN_IMAGE = st.builds(
    lambda u, d: {"type": "input_image", "image_url": u, "detail": d},
    TEXT.map(lambda t: "https://e.com/" + t),
    st.sampled_from(["auto", "low", "high"]),
)
ITEM = st.one_of(
    st.builds(
        lambda r, c: {"role": r, "content": c},
        st.sampled_from(["user", "system", "developer"]),
        TEXT | st.lists(_IN_TEXT | _IN_IMAGE, max_size=3),
    ),
    st.builds(lambda c: {"role": "assistant", "content": c}, TEXT),
    st.builds(
        lambda i, n, a: {"type": "function_call", "call_id": i, "name": n, "arguments": a},
        CALL_ID,
        NAME,
        TEXT,
    ),
    st.builds(
        lambda i, o: {"type": "function_call_output", "call_id": i, "output": o}, CALL_ID, TEXT
    ),
    st.builds(
        lambda i, e, s: {
            "encrypted_content": e,
            "id": "rs_" + i,
            "summary": [{"text": s, "type": "summary_text"}],
            "type": "reasoning",
        },
        NAME,
        TEXT,
        TEXT,
    ),
)


@settings(max_examples=200)
@given(st.lists(ITEM, max_size=10), st.sampled_from(MODELS))
def test_items_round_trip(items: list[dict[str, Any]], model: str) -> None:
    msgs = to_canonical(items, model)
    bodies = [canonicalize(m)[0] for m in msgs]
    body = build_body(FMT, bodies, model=model)
    assert json.loads(body)["input"] == items
    # Key order is kept as well: the rendered items are byte-identical.
    expected = b'{"model":' + json.dumps(model, ensure_ascii=False).encode() + b',"input":['
    expected += b",".join(
        json.dumps(it, ensure_ascii=False, separators=(",", ":")).encode() for it in items
    )
    assert body == expected + b"]}"
    # And to_canonical of what was sent gives the same canonical messages again.
    assert [canonicalize(m)[0] for m in to_canonical(json.loads(body)["input"], model)] == bodies
