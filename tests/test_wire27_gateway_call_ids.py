"""An Anthropic (``toolu_...``) or Bedrock (``tooluse_...``) tool use id reaches the
gateway's client as the function call's ``call_id`` as it is, beside srt's own item id
(``fc_...``); the client's ``function_call_output`` with that ``call_id`` goes back to
the upstream as a tool result naming the upstream's id. Both ids are in the forms the
OpenAI SDK's models and either upstream accept, and the round trip holds after a
restart of the gateway and on a fork (a second answer to the same response)."""

from __future__ import annotations

import re
from typing import Any

import openai
import pytest

import srt
import srt.gateway
from gateway_support import UPSTREAM_KEY, config, serving
from srt.testing import ProviderServer

TOOLS: Any = [
    {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
CALL = {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}


def _result_id(body: dict[str, Any]) -> str:
    """The tool use id of the tool result the upstream was last sent."""
    block = body["messages"][-1]["content"][-1]
    return str(block["tool_use_id"] if "tool_use_id" in block else block["toolResult"]["toolUseId"])


@pytest.mark.parametrize(
    ("model", "prefix"), [("claude-opus-4-8", "toolu_"), ("bedrock/m", "tooluse_")]
)
def test_an_upstream_tool_id_round_trips_across_a_restart_and_a_fork(
    db_path: str, monkeypatch: pytest.MonkeyPatch, model: str, prefix: str
) -> None:
    monkeypatch.setenv("SRT_GW_UP_KEY", UPSTREAM_KEY)
    with ProviderServer(api_key=UPSTREAM_KEY) as srv:
        with (
            srt.Runtime(db_path) as rt,
            serving(srt.gateway.app(config(srv, open=True), rt)) as url,
        ):
            c = openai.OpenAI(base_url=url, api_key="sk-any", max_retries=0)
            srv.script("*", [CALL])
            with c.responses.stream(model=model, input="weather?", tools=TOOLS) as s:
                first = s.get_final_response()
            (fc,) = first.output
            assert fc.type == "function_call"
            assert fc.call_id.startswith(prefix) and re.fullmatch(
                r"[A-Za-z0-9_-]{1,64}", fc.call_id
            )
            assert fc.id.startswith("fc_") and fc.id != fc.call_id
            answer = c.responses.create(
                model=model,
                previous_response_id=first.id,
                tools=TOOLS,
                input=[{"type": "function_call_output", "call_id": fc.call_id, "output": "sunny"}],
            )
            assert answer.status == "completed"
            assert _result_id(srv.log[-1].body) == fc.call_id
            c.close()
        # a restarted gateway over the same database: the same ids, and a fork of the
        # first response answers the same call
        with (
            srt.Runtime(db_path) as rt,
            serving(srt.gateway.app(config(srv, open=True), rt)) as url,
        ):
            c = openai.OpenAI(base_url=url, api_key="sk-any", max_retries=0)
            again = c.responses.retrieve(first.id)
            (same,) = again.output
            assert same.type == "function_call"
            assert (same.id, same.call_id) == (fc.id, fc.call_id)
            fork = c.responses.create(
                model=model,
                previous_response_id=first.id,
                tools=TOOLS,
                input=[{"type": "function_call_output", "call_id": fc.call_id, "output": "rain"}],
            )
            assert fork.status == "completed" and fork.id != answer.id
            assert _result_id(srv.log[-1].body) == fc.call_id
            items = c.responses.input_items.list(fork.id, order="asc").data
            calls = [(i.id, i.call_id) for i in items if i.type == "function_call"]
            assert calls == [(fc.id, fc.call_id)]
            c.close()
