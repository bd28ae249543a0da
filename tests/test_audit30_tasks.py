"""audit30: ``Session.run`` refuses two tools of one name whichever order they come in
(a function and a definition dict of the same name), before anything is sent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import srt
from srt.testing import ProviderServer
from task_support import make, server


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with server() as s:
        yield s
        assert s.errors == []


def weather(city: str) -> str:
    """The weather in a city."""
    return f"{city}: sunny"


DEFINITION = {
    "type": "function",
    "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}},
}
FLAT = {"type": "function", "name": "weather", "parameters": {"type": "object"}}


@pytest.mark.parametrize(
    "tools",
    [
        [weather, DEFINITION],
        [DEFINITION, weather],
        [weather, FLAT],
        [DEFINITION, FLAT],
    ],
    ids=["function-then-dict", "dict-then-function", "function-then-flat", "dict-then-dict"],
)
def test_two_tools_of_one_name_are_refused_before_a_send(
    rt: srt.Runtime, srv: ProviderServer, tools: list[Any]
) -> None:
    p = make("openai", srv.url)
    s = rt.session("dup")
    s.append({"role": "user", "content": "Weather in Paris?"})
    srv.script("openai.chat", ["Sunny."])
    n = len(s)
    try:
        for call in (s.run, s.run_stream):
            with pytest.raises(srt.ConfigError, match="two tools are called 'weather'"):
                result = call(p, model="gpt-4o", tools=tools)
                for _ in result if call is s.run_stream else ():
                    pass
    finally:
        p.close()
    assert len(s) == n and s.calls() == []
