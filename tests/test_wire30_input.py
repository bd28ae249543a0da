"""Input no provider would take is refused before anything is stored or sent.

* An image given as a base64 data URL whose data is not base64, or whose media type is
  not an image's, is refused as the message is accepted (in any shape ``append``
  reads: canonical, Anthropic, Bedrock, Responses), naming the message and the part;
  nothing is written. A media type the target provider does not take is refused as the
  request is built, naming the part.
* A tool's name outside ``[a-zA-Z0-9_-]`` or over the format's longest (64; Anthropic's
  ``tools.N.name`` is ``^[a-zA-Z0-9_-]{1,128}$``) is refused as the request is built, in
  every format, naming the tool; and srt.testing refuses it as each provider does, in
  the provider's words (OpenAI's ``string too long`` and ``string does not match
  pattern`` errors with their codes, read by the official SDK).
* srt.testing's Bedrock ``ValidationException`` for a bad ``toolUseId`` names the
  member as AWS does, counting list members from 1.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
import pytest

import srt
from srt.errors import InvalidMessageError, UnsupportedFeatureError
from srt.testing import ProviderServer
from srt.wire import NAMES

KEY = "sk-test-wire30"
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5E"
    "rkJggg=="
)
#: Not base64: a space, a character outside the alphabet, a missing pad, padding inside.
NOT_BASE64 = [PNG[:20] + " " + PNG[20:], PNG[:-3] + "!==", PNG[:-2], "AA==AA=="]


def _shapes(data: str, media: str = "image/png") -> list[dict[str, Any]]:
    """One user message (text, then the image) in each shape ``append`` reads."""
    url = f"data:{media};base64,{data}"
    src = {"type": "base64", "media_type": media, "data": data}
    return [
        {
            "role": "user",
            "content": [{"type": "text", "text": "See:"}, {"type": "image_url", "image_url": url}],
        },
        {
            "role": "user",
            "content": [{"type": "text", "text": "See:"}, {"type": "image", "source": src}],
        },
        {
            "role": "user",
            "content": [{"text": "See:"}, {"image": {"format": "png", "source": {"bytes": data}}}],
        },
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "See:"},
                {"type": "input_image", "image_url": url},
            ],
        },
    ]


@pytest.mark.parametrize("data", NOT_BASE64)
def test_an_image_whose_data_is_not_base64_is_refused_before_it_is_stored(
    store_rt: srt.Runtime, data: str
) -> None:
    s = store_rt.session("images")
    s.append({"role": "system", "content": "Describe images."})
    for msg in _shapes(data):
        with pytest.raises(InvalidMessageError) as err:
            s.append(msg)
        assert str(err.value).startswith(
            "the user message's content[1] (an image part): its data URL's data is not valid base64"
        ), msg
        assert data not in str(err.value)  # (content is never quoted)
    assert len(store_rt.session("images")) == 1  # nothing was written


def test_an_image_part_that_is_not_an_image_is_refused(store_rt: srt.Runtime) -> None:
    s = store_rt.session("images")
    bad = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": "data:text/plain;base64,aGk="}],
        },
        {"role": "user", "content": [{"type": "image", "data": b"hi", "media_type": "text/plain"}]},
        {"role": "user", "content": [{"type": "image_url", "image_url": "data:;base64,aGk="}]},
    ]
    for msg in bad:
        with pytest.raises(InvalidMessageError, match=r"^the user message's content\[0\] \(an "):
            s.append(msg)
    assert len(s) == 0


def test_a_valid_image_is_taken_in_every_shape(rt: srt.Runtime) -> None:
    s = rt.session("images")
    for msg in _shapes(PNG):
        s.append(msg)
    assert len(s) == 4
    for fmt in NAMES:
        s.request(fmt, model="m")  # every format takes a PNG


@pytest.mark.parametrize(
    "fmt", ["openai.responses", "azure.responses", "anthropic.messages", "bedrock.converse"]
)
def test_an_image_type_the_provider_does_not_take_is_refused_naming_the_part(
    rt: srt.Runtime, fmt: str
) -> None:
    s = rt.session("bmp")
    bmp = {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}
    s.append({"role": "user", "content": [{"type": "text", "text": "See:"}, bmp]})
    with pytest.raises(UnsupportedFeatureError) as err:
        s.request(fmt, model="m")
    assert str(err.value) == (
        f"{fmt} cannot express image/bmp images (a user message's content[1])"
    )


def _tool(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}


@pytest.mark.parametrize("fmt", NAMES)
def test_a_tool_name_a_provider_refuses_is_refused_as_the_request_is_built(
    rt: srt.Runtime, fmt: str
) -> None:
    s = rt.session("tools")
    s.append({"role": "user", "content": "Weather?"})
    longest = 128 if fmt == "anthropic.messages" else 64
    s.request(fmt, model="m", tools=[_tool("w" * longest), _tool("get_weather-2")])
    for name in ("w" * (longest + 1), "get.weather", "get weather", "wetter_ä", "w\n"):
        with pytest.raises(UnsupportedFeatureError) as err:
            s.request(fmt, model="m", tools=[_tool("ok"), _tool(name)])
        shown = name if len(name) <= 80 else name[:80] + "..."
        assert str(err.value) == (
            f"{fmt} cannot express the tool name {shown!r} ({len(name)} characters): a tool's "
            f"name there is 1 to {longest} ASCII letters, digits, '_' or '-'"
        )


# -- srt.testing refuses a tool name as each provider does --------------------------------


def test_srt_testing_refuses_a_chat_tool_name_as_openai_does() -> None:
    with (
        ProviderServer(api_key=KEY) as srv,
        openai.OpenAI(api_key=KEY, base_url=srv.url + "/v1", max_retries=0) as client,
    ):
        cases = {
            "w" * 65: (
                "string too long. Expected a string with maximum length 64, but got a string "
                "with length 65 instead.",
                "string_above_max_length",
            ),
            "get.weather": (
                "string does not match pattern. Expected a string that matches the pattern "
                "'^[a-zA-Z0-9_-]+$'.",
                "invalid_value",
            ),
            "w\n": (
                "string does not match pattern. Expected a string that matches the pattern "
                "'^[a-zA-Z0-9_-]+$'.",
                "invalid_value",
            ),
        }
        for name, (why, code) in cases.items():
            with pytest.raises(openai.BadRequestError) as err:
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "hi"}],
                    tools=[_tool("ok"), _tool(name)],  # type: ignore[list-item]
                )
            p = "tools[1].function.name"
            assert err.value.body == {
                "message": f"Invalid '{p}': {why}",
                "type": "invalid_request_error",
                "param": p,
                "code": code,
            }
            with pytest.raises(openai.BadRequestError) as err:
                client.responses.create(
                    model="gpt-4o-mini",
                    input="hi",
                    tools=[
                        {"type": "function", "name": "ok", "parameters": None, "strict": False},
                        {"type": "function", "name": name, "parameters": None, "strict": False},
                    ],
                )
            assert err.value.body == {
                "message": f"Invalid 'tools[1].name': {why}",
                "type": "invalid_request_error",
                "param": "tools[1].name",
                "code": code,
            }
        ok = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            tools=[_tool("w" * 64)],  # type: ignore[list-item]
        )
        assert ok.choices


def test_srt_testing_refuses_an_anthropic_tool_name_as_anthropic_does() -> None:
    with (
        ProviderServer(api_key=KEY) as srv,
        anthropic.Anthropic(api_key=KEY, base_url=srv.url, max_retries=0) as client,
    ):
        for name in ("w" * 129, "get.weather", "w\n"):
            with pytest.raises(anthropic.BadRequestError) as err:
                client.messages.create(
                    model="claude-opus-4-8",
                    max_tokens=16,
                    messages=[{"role": "user", "content": "hi"}],
                    tools=[{"name": name, "input_schema": {"type": "object"}}],
                )
            assert isinstance(err.value.body, dict)
            assert err.value.body["error"] == {
                "type": "invalid_request_error",
                "message": "tools.0.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'",
            }
        ok = client.messages.create(
            model="claude-opus-4-8",
            max_tokens=16,
            messages=[{"role": "user", "content": "hi"}],
            tools=[{"name": "w" * 128, "input_schema": {"type": "object"}}],
        )
        assert ok.content


# -- srt.testing's Bedrock counts a toolUseId's place as AWS does --------------------------


def test_srt_testing_names_a_bad_tool_result_id_as_aws_does() -> None:
    body = {
        "messages": [
            {"role": "user", "content": [{"text": "hi"}]},
            {
                "role": "assistant",
                "content": [
                    {"text": "Checking."},
                    {"toolUse": {"toolUseId": "call_1", "name": "w", "input": {}}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": "call_1", "content": [{"text": "ok"}]}},
                    {"toolResult": {"toolUseId": "call 2", "content": [{"text": "ok"}]}},
                ],
            },
        ]
    }
    with ProviderServer(api_key=KEY) as srv, httpx.Client(timeout=30) as http:
        r = http.post(
            f"{srv.url}/model/anthropic.claude-sonnet-4-5/converse",
            json=body,
            headers={"authorization": f"Bearer {KEY}"},
        )
    assert r.status_code == 400 and r.headers["x-amzn-ErrorType"] == "ValidationException"
    assert r.json() == {
        "message": "1 validation error detected: Value 'call 2' at 'messages.3.member.content.2."
        "member.toolResult.toolUseId' failed to satisfy constraint: Member must satisfy "
        "regular expression pattern: [a-zA-Z0-9_.:-]+"
    }
