"""docs/tasks.md is a test: its Python blocks run in order, in one namespace, against the
local provider server (``OPENAI_BASE_URL``), and the schema it shows is the schema made."""

from __future__ import annotations

import gc
import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest

import srt
from srt.testing import ProviderServer
from srt.testing.tasks import SUMMARY_MARKER

DOC = (Path(__file__).resolve().parent.parent / "docs" / "tasks.md").read_text(encoding="utf-8")
KEY = "sk-srt-docs-test"


def model(endpoint: str, body: Any, units: list[str]) -> Any:
    """Calls ``weather`` for each city the user names, then answers from the results."""
    if SUMMARY_MARKER in units[-1]:
        return "Summary: the user asked about the weather; it is 21 C and sunny."
    if any('"role":"tool"' in u for u in units[-3:]):
        return "It is 21 C and sunny."
    asked = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
    cities = [c for c in ("Paris", "Rome") if c in asked]
    return {"tool_calls": [{"name": "weather", "arguments": {"city": c}} for c in cities]}


def test_the_python_blocks_run_and_the_schema_is_the_one_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC, flags=re.S)
    assert len(blocks) == 5
    five = [ln for ln in blocks[0].splitlines() if ln.strip() and not ln.startswith("import")]
    assert len([ln for ln in five if not ln.startswith(("from ", "    "))]) <= 5
    monkeypatch.chdir(tmp_path)
    ns: dict[str, Any] = {}
    with ProviderServer(api_key=KEY) as srv:
        srv.respond("openai.chat", model)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", srv.url + "/v1")
        # The examples hand ``OpenAI()`` straight to a call, as a script would, and never
        # close it: its pooled socket is closed when it is collected, with a
        # ResourceWarning that says so. That warning is the example's style, not a leak
        # in srt (every srt test closes its providers), so it is ignored here only.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            for i, code in enumerate(blocks):
                exec(compile(code, f"docs/tasks.md block {i + 1}", "exec"), ns)
            ns["p"].close()
            schema, stopped = ns["schema"], ns["events"].result.stopped
            ns.clear()
            gc.collect()
        assert srv.errors == []
    out = capsys.readouterr().out
    assert out.startswith("It is 21 C and sunny.\n")  # the five-line example's answer
    assert "[weather: Paris: 21 C, sunny]" in out and "[weather: Rome: 21 C, sunny]" in out
    (shown,) = re.findall(r"```json\n(.*?)```", DOC, flags=re.S)
    assert json.loads(shown) == schema
    assert stopped == "done"
    with srt.Runtime(str(tmp_path / "tasks.db")) as rt:
        s = rt.session("trip", create=False)
        assert s.messages()[-1] == {"role": "assistant", "content": "It is 21 C and sunny."}
        assert len(s.calls()) == 3  # the task's two model calls and the summary request
