"""Token counting (``srt.tokens``): the calibrated estimators against the exact counts on
the corpus, each format's tokenizer (``tokenizer_for``), and chat-request counts (the
OpenAI cookbook's rule, parts, images and tool calls, bad bodies).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from srt.errors import ConfigError, InvalidMessageError
from srt.tokens import (
    CL100K_ESTIMATE,
    CLAUDE_ESTIMATE,
    GENERIC_ESTIMATE,
    IMAGE_TOKENS,
    IMAGE_TOKENS_LOW,
    O200K_ESTIMATE,
    EstimateTokenizer,
    TiktokenTokenizer,
    chat_request_tokens,
    message_tokens,
    openai_encoding,
)
from srt.wire import tokenizer_for
from test_tokens import bodies, corpus, pair, reference

__all__ = ["pair", "reference"]  # the fixtures, imported for the tests here


# -- estimators ----------------------------------------------------------------------


def _errors(est: EstimateTokenizer, exact: TiktokenTokenizer) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for cat, text in corpus():
        n = exact.count(text)
        out.setdefault(cat, []).append((est.count(text) - n) / n)
    return out


@pytest.mark.parametrize(
    ("estimate", "encoding", "band"),
    [
        (O200K_ESTIMATE, "o200k_base", (-0.20, 0.65)),
        (CLAUDE_ESTIMATE, "o200k_base", (-0.20, 0.65)),
        (CL100K_ESTIMATE, "cl100k_base", (-0.30, 0.80)),
    ],
)
def test_estimators_are_calibrated_and_within_their_band(
    estimate: EstimateTokenizer, encoding: str, band: tuple[float, float]
) -> None:
    exact = TiktokenTokenizer(encoding)  # type: ignore[arg-type]
    texts = [t for _, t in corpus()]
    measured = sum(len(t.encode()) for t in texts) / sum(exact.count(t) for t in texts)
    assert estimate.bytes_per_token == round(measured, 2)
    errors = _errors(estimate, exact)
    flat = [e for errs in errors.values() for e in errs]
    assert band[0] <= min(flat) and max(flat) <= band[1], (min(flat), max(flat))
    # Code is close; prose is over-counted and emoji under-counted (documented).
    assert all(abs(e) < 0.16 for e in errors["code"])
    assert min(errors["prose"]) > 0.4 and max(errors["emoji"]) < 0


def test_estimator_basics() -> None:
    est = EstimateTokenizer(4, "estimate:test")
    assert (est.name, est.exact, est.count(""), est.count("abcd"), est.count("abcde")) == (
        "estimate:test",
        False,
        0,
        1,
        2,
    )
    assert est.count("日本") == 2  # 6 UTF-8 bytes
    assert GENERIC_ESTIMATE.bytes_per_token == 4
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError):
            EstimateTokenizer(bad, "x")
    with pytest.raises(ConfigError):
        EstimateTokenizer(3.0, "")


CLAUDE_NAME = CLAUDE_ESTIMATE.name

# -- tokenizer_for (the formats' choice) ---------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model", "name"),
    [
        ("openai", "gpt-4o", "tiktoken:o200k_base"),
        ("openai", "gpt-4o-mini-2024-07-18", "tiktoken:o200k_base"),
        ("openai", "chatgpt-4o-latest", "tiktoken:o200k_base"),
        ("openai", "gpt-4.1-nano", "tiktoken:o200k_base"),
        ("openai", "gpt-4.5-preview", "tiktoken:o200k_base"),
        ("openai", "gpt-5", "tiktoken:o200k_base"),
        ("openai", "gpt-5.1-codex", "tiktoken:o200k_base"),
        ("openai", "o1", "tiktoken:o200k_base"),
        ("openai", "o3-mini", "tiktoken:o200k_base"),
        ("openai", "o4-mini-2025-04-16", "tiktoken:o200k_base"),
        ("OpenAI", "ft:gpt-4o-mini:org::abc", "tiktoken:o200k_base"),
        ("openai", "gpt-4", "tiktoken:cl100k_base"),
        ("openai", "gpt-4-0613", "tiktoken:cl100k_base"),
        ("openai", "gpt-4-turbo", "tiktoken:cl100k_base"),
        ("openai", "gpt-3.5-turbo", "tiktoken:cl100k_base"),
        ("azure", "gpt-35-turbo", "tiktoken:cl100k_base"),
        ("azure", "my-deployment", "tiktoken:o200k_base"),
        ("openai", "some-future-model", "tiktoken:o200k_base"),
        ("anthropic", "claude-sonnet-4-5", CLAUDE_ESTIMATE.name),
        ("bedrock", "anthropic.claude-3-7-sonnet-20250219-v1:0", CLAUDE_ESTIMATE.name),
        ("bedrock", "us.anthropic.claude-haiku-4-5-20251001-v1:0", CLAUDE_ESTIMATE.name),
        (
            "bedrock",
            "arn:aws:bedrock:us-east-1:1:application-inference-profile/x",
            CLAUDE_NAME,
        ),
        ("bedrock", "meta.llama3-1-8b-instruct-v1:0", GENERIC_ESTIMATE.name),
        ("bedrock", "us.amazon.nova-pro-v1:0", GENERIC_ESTIMATE.name),
        ("bedrock", "openai.gpt-oss-120b-1:0", "tiktoken:o200k_base"),
        ("llamacpp", "smollm2", GENERIC_ESTIMATE.name),
    ],
)
def test_tokenizer_for(provider: str, model: str, name: str) -> None:
    assert tokenizer_for(provider, model).name == name


def test_openai_encoding_agrees_with_tiktoken() -> None:
    import tiktoken

    for model in ("gpt-4o", "gpt-4o-2024-08-06", "gpt-4.1-mini", "gpt-5-nano", "o1-preview",
                  "o3", "o4-mini", "gpt-4", "gpt-4-32k", "gpt-3.5-turbo-16k", "gpt-35-turbo",
                  "text-embedding-3-small", "ft:gpt-4o:x", "ft:gpt-3.5-turbo:y"):  # fmt: skip
        assert openai_encoding(model) == tiktoken.encoding_name_for_model(model), model


# -- chat messages ---------------------------------------------------------------------

# OpenAI's cookbook example ("How to count tokens with tiktoken").
COOKBOOK = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more time to touch base on opportunities for "
        "increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]


def cookbook_count(enc: Any, messages: list[dict[str, str]]) -> int:
    """The cookbook's ``num_tokens_from_messages``, verbatim in substance."""
    n = 0
    for message in messages:
        n += 3
        for key, value in message.items():
            n += len(enc.encode(value))
            if key == "name":
                n += 1
    return n + 3


