"""``srt chat --tool module:function``: Python functions the model may call.

A spec names a module (importable from the current directory, as ``python -m`` finds
one) and an attribute path in it. Each call the model makes is shown; unless
``--yes`` was given, it runs only once the user answers ``y``.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import SrtError
from ._common import CommandError, escape_line

if TYPE_CHECKING:  # (the tool loop loads when a tool is named: not for every command)
    from ..tasks import ToolCall, ToolRun
    from ..tools import Tool

__all__ = ["ask_approval", "describe", "load_tools", "outcome"]

_SHOWN = 200  # characters of a result shown after a call


def _load(spec: str) -> Tool:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CommandError(f"--tool {spec!r}: give it as module:function")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)  # as `python -m` does: a module in the current directory
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CommandError(f"--tool {spec!r}: cannot import {module_name!r} ({exc})") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CommandError(f"--tool {spec!r}: {module_name} has no {attr!r}") from None
    if not callable(obj):
        raise CommandError(f"--tool {spec!r}: {attr!r} is not a function")
    from ..tools import as_tool

    try:
        return as_tool(obj)
    except SrtError as exc:
        raise CommandError(f"--tool {spec!r}: {exc}") from None


def load_tools(specs: Sequence[str]) -> list[Tool]:
    """The tools named by ``--tool`` options (``CommandError`` for a bad one)."""
    tools = [_load(s) for s in specs]
    names = [t.name for t in tools]
    for name in names:
        if names.count(name) > 1:
            raise CommandError(f"two --tool options give a tool called {name!r}")
    return tools


def describe(call: ToolCall) -> str:
    """``name(arg=value, ...)`` for a call, escaped for the terminal."""
    if call.args is None:
        return escape_line(f"{call.name}({call.arguments})")
    args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in call.args.items())
    return escape_line(f"{call.name}({args})")


def outcome(run: ToolRun) -> str:
    """One line saying how a call went, its result cut to a few words."""
    text = " ".join(run.content.split())
    if len(text) > _SHOWN:
        text = text[: _SHOWN - 1] + "…"
    return escape_line(f"{run.call.name} {run.status}: {text}")


def ask_approval(
    read: Callable[[str], str], say: Callable[[str], None]
) -> Callable[[ToolCall], bool]:
    """The approval hook: show the call, ask ``run it? [y/N]``; only y or yes runs it."""

    def approve(call: ToolCall) -> bool:
        say(f"[tool call] {describe(call)}")
        try:
            answer = read("run it? [y/N] ")
        except EOFError:
            answer = ""
        return answer.strip().lower() in ("y", "yes")

    return approve
