"""Helpers of the task tests (``tests/test_tasks*.py``): providers on the local server,
tools that count their runs in a side file, and a check that tool calls and results
are paired in a request body of any wire format."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Literal

from srt.providers import Provider
from srt.testing import ProviderServer
from srt.tools import tool
from support import provider_on

KEY = "sk-srt-tasks-test"
MODELS = {
    "openai": "gpt-4o",
    "responses": "gpt-4o",
    "azure": "gpt-4o",
    "anthropic": "claude-sonnet-4-6",
    "bedrock": "anthropic.claude-sonnet-4-6",
}


def make(kind: str, url: str) -> Provider:
    return provider_on(kind, url, KEY)


def server() -> ProviderServer:
    return ProviderServer(api_key=KEY)


class SideFile:
    """Tools append one line per run to a file opened with O_APPEND (one ``write``
    each, so lines from processes and threads never interleave)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def log(self, line: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)

    def lines(self) -> list[str]:
        try:
            with open(self.path, encoding="utf-8") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []


def three_tools(side: SideFile, pause: Any = None) -> list[Any]:
    """``lookup`` (sync), ``fetch`` (async) and ``compute`` (sync, idempotent), each
    logging ``name key`` before it works; ``pause()`` gives each run's sleep."""

    def wait() -> float:
        return float(pause()) if pause is not None else 0.0

    def lookup(key: str) -> str:
        """Look a key up in the catalogue.

        Args:
            key: The catalogue key.
        """
        side.log(f"lookup {key}")
        time.sleep(wait())
        return f"lookup {key}: found"

    async def fetch(key: str, mode: Literal["fast", "slow"] = "fast") -> dict[str, Any]:
        """Fetch a record.

        Args:
            key: The record's key.
            mode: How hard to try.
        """
        import asyncio

        side.log(f"fetch {key}")
        await asyncio.sleep(wait())
        return {"key": key, "mode": mode, "ok": True}

    @tool(idempotent=True)
    def compute(key: str) -> int:
        """Compute a checksum of a key (no side effects, safe to repeat).

        Args:
            key: The key.
        """
        side.log(f"compute {key}")
        time.sleep(wait())
        return sum(key.encode())

    return [lookup, fetch, compute]


def wire_pairs(endpoint: str, body: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(tool call ids, tool result ids) in a request body, in order."""
    calls: list[str] = []
    results: list[str] = []
    if endpoint.endswith(".responses"):
        for item in body.get("input") or []:
            if item.get("type") == "function_call":
                calls.append(item["call_id"])
            elif item.get("type") == "function_call_output":
                results.append(item["call_id"])
        return calls, results
    if endpoint.endswith(".chat"):
        for m in body["messages"]:
            calls += [c["id"] for c in m.get("tool_calls") or []]
            if m["role"] == "tool":
                results.append(m["tool_call_id"])
        return calls, results
    for m in body["messages"]:
        for block in m["content"] if isinstance(m["content"], list) else []:
            if block.get("type") == "tool_use":
                calls.append(block["id"])
            elif block.get("type") == "tool_result":
                results.append(block["tool_use_id"])
            elif "toolUse" in block:
                calls.append(block["toolUse"]["toolUseId"])
            elif "toolResult" in block:
                results.append(block["toolResult"]["toolUseId"])
    return calls, results


def assert_paired(srv: ProviderServer) -> int:
    """Every request the server saw pairs each tool call with exactly one result (a
    Responses request chained on a stored response may start with results whose calls
    the server holds). Returns the number of requests checked."""
    n = 0
    for rec in srv.log:
        if not isinstance(rec.body, dict) or rec.endpoint.endswith("count_tokens"):
            continue
        calls, results = wire_pairs(rec.endpoint, rec.body)
        assert len(results) == len(set(results)), f"request {rec.seq}: a result twice"
        if rec.body.get("previous_response_id") is None:
            assert sorted(calls) == sorted(results), f"request {rec.seq}: unpaired tools"
        else:
            assert set(calls) <= set(results), f"request {rec.seq}: a call without result"
        n += 1
    return n


def chain_pairs(messages: list[dict[str, Any]]) -> None:
    """In a session's history, every assistant tool call is followed by exactly one
    result before the next non-tool message, and no result is orphaned."""
    open_calls: set[str] = set()
    for m in messages:
        if m["role"] == "tool":
            assert m["tool_call_id"] in open_calls, m
            open_calls.discard(m["tool_call_id"])
            continue
        assert not open_calls, f"calls without results: {open_calls}"
        open_calls = {c["id"] for c in m.get("tool_calls") or []}


def json_of(rec: Any) -> str:
    return json.dumps(rec.body)
