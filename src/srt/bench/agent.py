"""The ``agent`` workload: a tool-call loop with large tool results.

Per task: a user request, then 2-8 rounds of an assistant message with one or two
tool calls whose results are 2-16 KB each, then an answer (``workloads.agent``). Every
model call is a request: srt builds the next body (OpenAI Chat with three tool
definitions, and Anthropic Messages) from frozen fragments; the stateless client
``json.dumps`` (and ``orjson.dumps``) the whole history and tools each call. Appends
are timed beside bare APSW writes of the same rows, as in ``chat``.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any

from .. import _core
from ..message import canonicalize
from ..runtime import Runtime
from . import workloads
from .chat import BareWriter, _file_size, _orjson, _pct
from .naive import MODEL

ANTHROPIC = "claude-sonnet-4-5"


def run_agent(
    workdir: str,
    tasks: int = 60,
    *,
    seed: int = 1,
    tail: int = 50,
    correctness: bool = False,
    progress: Any = None,
) -> dict[str, Any]:
    path = os.path.join(workdir, "agent.db")
    rt = Runtime(path)
    s = rt.session("agent")
    bare = BareWriter(os.path.join(workdir, "agent-bare.db"))
    bare_prefix = _core.ROOT
    orjson = _orjson()
    tools = workloads.TOOLS
    system, steps = workloads.agent(tasks, seed=seed)
    calls = list(steps)
    history: list[dict[str, Any]] = []
    t: dict[str, list[int]] = {
        k: [] for k in ("srt", "dumps", "orjson", "srt_anthropic", "append", "bare")
    }
    text_bytes = checked = 0
    ser: list[int] = []
    pc = time.perf_counter_ns

    def append(msgs: list[dict[str, Any]], timed: bool) -> None:
        nonlocal bare_prefix, text_bytes
        rows = []
        for m in msgs:
            history.append(m)
            body, _ = canonicalize(m)
            text_bytes += len(body)
            h = _core.digest(body)
            bare_prefix = _core.chain(bare_prefix, h)
            rows.append((h, body, bare_prefix))
        t0 = pc()
        bare.append(rows)
        t1 = pc()
        s.append(*msgs)
        t2 = pc()
        if timed:
            t["bare"].append(t1 - t0)
            t["append"].append(t2 - t1)

    append([system], False)
    n = len(calls)
    final_bytes = 0
    for i, step in enumerate(calls):
        timed = i >= n - tail
        before = rt.serialized
        append(step[:-1], timed)
        t0 = pc()
        body = s.request("openai.chat", model=MODEL, tools=tools, cache=False)
        t1 = pc()
        ref = json.dumps(
            {"model": MODEL, "messages": history, "tools": tools},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        t2 = pc()
        if orjson is not None:
            orjson.dumps({"model": MODEL, "messages": history, "tools": tools})
        t3 = pc()
        s.request("anthropic.messages", model=ANTHROPIC, tools=tools, max_tokens=1024)
        t4 = pc()
        if correctness or i == n - 1:
            if body != ref:
                raise AssertionError(f"agent call {i + 1}: srt's body differs from json.dumps")
            checked += 1
        final_bytes = len(body)
        del body, ref  # sent and dropped, as Session.send does: srt may grow it in place
        if timed:
            t["srt"].append(t1 - t0)
            t["dumps"].append(t2 - t1)
            if orjson is not None:
                t["orjson"].append(t3 - t2)
            t["srt_anthropic"].append(t4 - t3)
        append(step[-1:], timed)
        ser.append(rt.serialized - before)
        if progress is not None:
            progress(i + 1, n)
    rt.close()
    bare.conn.close()
    db = _file_size(path)
    p = {k: {"p50": _pct(v, 0.5), "p99": _pct(v, 0.99)} for k, v in t.items() if v}
    tool_msgs = sum(1 for m in history if m["role"] == "tool")
    return {
        "tasks": tasks,
        "model_calls": n,
        "messages": len(history),
        "tool_results": tool_msgs,
        "final_body_bytes": final_bytes,
        "build_us": p,
        "build_vs_dumps": p["dumps"]["p50"] / p["srt"]["p50"],
        "build_vs_orjson": p["orjson"]["p50"] / p["srt"]["p50"] if "orjson" in p else None,
        "append_vs_bare": p["append"]["p50"] / p["bare"]["p50"],
        "serialized_per_call": statistics.mean(ser[-tail:]),
        "messages_per_call": len(history) / n,
        "db_bytes": db,
        "canonical_bytes": text_bytes,
        "db_vs_canonical": db / text_bytes,
        "checked_bodies": checked,
    }
