"""srt.testing refuses what the real APIs refuse, so a regression in srt's own checks
(``srt.wire.images``, ``wire.base.check_tool_name``) cannot go unseen against the fakes.

* The OpenAI fake took an image in a Chat system, developer, assistant or tool message
  with its own wording (``Invalid value for '...type'.``), and any image type, URL
  scheme or ``detail``, in Chat and in the Responses API. It now refuses them in
  OpenAI's words and shape (``param`` as OpenAI gives it): an enum error for the part's
  type, ``invalid_image_format`` for a data URL of no image type or of one OpenAI does
  not take (recorded errors: dify#11527, ai-filemetadata#18), ``Invalid image URL``
  for a URL that is neither http(s) nor data (OmniSearch#3; the Responses API's path
  ends at ``image_url``, opencode#23983), an enum error for ``detail``.
* An OpenAI-compatible server (``ProviderServer(imitate="vllm")`` or ``"llama.cpp"``)
  takes any image, in any message, as srt sends it there (``images.any_image``).
* The Responses API's system and developer messages take the user's input parts (the
  SDK's ``ResponseInputMessageContentList``): the fake refused an image there, which
  srt sends; it now takes it.
* The Bedrock fake took any ``toolUse.name`` in the history (``toolSpec.name`` was
  checked): it now refuses one botocore's ``ToolName`` refuses, as a
  ``ValidationException`` naming the member. The Anthropic fake likewise for a
  ``tool_use`` block's ``name`` (``tools[].name`` was checked).

Each refusal is checked through a raw HTTP request; where srt could be asked to send it,
srt is checked to refuse it first, as the request is built.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

import srt
from srt.errors import UnsupportedFeatureError
from srt.testing import ProviderServer

OPENAI_H = {"Authorization": "Bearer sk-test"}
ANTHROPIC_H = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
BEDROCK_H = {"Authorization": "Bearer bedrock-key"}
PNG_URL = "https://example.com/a.png"
BMP_URL = "data:image/bmp;base64,Qk0="
PDF_URL = "data:application/pdf;base64,JVBERi0="
FILE_URL = "file:///srv/images/a.png"
EXAMPLE = "'data:image/png;base64,aW1nIGJ5dGVzIGhlcmU='"
FORMATS = "You uploaded an unsupported image. Please make sure your image has of one the following formats: ['png', 'jpeg', 'gif', 'webp']."  # noqa: E501


@pytest.fixture
def fake() -> Iterator[tuple[ProviderServer, httpx.Client]]:
    with ProviderServer() as s, httpx.Client(timeout=10) as client:
        yield s, client
    assert s.errors == []


def _error(
    fake: tuple[ProviderServer, httpx.Client], path: str, body: Any, headers: dict[str, str]
) -> Any:
    s, client = fake
    r = client.post(s.url + path, json=body, headers=headers)
    assert r.status_code == 400, r.text
    return r.json()


def _openai(message: str, param: str | None, code: str) -> dict[str, Any]:
    err = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return {"error": err}


def _image(url: str, detail: str | None = None) -> dict[str, Any]:
    spec = {"url": url} if detail is None else {"url": url, "detail": detail}
    return {"type": "image_url", "image_url": spec}


def _chat(role: str, part: dict[str, Any]) -> dict[str, Any]:
    msgs = [{"role": role, "content": [{"type": "text", "text": "See:"}, part]}]
    if role != "user":
        msgs.append({"role": "user", "content": "hi"})
    return {"model": "gpt-4o", "messages": msgs}


def _input(role: str, part: dict[str, Any]) -> dict[str, Any]:
    text = "output_text" if role == "assistant" else "input_text"
    item = {"role": role, "content": [{"type": text, "text": "See:"}, part]}
    return {"model": "gpt-4o", "input": [item, {"role": "user", "content": "hi"}]}


# -- OpenAI: images in messages whose role takes none ----------------------------------


@pytest.mark.parametrize(
    ("role", "supported"),
    [
        ("system", "'text'"),
        ("developer", "'text'"),
        ("assistant", "'text' and 'refusal'"),
    ],
)
def test_chat_refuses_an_image_in_a_message_not_the_users(
    fake: tuple[ProviderServer, httpx.Client], role: str, supported: str
) -> None:
    got = _error(fake, "/v1/chat/completions", _chat(role, _image(PNG_URL)), OPENAI_H)
    assert got == _openai(
        f"Invalid value: 'image_url'. Supported values are: {supported}.",
        "messages[0].content[1].type",
        "invalid_value",
    )


@pytest.mark.parametrize("role", ["system", "developer", "assistant"])
def test_srt_refuses_a_chat_image_in_a_message_not_the_users_first(
    rt: srt.Runtime, role: str
) -> None:
    s = rt.session("roles")
    s.append(_chat(role, _image(PNG_URL))["messages"])
    with pytest.raises(UnsupportedFeatureError) as err:
        s.request("openai.chat", model="m")
    assert f"image_url parts in a {role} message's content[1]" in str(err.value)


def test_responses_refuses_an_image_in_an_assistant_message(
    fake: tuple[ProviderServer, httpx.Client],
) -> None:
    part = {"type": "input_image", "image_url": PNG_URL}
    got = _error(fake, "/v1/responses", _input("assistant", part), OPENAI_H)
    assert got == _openai(
        "Invalid value: 'input_image'. Supported values are: 'output_text' and 'refusal'.",
        "input[0].content[1].type",
        "invalid_value",
    )


@pytest.mark.parametrize("role", ["system", "developer"])
def test_responses_takes_an_image_in_a_system_or_developer_message_as_srt_sends_it(
    fake: tuple[ProviderServer, httpx.Client], rt: srt.Runtime, role: str
) -> None:
    s = rt.session("instructions")
    s.append(_chat(role, _image(PNG_URL))["messages"])
    body = s.request("openai.responses", model="gpt-4o")
    srv, client = fake
    r = client.post(srv.url + "/v1/responses", content=body, headers=OPENAI_H)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed"


# -- OpenAI: image types, URL schemes and details --------------------------------------

CHAT_URL = "messages[0].content[1].image_url.url"
NO_PREFIX = f"Expected a base64-encoded data URL with an image MIME type (e.g. {EXAMPLE}), but got a value without the 'data:' prefix."  # noqa: E501
DETAILS = "Supported values are: 'auto', 'low', 'high', and 'original'."


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        (_image(BMP_URL), _openai(FORMATS, None, "invalid_image_format")),
        (
            _image(PDF_URL),
            _openai(
                "Invalid MIME type. Only image types are supported.", None, "invalid_image_format"
            ),
        ),
        (
            _image(FILE_URL),
            _openai(f"Invalid image URL: '{CHAT_URL}'. {NO_PREFIX}", CHAT_URL, "invalid_value"),
        ),
        (
            _image("ftp://example.com/a.png"),
            _openai(f"Invalid image URL: '{CHAT_URL}'. {NO_PREFIX}", CHAT_URL, "invalid_value"),
        ),
        (
            _image(PNG_URL, "ultra"),
            _openai(
                f"Invalid value: 'ultra'. {DETAILS}",
                "messages[0].content[1].image_url.detail",
                "invalid_value",
            ),
        ),
    ],
    ids=["bmp", "pdf", "file-url", "ftp-url", "detail"],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/openai/deployments/d/chat/completions"])
def test_chat_refuses_an_image_openai_does_not_take(
    fake: tuple[ProviderServer, httpx.Client], path: str, part: Any, expected: Any
) -> None:
    headers = OPENAI_H if path.startswith("/v1") else {"api-key": "azure-key"}
    url = path if path.startswith("/v1") else path + "?api-version=2024-10-21"
    assert _error(fake, url, _chat("user", part), headers) == expected


RESP_URL = "input[0].content[1].image_url"


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        (
            {"type": "input_image", "image_url": BMP_URL},
            _openai(FORMATS, None, "invalid_image_format"),
        ),
        (
            {"type": "input_image", "image_url": FILE_URL},
            _openai(f"Invalid '{RESP_URL}'. {NO_PREFIX}", RESP_URL, "invalid_value"),
        ),
        (
            {"type": "input_image", "image_url": PNG_URL, "detail": "ultra"},
            _openai(
                f"Invalid value: 'ultra'. {DETAILS}", "input[0].content[1].detail", "invalid_value"
            ),
        ),
    ],
    ids=["bmp", "file-url", "detail"],
)
def test_responses_refuses_an_image_openai_does_not_take(
    fake: tuple[ProviderServer, httpx.Client], part: Any, expected: Any
) -> None:
    assert _error(fake, "/v1/responses", _input("user", part), OPENAI_H) == expected


@pytest.mark.parametrize("detail", ["auto", "low", "high", "original"])
def test_every_image_openai_takes_is_taken(
    fake: tuple[ProviderServer, httpx.Client], detail: str
) -> None:
    srv, client = fake
    for url in (PNG_URL, "data:image/webp;base64,UklGRg==", "http://example.com/a.gif"):
        body = _chat("user", _image(url, detail))
        r = client.post(srv.url + "/v1/chat/completions", json=body, headers=OPENAI_H)
        assert r.status_code == 200, r.text
        part = {"type": "input_image", "image_url": url, "detail": detail}
        r = client.post(srv.url + "/v1/responses", json=_input("user", part), headers=OPENAI_H)
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("imitate", ["vllm", "llama.cpp"])
def test_a_compatible_server_takes_any_image_in_any_message(imitate: str) -> None:
    parts = [_image(BMP_URL), _image(FILE_URL), _image(PNG_URL, "ultra")]
    with ProviderServer(imitate=imitate) as srv, httpx.Client(timeout=10) as client:
        for part in parts:
            for role in ("user", "system"):
                body = _chat(role, part)
                r = client.post(srv.url + "/v1/chat/completions", json=body, headers=OPENAI_H)
                assert r.status_code == 200, r.text
            spec = part["image_url"]
            item = {"type": "input_image", "image_url": spec["url"], "detail": spec.get("detail")}
            body = _input("user", {k: v for k, v in item.items() if v is not None})
            r = client.post(srv.url + "/v1/responses", json=body, headers=OPENAI_H)
            assert r.status_code == 200, r.text
    assert srv.errors == []


@pytest.mark.parametrize("fmt", ["openai.chat", "openai.responses", "azure.chat"])
@pytest.mark.parametrize(
    "part", [_image(BMP_URL), _image(FILE_URL), _image(PNG_URL, "ultra")], ids=str
)
def test_srt_refuses_an_image_openai_does_not_take_first(
    rt: srt.Runtime, fmt: str, part: dict[str, Any]
) -> None:
    s = rt.session("images")
    s.append(_chat("user", part)["messages"])
    with pytest.raises(UnsupportedFeatureError):
        s.request(fmt, model="m")


# -- Bedrock and Anthropic: tool names in the history ----------------------------------

BAD_NAMES = ["web.search", "web search", "t" * 65]


def _converse(name: str, spec_name: str = "lookup") -> dict[str, Any]:
    use = {"toolUse": {"toolUseId": "t1", "name": name, "input": {}}}
    result = {"toolResult": {"toolUseId": "t1", "content": [{"text": "found"}]}}
    spec = {"name": spec_name, "inputSchema": {"json": {"type": "object"}}}
    return {
        "messages": [
            {"role": "user", "content": [{"text": "hi"}]},
            {"role": "assistant", "content": [{"text": "On it."}, use]},
            {"role": "user", "content": [result]},
        ],
        "toolConfig": {"tools": [{"toolSpec": spec}]},
    }


def _bedrock_rule(name: str) -> str:
    if len(name) > 64:
        return "Member must have length less than or equal to 64"
    return "Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+"


@pytest.mark.parametrize("name", BAD_NAMES, ids=["dot", "space", "65"])
def test_bedrock_refuses_a_tool_use_name_botocore_refuses(
    fake: tuple[ProviderServer, httpx.Client], name: str
) -> None:
    path = f"/model/{quote('anthropic.claude-3-7-sonnet-20250219-v1:0', safe='')}/converse"
    srv, client = fake
    r = client.post(srv.url + path, json=_converse(name), headers=BEDROCK_H)
    assert (r.status_code, r.headers["x-amzn-ErrorType"]) == (400, "ValidationException")
    got = r.json()
    at = "messages.2.member.content.2.member.toolUse.name"
    assert got == {
        "message": f"1 validation error detected: Value '{name}' at '{at}' failed to satisfy "
        f"constraint: {_bedrock_rule(name)}"
    }
    got = _error(fake, path, _converse("lookup", name), BEDROCK_H)
    at = "toolConfig.tools.1.member.toolSpec.name"
    assert got == {
        "message": f"1 validation error detected: Value '{name}' at '{at}' failed to satisfy "
        f"constraint: {_bedrock_rule(name)}"
    }


ANTHROPIC_BAD = ["web.search", "mcp:files/read", "t" * 129]


def _messages(name: str, tool_name: str = "lookup") -> dict[str, Any]:
    use = {"type": "tool_use", "id": "toolu_1", "name": name, "input": {}}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "found"}
    tool = {"name": tool_name, "input_schema": {"type": "object"}}
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "On it."}, use]},
            {"role": "user", "content": [result]},
        ],
        "tools": [tool],
    }


@pytest.mark.parametrize("name", ANTHROPIC_BAD, ids=["dot", "colon", "129"])
def test_anthropic_refuses_a_tool_use_name_it_does_not_take(
    fake: tuple[ProviderServer, httpx.Client], name: str
) -> None:
    pattern = "String should match pattern '^[a-zA-Z0-9_-]{1,128}$'"
    got = _error(fake, "/v1/messages", _messages(name), ANTHROPIC_H)
    assert got.pop("request_id").startswith("req_")
    assert got == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": f"messages.1.content.1.tool_use.name: {pattern}",
        },
    }
    got = _error(fake, "/v1/messages", _messages("lookup", name), ANTHROPIC_H)
    assert got["error"]["message"] == f"tools.0.name: {pattern}"


def test_names_each_fake_takes_are_taken(fake: tuple[ProviderServer, httpx.Client]) -> None:
    srv, client = fake
    path = f"/model/{quote('anthropic.claude-3-7-sonnet-20250219-v1:0', safe='')}/converse"
    for name in ("lookup", "web_search-2", "t" * 64):
        r = client.post(srv.url + path, json=_converse(name, name), headers=BEDROCK_H)
        assert r.status_code == 200, r.text
    for name in ("lookup", "t" * 128):
        r = client.post(srv.url + "/v1/messages", json=_messages(name, name), headers=ANTHROPIC_H)
        assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("fmt", "name"),
    [("bedrock.converse", n) for n in BAD_NAMES]
    + [("anthropic.messages", n) for n in ANTHROPIC_BAD],
)
def test_srt_refuses_a_tool_call_name_the_fake_refuses_first(
    rt: srt.Runtime, fmt: str, name: str
) -> None:
    call = {"id": "call_7", "type": "function", "function": {"name": name, "arguments": "{}"}}
    s = rt.session("names")
    s.append(
        [
            {"role": "user", "content": "Search."},
            {"role": "assistant", "content": "On it.", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_7", "content": "found"},
        ]
    )
    with pytest.raises(UnsupportedFeatureError) as err:
        s.request(fmt, model="m")
    assert "the tool name" in str(err.value)
