"""docs/api.md's "Compaction and summaries" says where a span starts and which metadata
keys are srt's; these are those statements, run on a real SQLite file and a task run
against the local provider server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import srt
from srt.testing import ProviderServer

SECTION = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text(encoding="utf-8")
SECTION = SECTION.split("### Compaction and summaries", 1)[1].split("\n## ", 1)[0]
KEY = "sk-srt-docs-compaction"


def _said(words: str) -> bool:
    return words in re.sub(r"\s+", " ", SECTION)


def test_the_span_starts_after_the_instructions_and_the_first_user_message(
    tmp_path: Path,
) -> None:
    assert _said(
        "starts by default after the leading system/developer messages and the first user message"
    )
    assert _said("may not start inside the leading system/developer messages")
    with srt.Runtime(str(tmp_path / "c.db")) as rt:
        s = rt.session("a")
        s.append(
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "two"},
            {"role": "user", "content": "three"},
            {"role": "assistant", "content": "four"},
        )
        before = s.messages()
        with pytest.raises(srt.HistoryIndexError):
            s.compact(3, "gone", start=0)
        assert s.messages() == before and s.history() == []
        s.compact(4, "two, three")
        roles = [m["role"] for m in s.messages()]
        assert s.messages()[:2] == before[:2] and roles == ["system", "user", "user", "assistant"]
        (entry,) = [e for e in s.entries() if e.replaced]
        assert entry.index == 2 and list(entry.replaced) == before[2:4]
        # the summary's link is srt_compacted, which messages(metadata=True) leaves out
        assert "metadata" not in s.messages(metadata=True)[2]


def _model(endpoint: str, body: Any, units: list[str]) -> Any:
    if any('"role":"tool"' in u for u in units[-3:]):
        return "It is 21 C."
    return {"tool_calls": [{"name": "weather", "arguments": {"city": "Paris"}}]}


def weather(city: str) -> str:
    """The weather in a city."""
    return f"{city}: 21 C"


def test_a_tool_result_read_back_leaves_srt_tool_out_and_appends_as_it_is(
    tmp_path: Path,
) -> None:
    assert _said("`messages(metadata=True)` and `entries()` leave them out")
    assert _said("a message read back can be appended to another session as it is")
    assert _said("`entries()` gives a tool result's record as `Entry.tool`")
    with srt.Runtime(str(tmp_path / "t.db")) as rt, ProviderServer(api_key=KEY) as srv:
        srv.respond("openai.chat", _model)
        s = rt.session("trip")
        s.append({"role": "user", "content": "Weather in Paris?", "metadata": {"k": 1}})
        p = srt.OpenAI(api_key=KEY, base_url=srv.url + "/v1")
        try:
            assert s.run(p, model="gpt-4o-mini", tools=[weather]).stopped == "done"
        finally:
            p.close()
        assert srv.errors == []
        read = s.messages(metadata=True)
        (result,) = [m for m in read if m["role"] == "tool"]
        assert "metadata" not in result  # (srt_tool was its only key)
        assert read[0]["metadata"] == {"k": 1}
        other = rt.session("copy")
        other.append(*read)  # nothing of srt's comes back, so nothing is refused
        assert other.messages(metadata=True) == read
        (entry,) = [e for e in s.entries() if e.message["role"] == "tool"]
        assert entry.metadata is None
        assert entry.tool is not None and entry.tool["name"] == "weather"
        assert entry.tool["status"] == "ok"
        assert other.entries() == s.entries()  # (the same history: the same nodes, stored once)
        with pytest.raises(srt.InvalidMessageError, match="srt_"):
            other.append({**result, "metadata": {"srt_tool": entry.tool}})
