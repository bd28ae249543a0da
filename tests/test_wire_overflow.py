"""``srt.wire.overflow``: each provider's context-window refusal, as the services word it
(the bodies below are the shapes the module's docstring cites), told apart from their
other errors; and the same refusal arriving as a stream's error event."""

from __future__ import annotations

import json
from typing import Any

import pytest

import srt
from srt.wire import get_format, overflow
from srt.wire.base import stream_error
from srt.wire.overflow import Overflow


def _j(obj: Any) -> str:
    return json.dumps(obj)


OPENAI_CHAT = _j(
    {
        "error": {
            "message": "This model's maximum context length is 128000 tokens. However, your "
            "messages resulted in 130412 tokens. Please reduce the length of the messages.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    }
)
OPENAI_RESPONSES = _j(
    {
        "error": {
            "message": "Your input exceeds the context window of this model. Please adjust "
            "your input and try again.",
            "type": "invalid_request_error",
            "param": "input",
            "code": "context_length_exceeded",
        }
    }
)
LLAMA = _j(
    {
        "error": {
            "code": 400,
            "message": "request (4476 tokens) exceeds the available context size (4096 "
            "tokens), try increasing it",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": 4476,
            "n_ctx": 4096,
        }
    }
)
VLLM = _j(
    {
        "error": {
            "message": "This model's maximum context length is 4096 tokens. However, you "
            "requested 5000 tokens (4000 in the messages, 1000 in the completion). Please "
            "reduce the length of the messages or completion.",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    }
)
VLLM_OLD = _j(
    {
        "object": "error",
        "message": "'max_tokens' or 'max_completion_tokens' is too large: 8000. This model's "
        "maximum context length is 4096 tokens and your request has 2778 input tokens "
        "(8000 > 4096 - 2778).",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
)
ANTHROPIC = _j(
    {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "prompt is too long: 208656 tokens > 200000 maximum",
        },
    }
)
ANTHROPIC_WITH_MAX = _j(
    {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "input length and `max_tokens` exceed context limit: 199759 + 8192 > "
            "200000, decrease input length or `max_tokens` and try again",
        },
    }
)
BEDROCK = _j({"message": "Input is too long for requested model."})
VALIDATION = {"x-amzn-ErrorType": "ValidationException:http://internal.amazon.com/coral/"}


@pytest.mark.parametrize(
    ("fmt", "status", "body", "headers", "want"),
    [
        ("openai.chat", 400, OPENAI_CHAT, {}, (130412, 128000)),
        ("azure.chat", 400, OPENAI_CHAT, {}, (130412, 128000)),
        ("openai.responses", 400, OPENAI_RESPONSES, {}, (None, None)),
        ("azure.responses", 400, OPENAI_RESPONSES, {}, (None, None)),
        ("openai.chat", 400, LLAMA, {}, (4476, 4096)),
        ("openai.responses", 400, LLAMA, {}, (4476, 4096)),
        ("openai.chat", 400, VLLM, {}, (4000, 4096)),
        ("openai.chat", 400, VLLM_OLD, {}, (2778, 4096)),
        ("anthropic.messages", 400, ANTHROPIC, {}, (208656, 200000)),
        ("anthropic.messages", 400, ANTHROPIC_WITH_MAX, {}, (199759, 200000)),
        ("bedrock.converse", 400, BEDROCK, VALIDATION, (None, None)),
        ("bedrock.converse", 400, BEDROCK, {}, (None, None)),
    ],
)
def test_each_providers_refusal_is_told(
    fmt: str, status: int, body: str, headers: dict[str, str], want: tuple[Any, Any]
) -> None:
    got = get_format(fmt).context_overflow(status, body, headers)
    assert got is not None and (got.prompt_tokens, got.limit) == want
    assert got.message and got.message in body


@pytest.mark.parametrize(
    ("fmt", "status", "body", "headers"),
    [
        # another 400 of the same provider
        ("openai.chat", 400, _j({"error": {"message": "Invalid 'temperature'", "code": None}}), {}),
        ("openai.chat", 500, OPENAI_CHAT, {}),  # not a 400
        ("openai.chat", 400, "context_length_exceeded, but not JSON", {}),
        ("openai.chat", 400, _j(["context_length_exceeded"]), {}),
        # Anthropic's 413 is the request's bytes, not its tokens
        (
            "anthropic.messages",
            413,
            _j(
                {
                    "type": "error",
                    "error": {
                        "type": "request_too_large",
                        "message": "Request exceeds the maximum allowed number of bytes.",
                    },
                }
            ),
            {},
        ),
        ("anthropic.messages", 400, _j({"type": "error", "error": {"type": "x"}}), {}),
        (
            "anthropic.messages",
            400,
            _j({"type": "error", "error": {"type": "invalid_request_error", "message": "no"}}),
            {},
        ),
        # Bedrock's other 400s, and a body that says it under another exception type
        (
            "bedrock.converse",
            400,
            _j({"message": "Your request exceeds the service quota for your account."}),
            {"x-amzn-ErrorType": "ServiceQuotaExceededException"},
        ),
        ("bedrock.converse", 400, BEDROCK, {"x-amzn-ErrorType": "ModelErrorException"}),
        ("bedrock.converse", 400, _j({"message": "messages: must not be empty"}), VALIDATION),
        # one provider's shape is not another's
        ("anthropic.messages", 400, OPENAI_CHAT, {}),
        ("bedrock.converse", 400, ANTHROPIC, {}),
    ],
)
def test_other_errors_are_not_refusals(
    fmt: str, status: int, body: str, headers: dict[str, str]
) -> None:
    assert get_format(fmt).context_overflow(status, body, headers) is None


@pytest.mark.parametrize(
    ("kind", "message", "want"),
    [
        ("context_length_exceeded", "Your input exceeds the context window of this model.", None),
        ("validationException", "Input is too long for requested model.", None),
        (
            "validationException",
            "The model returned the following errors: prompt is too long: 9 tokens > 8 maximum",
            (9, 8),
        ),
        ("invalid_request_error", "prompt is too long: 9 tokens > 8 maximum", (9, 8)),
    ],
)
def test_a_refusal_as_a_stream_event_is_typed(kind: str, message: str, want: Any) -> None:
    err = stream_error(kind, message)
    assert isinstance(err, srt.ProviderContextOverflowError)
    assert isinstance(err, srt.ContextOverflowError)
    assert err.provider_message == message and err.status is None
    assert (err.prompt_tokens, err.limit) == (want or (None, None))


@pytest.mark.parametrize(
    ("kind", "message"),
    [("server_error", "context_length_exceeded"), ("validationException", "bad field")],
)
def test_other_stream_errors_stay_what_they_were(kind: str, message: str) -> None:
    err = stream_error(kind, message)
    assert type(err) is srt.ProviderResponseError


@pytest.mark.parametrize("nested", [True, False])
def test_a_responses_error_event_flat_or_nested_is_read(nested: bool) -> None:
    """The API sends a streamed call's overflow as ``{"type": "error", "error": {...}}``;
    the SDK's ``ResponseErrorEvent`` has the members on the event: both are read."""
    err = {"type": "invalid_request_error", "code": "context_length_exceeded", "message": "m"}
    event = {"type": "error", "sequence_number": 2}
    event.update({"error": err} if nested else {k: err[k] for k in ("code", "message")})
    fmt = get_format("openai.responses")
    dec = fmt.stream_decoder()
    with pytest.raises(srt.ProviderContextOverflowError) as caught:
        for frame in fmt.encode_stream([("error", event)]):
            dec.feed(frame)
    assert caught.value.provider_message == "m"


def test_overflow_is_a_named_tuple_with_optional_sizes() -> None:
    assert Overflow("m") == ("m", None, None)
    assert overflow.openai(400, LLAMA, {}) == Overflow(
        json.loads(LLAMA)["error"]["message"], 4476, 4096
    )
