"""``srt.integrations.agents.SrtSession``: the Agents SDK's ``Runner`` with a tool against
``srt.testing.ProviderServer`` through both OpenAI models, a port of the behaviours the
SDK's own session tests check (run against ``SrtSession`` and the SDK's ``SQLiteSession``),
exact items and the usage ledger. What ``SrtSession`` adds (branches, shared storage,
concurrency, typed errors) is in ``test_integrations_agents_srt``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    SQLiteSession,
    function_tool,
    set_tracing_disabled,
)
from agents.memory import Session as SessionProtocol
from agents.memory import SessionSettings
from openai import AsyncOpenAI

from srt.integrations.agents import SrtSession
from srt.testing import ProviderServer

set_tracing_disabled(True)


Factory = Callable[..., Any]


@pytest.fixture(params=["srt", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    """Opens sessions of one kind on one database file; closes them after the test."""
    opened: list[Any] = []

    def factory(session_id: str, **kw: Any) -> Any:
        if request.param == "srt":
            s: Any = SrtSession(session_id, tmp_path / "srt.db", **kw)
        else:
            s = SQLiteSession(session_id, tmp_path / "agents.db", **kw)
        opened.append(s)
        return s

    yield factory
    for s in opened:
        s.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- the SDK's session behaviours, on both sessions -------------------------------------------


def test_is_a_session(make: Factory) -> None:
    assert isinstance(make("proto"), SessionProtocol)


def test_add_get_and_clear(make: Factory) -> None:
    s = make("direct")
    items = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there!"}]
    run(s.add_items(items))
    assert run(s.get_items()) == items
    run(s.clear_session())
    assert run(s.get_items()) == []


def test_order_is_kept_across_calls(make: Factory) -> None:
    s = make("order")
    for i in range(12):
        run(s.add_items([{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"}]))
    assert [it["content"] for it in run(s.get_items())] == [f"m{i}" for i in range(12)]


def test_pop_item(make: Factory) -> None:
    s = make("pop")
    assert run(s.pop_item()) is None
    items = [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi there!"},
        {"role": "user", "content": "How are you?"},
    ]
    run(s.add_items(items))
    assert run(s.pop_item()) == items[2]
    assert run(s.get_items()) == items[:2]
    assert run(s.pop_item()) == items[1]
    assert run(s.pop_item()) == items[0]
    assert run(s.pop_item()) is None
    assert run(s.get_items()) == []


def test_pop_leaves_other_sessions_alone(make: Factory) -> None:
    one, two = make("session_1"), make("session_2")
    run(one.add_items([{"role": "user", "content": "Session 1 message"}]))
    run(two.add_items([{"role": "user", "content": "Session 2 message 1"}]))
    run(two.add_items([{"role": "user", "content": "Session 2 message 2"}]))
    assert run(two.pop_item())["content"] == "Session 2 message 2"
    assert run(one.get_items()) == [{"role": "user", "content": "Session 1 message"}]
    assert run(two.get_items()) == [{"role": "user", "content": "Session 2 message 1"}]


def test_get_items_limit(make: Factory) -> None:
    s = make("limit")
    items = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"Message {i}"} for i in range(6)
    ]
    run(s.add_items(items))
    assert run(s.get_items()) == items
    assert run(s.get_items(limit=2)) == items[-2:]
    assert run(s.get_items(limit=4)) == items[-4:]
    assert run(s.get_items(limit=10)) == items
    assert run(s.get_items(limit=0)) == []


def test_unicode_and_sql_text(make: Factory) -> None:
    s = make("text")
    items = [
        {"role": "user", "content": "こんにちは"},
        {"role": "assistant", "content": "😊👍"},
        {"role": "user", "content": "O'Reilly"},
        {"role": "assistant", "content": "Robert'); DROP TABLE students;--"},
        {"role": "user", "content": '"SELECT * FROM users WHERE name = "admin";"'},
    ]
    run(s.add_items(items))
    assert run(s.get_items()) == items


def test_concurrent_add_from_threads(make: Factory) -> None:
    s = make("concurrent")
    items = [{"role": "user", "content": f"Message {i}"} for i in range(20)]

    def add(item: dict[str, str]) -> None:
        asyncio.run(s.add_items([item]))

    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        list(pool.map(add, items))
    got = run(s.get_items())
    assert len(got) == 20
    assert sorted(it["content"] for it in got) == sorted(it["content"] for it in items)


def test_concurrent_add_from_tasks(make: Factory) -> None:
    s = make("tasks")

    async def main() -> None:
        await asyncio.gather(
            *(
                s.add_items(
                    [
                        {"role": "user", "content": f"t{i}"},
                        {"role": "assistant", "content": f"a{i}"},
                    ]
                )
                for i in range(10)
            )
        )

    run(main())
    got = run(s.get_items())
    assert len(got) == 20
    # Each add_items call stays in one piece and in order.
    for j in range(0, 20, 2):
        assert got[j]["content"][1:] == got[j + 1]["content"][1:]


def test_settings(make: Factory) -> None:
    assert make("default").session_settings.limit is None
    assert make("ctor", session_settings=SessionSettings(limit=5)).session_settings.limit == 5
    s = make("dict", session_settings={"limit": 3})
    assert isinstance(s.session_settings, SessionSettings)
    run(s.add_items([{"role": "user", "content": f"Message {i}"} for i in range(5)]))
    assert [it["content"] for it in run(s.get_items())] == [f"Message {i}" for i in (2, 3, 4)]
    assert [it["content"] for it in run(s.get_items(limit=2))] == ["Message 3", "Message 4"]
    with pytest.raises(TypeError, match="Unknown session settings: limitt"):
        make("bad", session_settings={"limitt": 1})


# Items as the SDK writes them, and some it passes through from users and hosted tools.
ITEMS: list[dict[str, Any]] = [
    {"content": "what is 2+3?", "role": "user"},
    {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_text", "text": "and this picture?"},
            {
                "type": "input_image",
                "image_url": "data:image/png;base64,iVBORw0KGgo=",
                "detail": "low",
            },
        ],
    },
    {
        "id": "rs_1",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "add them"}],
        "encrypted_content": "gAAAAB-opaque",
    },
    {
        "arguments": '{"a":2,"b":3}',
        "call_id": "call_1",
        "name": "add",
        "type": "function_call",
        "id": "fc_1",
        "status": "completed",
    },
    {"call_id": "call_1", "output": "5", "type": "function_call_output"},
    {
        "id": "__fake_id__",
        "content": [
            {"annotations": [], "text": "the sum is 5", "type": "output_text", "logprobs": []}
        ],
        "role": "assistant",
        "status": "completed",
        "type": "message",
        "provider_data": {"model": "gpt-4o-mini", "response_id": "chatcmpl-1"},
    },
    {
        "type": "web_search_call",
        "id": "ws_1",
        "status": "completed",
        "action": {"type": "search", "query": "srt"},
    },
    {"type": "item_reference", "id": "msg_0"},
    {"role": "system", "content": "be terse"},
    {
        "type": "computer_call_output",
        "call_id": "cc_1",
        "output": {"type": "computer_screenshot", "image_url": "data:image/png;base64,AA=="},
    },
]


def test_items_come_back_exactly(make: Factory) -> None:
    s = make("exact")
    run(s.add_items(copy.deepcopy(ITEMS)))
    got = run(s.get_items())
    assert got == ITEMS
    assert [list(i) for i in got] == [list(i) for i in ITEMS]  # key order too


# -- the Runner with a tool, through both OpenAI models ---------------------------------------


@function_tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_runner_with_a_tool(make: Factory, api: str) -> None:
    s = make("run-" + api)

    async def main(url: str) -> tuple[Any, Any, list[Any]]:
        async with AsyncOpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as client:
            model: Any = (
                OpenAIChatCompletionsModel("gpt-4o-mini", client)
                if api == "chat"
                else OpenAIResponsesModel("gpt-4o-mini", client)
            )
            agent = Agent(name="calc", instructions="be terse", tools=[add], model=model)
            first = await Runner.run(agent, "what is 2+3?", session=s)
            second = await Runner.run(agent, "thanks", session=s)
            return first, second, await s.get_items()

    with ProviderServer() as srv:
        calc = {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]}
        srv.script(api, [calc, "the sum is 5", "you are welcome"])
        first, second, items = run(main(srv.url))
        assert first.final_output == "the sum is 5"
        assert second.final_output == "you are welcome"
        kinds = [i.get("type", "message") for i in items]
        assert kinds == [
            "message",
            "function_call",
            "function_call_output",
            "message",
            "message",
            "message",
        ]
        assert items[2]["output"] == "5"
        # The third request carried the whole history, as the session gave it back.
        sent = srv.log[-1].body
        texts = json.dumps(sent["messages"] if api == "chat" else sent["input"])
        assert "what is 2+3?" in texts and "the sum is 5" in texts and "thanks" in texts
        assert srv.errors == []
        if isinstance(s, SrtSession):
            # The usage ledger has the three requests, two in turn 1 and one in turn 2,
            # with the server's own counts.
            turns = run(s.turn_usage())
            assert [t["requests"] for t in turns] == [2, 1]
            assert sum(t["input_tokens"] for t in turns) == sum(r.prompt_tokens for r in srv.log)
