"""Per-format build time: srt's next request against ``json.dumps`` of the same body.

The chat workload's conversation (with a tool definition, so every envelope is
exercised) is loaded into one session; for each wire format the hot build of the
next request is timed against ``json.dumps`` of exactly the same body as Python
objects, in the same run.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any

from ..runtime import Runtime
from ..wire import FORMATS
from . import workloads

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a term up in the knowledge base.",
            "parameters": {"type": "object", "properties": {"term": {"type": "string"}}},
        },
    }
]
MODELS = {"anthropic": "claude-sonnet-4-5", "bedrock": "anthropic.claude-sonnet-4-5"}


def run_formats(
    workdir: str, turns: int = 1000, *, seed: int = 1, reps: int = 15
) -> dict[str, Any]:
    rt = Runtime(os.path.join(workdir, "formats.db"))
    s = rt.session("formats")
    system, pairs = workloads.chat(turns, seed=seed)
    s.append(system)
    for user, reply in pairs:
        s.append(user, reply)
    s.append({"role": "user", "content": "one more question"})
    out: dict[str, Any] = {}
    for name, fmt in sorted(FORMATS.items()):
        model = MODELS.get(fmt.provider, "gpt-4o-mini")
        body = s.request(name, model=model, tools=TOOLS)  # warm: fragments built once
        obj = json.loads(body)
        ref = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if ref != body:
            raise AssertionError(f"{name}: json.dumps of the parsed body differs")
        srt_ns, dumps_ns = [], []
        for _ in range(reps):
            t0 = time.perf_counter_ns()
            s.request(name, model=model, tools=TOOLS)
            srt_ns.append(time.perf_counter_ns() - t0)
        for _ in range(reps):
            t0 = time.perf_counter_ns()
            json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            dumps_ns.append(time.perf_counter_ns() - t0)
        srt_us = statistics.median(srt_ns) / 1000
        dumps_us = statistics.median(dumps_ns) / 1000
        out[name] = {
            "srt_us": srt_us,
            "dumps_us": dumps_us,
            "ratio": dumps_us / srt_us,
            "body_bytes": len(body),
        }
    rt.close()
    return out