def test_chat_request_follows_the_cookbook(pair: tuple[Any, Any]) -> None:
    tok, ref = pair
    assert chat_request_tokens(tok, bodies(COOKBOOK)) == cookbook_count(ref, COOKBOOK)
    # The cookbook's published counts, which OpenAI's API agreed with.
    assert chat_request_tokens(tok, bodies(COOKBOOK)) == {"tiktoken:o200k_base": 124}.get(
        tok.name, 129
    )
    assert chat_request_tokens(tok, []) == 3


def test_message_parts_images_and_tool_calls() -> None:
    tok = TiktokenTokenizer("o200k_base")
    n = tok.count
    user = {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is in these?"},
            {"type": "image_url", "image_url": {"url": "https://e.x/a.png"}},
            {"type": "image_url", "image_url": {"url": "https://e.x/b.png", "detail": "low"}},
            {"type": "image", "data": b"\x89PNG", "detail": "low"},
            {"type": "input_audio", "input_audio": {"format": "wav", "data": "AAAA"}},
        ],
    }
    (body,) = bodies([user])
    audio = json.dumps(json.loads(body)["content"][4], ensure_ascii=False, separators=(",", ":"))
    expect = 3 + n("user") + n("what is in these?") + IMAGE_TOKENS + 2 * IMAGE_TOKENS_LOW + n(audio)
    assert message_tokens(tok, body) == expect
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
            {"id": "call_2", "function": {"name": "now", "arguments": "{}"}},
        ],
    }
    result = {"role": "tool", "tool_call_id": "call_1", "content": "12°C"}
    b_call, b_result = bodies([call, result])
    assert message_tokens(tok, b_call) == 3 + n("assistant") + n("get_weather") + n(
        '{"city":"Oslo"}'
    ) + n("now") + n("{}")
    assert message_tokens(tok, b_result) == 3 + n("tool") + n("12°C")  # ids are not counted


def test_estimators_count_messages_too() -> None:
    (body,) = bodies([{"role": "user", "content": "x" * 400, "name": "bob"}])
    expect = 3 + CLAUDE_ESTIMATE.count("user") + CLAUDE_ESTIMATE.count("x" * 400) + 1 + 1
    assert message_tokens(CLAUDE_ESTIMATE, body) == expect


@pytest.mark.parametrize("body", [b"", b"not json", b"[1,2]", b'{"content":"x"}', b"\xff"])
def test_bad_bodies(body: bytes) -> None:
    with pytest.raises(InvalidMessageError):
        message_tokens(GENERIC_ESTIMATE, body)
