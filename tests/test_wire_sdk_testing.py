"""``srt.testing`` speaks as the API does, checked with the official SDK's models, for
what ``tests/test_sdk_models.py`` does not reach: Chat Completions with ``n`` choices.
A streamed reply with ``n`` choices streams each one's chunks under its ``index`` (only
choice 0 was streamed), every chunk a valid ``ChatCompletionChunk``; srt keeps choice 0,
streamed or not.
"""

from __future__ import annotations

import json
from contextlib import closing
from typing import Any

import httpx
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import srt
from srt.providers import OpenAI
from srt.testing import ProviderServer
from srt.wire.sse import SSEDecoder

KEY = "sk-sdk-testing-key"
REPLIES: dict[str, Any] = {
    "text": "Three choices, one text.",
    "calls": {
        "text": "Checking.",
        "tool_calls": [{"name": "weather", "arguments": {"city": "Köln", "unit": "C"}}],
    },
}


@pytest.fixture(scope="module")
def srv() -> Any:
    with ProviderServer() as server:
        yield server


def _post(srv: ProviderServer, body: dict[str, Any]) -> httpx.Response:
    with httpx.Client(timeout=30) as http:
        r = http.post(
            srv.url + "/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {KEY}"},
        )
    assert r.status_code == 200, r.text
    return r


@pytest.mark.parametrize("usage", [False, True])
@pytest.mark.parametrize("kind", sorted(REPLIES))
def test_n_choices_stream_each_choice_and_validate(
    srv: ProviderServer, kind: str, usage: bool
) -> None:
    body: dict[str, Any] = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "n": 3,
    }
    srv.script("openai.chat", [REPLIES[kind]])
    whole = ChatCompletion.model_validate(_post(srv, body).json())
    assert [c.index for c in whole.choices] == [0, 1, 2]

    srv.script("openai.chat", [REPLIES[kind]])
    body |= {"stream": True} | ({"stream_options": {"include_usage": True}} if usage else {})
    events = list(SSEDecoder().feed(_post(srv, body).content))
    assert events[-1].data == "[DONE]"
    per_choice: dict[int, list[str]] = {}
    calls: dict[int, str] = {}
    for ev in events[:-1]:
        chunk = ChatCompletionChunk.model_validate(json.loads(ev.data))
        for c in chunk.choices:
            per_choice.setdefault(c.index, []).append(c.delta.content or "")
            for tc in c.delta.tool_calls or ():
                calls[c.index] = calls.get(c.index, "") + (tc.function.arguments or "")
    assert sorted(per_choice) == [0, 1, 2]
    texts = {"".join(v) for v in per_choice.values()}
    assert texts == {whole.choices[0].message.content}
    if kind == "calls":
        assert set(calls) == {0, 1, 2}
        assert {json.loads(a)["city"] for a in calls.values()} == {"Köln"}
    if usage:
        last = ChatCompletionChunk.model_validate(json.loads(events[-2].data))
        assert last.choices == [] and last.usage is not None


def test_srt_keeps_choice_zero_of_n_streamed_or_not(srv: ProviderServer, tmp_path: Any) -> None:
    with (
        srt.Runtime(str(tmp_path / "n.db")) as rt,
        closing(OpenAI(api_key=KEY, base_url=srv.url + "/v1")) as provider,
    ):
        sent, streamed = rt.session("sent"), rt.session("streamed")
        for s in (sent, streamed):
            s.append({"role": "user", "content": "hi"})
        srv.script("openai.chat", [REPLIES["calls"], REPLIES["calls"]])
        sent.send(provider, model="gpt-4o", n=3)
        text = "".join(streamed.stream(provider, model="gpt-4o", n=3))
        assert text == "Checking."
        one, other = sent.messages()[-1], streamed.messages()[-1]
        assert one["content"] == other["content"] == "Checking."
        assert one["tool_calls"][0]["function"] == other["tool_calls"][0]["function"]
        assert len(other["tool_calls"]) == 1  # (choice 1 and 2's calls are not merged in)
