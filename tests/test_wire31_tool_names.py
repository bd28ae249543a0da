"""Tool names inside stored history, checked against the target's rules.

A session begun on a server with looser tool name rules (an OpenAI-compatible server
takes ``web.search``; Anthropic takes names up to 128 characters) and then sent to
Bedrock (``ToolUseBlock.name`` is a ``ToolName``: ``[a-zA-Z0-9_-]``, 1 to 64) or
Anthropic (its tools' ``^[a-zA-Z0-9_-]{1,128}$``) sent the stored tool calls' names as
they were: the provider's 400 came after the call was made and recorded. The tool
definitions' names were already refused as the request was built (wire30); the names in
the history now are too, with an ``UnsupportedFeatureError`` naming the assistant
message's call (its index and id) and the name. srt does not rename them: a renamed call
would no longer name the tool the model called, and the reply's calls would have to be
mapped back. Nothing is sent, recorded or appended.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import srt
from srt.errors import UnsupportedFeatureError
from srt.providers import Anthropic
from srt.testing import ProviderServer

KEY = "sk-ant-test-wire31"
LONG = "t" * 65  # (Anthropic takes it; Bedrock does not)
LONGER = "t" * 129  # (neither does)


def _history(name: str) -> list[dict[str, Any]]:
    call = {"id": "call_7", "type": "function", "function": {"name": name, "arguments": "{}"}}
    return [
        {"role": "user", "content": "Search for srt."},
        {"role": "assistant", "content": "On it.", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_7", "content": "found"},
    ]


@pytest.mark.parametrize(
    ("fmt", "name", "longest"),
    [
        ("anthropic.messages", "web.search", 128),
        ("anthropic.messages", "mcp:files/read", 128),
        ("anthropic.messages", "wetter_für", 128),
        ("anthropic.messages", LONGER, 128),
        ("bedrock.converse", "web.search", 64),
        ("bedrock.converse", "web search", 64),
        ("bedrock.converse", LONG, 64),
    ],
)
def test_a_stored_tool_call_name_the_target_refuses_is_refused_naming_the_call(
    rt: srt.Runtime, fmt: str, name: str, longest: int
) -> None:
    s = rt.session("names")
    s.append(_history(name))
    with pytest.raises(UnsupportedFeatureError) as err:
        s.request(fmt, model="m")
    shown = name if len(name) <= 80 else name[:80] + "..."
    assert str(err.value) == (
        f"{fmt} cannot express the tool name {shown!r} ({len(name)} characters): a tool's "
        f"name there is 1 to {longest} ASCII letters, digits, '_' or '-' (an assistant "
        "message's tool_calls[0], call 'call_7')"
    )
    assert err.value.format == fmt


@pytest.mark.parametrize("fmt", ["openai.chat", "openai.responses", "anthropic.messages"])
def test_formats_that_take_the_name_still_send_it(rt: srt.Runtime, fmt: str) -> None:
    s = rt.session("names")
    s.append(_history("web.search" if fmt.startswith("openai") else LONG))
    body = s.request(fmt, model="m")
    assert (b"web.search" if fmt.startswith("openai") else LONG.encode()) in body


@pytest.mark.parametrize("fmt", ["anthropic.messages", "bedrock.converse"])
def test_valid_names_in_history_are_sent_unchanged(rt: srt.Runtime, fmt: str) -> None:
    s = rt.session("names")
    s.append(_history("web_search-2"))
    assert b'"web_search-2"' in s.request(fmt, model="m")


def test_an_anthropic_send_with_a_dotted_name_in_history_sends_nothing(tmp_path: Path) -> None:
    with ProviderServer(api_key=KEY) as srv, srt.Runtime(str(tmp_path / "s.db")) as rt:
        s = rt.session("switch")
        s.append(_history("web.search"))
        provider = Anthropic(api_key=KEY, base_url=srv.url)
        with closing(provider), pytest.raises(UnsupportedFeatureError, match="tool_calls\\[0\\]"):
            s.send(provider, model="claude-sonnet-4-5")
        assert srv.log == []
        assert s.calls() == []
        assert len(s) == 3
