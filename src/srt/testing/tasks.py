"""A scripted, deterministic tool-using model for ``ProviderServer.respond``.

``ScriptedTask(steps)`` answers a request by looking at the conversation it is sent:
step ``k`` (the number of its own steps already in the conversation) is answered with
the tool calls ``steps[k]``, and once every step is there with the final text. A
request for a summary (``SUMMARY_MARKER`` in its last message) gets a short one. The
step is read from the call ids (``call_<tag><k>_<i>``), which every wire format
carries in its tool calls and results, so the answer depends only on what the
request holds: a request repeated after a crash gets the same answer, in every
format, with or without a stored Responses chain.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = ["SUMMARY_MARKER", "ScriptedTask", "plan"]

#: A request whose last message holds this (the start of srt.summarize's instructions)
#: asks for a summary: it is answered with a short summary of the steps done.
SUMMARY_MARKER = "Summarize the conversation so far"


class ScriptedTask:
    """``steps[k]`` is the list of ``(tool name, arguments)`` the model calls at step
    ``k`` (several: parallel calls); then it answers ``final``."""

    def __init__(
        self,
        steps: Sequence[Sequence[tuple[str, dict[str, Any]]]],
        *,
        final: str = "All done.",
        tag: str = "t",
        text: str = "",
    ) -> None:
        if not re.fullmatch(r"[a-z]+", tag):
            raise ValueError("tag must be lower-case letters")
        self.steps = [list(s) for s in steps]
        self.final = final
        self.tag = tag
        self.text = text
        self._ids = re.compile(rf"call_{tag}(\d+)_\d+")
        self.summaries = 0

    def step_of(self, units: Sequence[str]) -> int:
        """How many of this task's steps the conversation already holds."""
        seen = [int(m) for u in units for m in self._ids.findall(u)]
        return max(seen) + 1 if seen else 0

    def __call__(self, endpoint: str, body: Any, units: list[str]) -> Any:
        k = self.step_of(units)
        if units and SUMMARY_MARKER in units[-1]:
            self.summaries += 1
            return f"Summary: the first {k} steps of the task are done and their results known."
        if k >= len(self.steps):
            return self.final
        calls = [
            {"name": name, "arguments": args, "id": f"call_{self.tag}{k}_{i}"}
            for i, (name, args) in enumerate(self.steps[k])
        ]
        return {"text": self.text, "tool_calls": calls} if self.text else {"tool_calls": calls}


def plan(
    steps: int, tools: Sequence[str], *, parallel: Sequence[int] = (1, 2, 3)
) -> list[list[tuple[str, dict[str, Any]]]]:
    """A ``steps``-step plan over ``tools``: step ``k`` makes ``parallel[k % len]``
    calls, cycling through the tools, each with a unique ``key`` argument."""
    out: list[list[tuple[str, dict[str, Any]]]] = []
    j = 0
    for k in range(steps):
        calls = []
        for i in range(parallel[k % len(parallel)]):
            calls.append((tools[j % len(tools)], {"key": f"s{k}c{i}"}))
            j += 1
        out.append(calls)
    return out
