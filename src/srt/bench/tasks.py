"""The ``tasks`` workload: a 10-step tool-using task through ``Session.run``, step by step.

An agent's instructions (a 12,000-character system prompt, about 3,000 tokens), three
tools from Python functions (``search``, ``read``, ``count``), and a scripted model
(``srt.testing.tasks.ScriptedTask``) that makes 1, 2 or 3 parallel calls a step for ten
steps, then answers. Tool results are 300-1,200 characters of text. The task runs with
``Session.run_stream`` (the path ``run`` takes, with a look at each step) against
``srt.testing.ProviderServer`` under each provider's caching rules: OpenAI (Chat
Completions: automatic prefix caching, 1,024-token minimum, 128-token steps, keyed by
srt's ``prompt_cache_key``), Anthropic (srt's ``cache_control`` breakpoints), Bedrock
(``cachePoint``) and OpenAI Responses (``previous_response_id`` deltas). Anthropic is
also run with ``cache=False`` (no breakpoints), the baseline of a client that sends
no cache hints.

Per step (one model call) the ledger row gives the prompt's input tokens and those read
from cache; ``uncached`` is the rest. ``serialized`` is the messages srt serialized to
build that request (delta assembly: the previous reply and its results, never the
history). The figure: the smallest share of any later step's prompt (steps 2-11) read
from cache, against the target of 80%.
"""

from __future__ import annotations

import os
import random
from typing import Any

from ..providers import Anthropic, Bedrock, OpenAI, Provider
from ..runtime import Runtime
from ..testing.tasks import ScriptedTask, plan
from . import workloads
from .replay import KEY, Progress, fast_server

MODELS = {
    "openai": "gpt-4.1",
    "anthropic": "claude-sonnet-4-5",
    "anthropic.no_hints": "claude-sonnet-4-5",
    "bedrock": "anthropic.claude-sonnet-4-5",
    "responses": "gpt-4.1",
}
TARGET = 0.80
SYSTEM_CHARS = 12_000


def _tools(seed: int) -> list[Any]:
    def result(kind: str, key: str) -> str:
        rng = random.Random(f"{seed}:{kind}:{key}")
        return workloads.text(rng, rng.randint(300, 1200))

    def search(key: str) -> str:
        """Search the knowledge base.

        Args:
            key: What to search for.
        """
        return result("search", key)

    def read(key: str) -> str:
        """Read a document in full.

        Args:
            key: The document's id.
        """
        return result("read", key)

    def count(key: str) -> str:
        """Count the records that match.

        Args:
            key: The filter.
        """
        return result("count", key)

    return [search, read, count]


def _provider(rule: str, url: str) -> Provider:
    if rule == "openai":
        return OpenAI(api_key=KEY, base_url=f"{url}/v1")
    if rule == "responses":
        return OpenAI(api_key=KEY, base_url=f"{url}/v1", api="responses")
    if rule == "bedrock":
        return Bedrock(region="us-east-1", api_key=KEY, endpoint_url=url)
    return Anthropic(api_key=KEY, base_url=url)


def run_rule(
    workdir: str, rule: str, *, steps: int, seed: int, system_chars: int
) -> dict[str, Any]:
    """One task under ``rule``: per-step ledger figures and the smallest later share."""
    rng = random.Random(seed)
    system = workloads.text(rng, system_chars)
    rt = Runtime(os.path.join(workdir, f"tasks-{rule}.db"))
    rows: list[dict[str, Any]] = []
    with fast_server() as srv:
        srv.respond("*", ScriptedTask(plan(steps, ["search", "read", "count"])))
        provider = _provider(rule, srv.url)
        s = rt.session("task")
        s.append(
            {"role": "system", "content": system},
            {"role": "user", "content": "Find out how many records match and summarise them."},
        )
        cache = rule != "anthropic.no_hints"
        stream = s.run_stream(provider, model=MODELS[rule], tools=_tools(seed), cache=cache)
        for event in stream:
            if event.kind != "reply":
                continue
            call = s.calls()[-1]
            build = s.last_build
            assert build is not None
            total = int(call["input_tokens"] or 0)
            read = int(call["cache_read_tokens"] or 0)
            rows.append(
                {
                    "step": len(rows) + 1,
                    "input_tokens": total,
                    "cache_read_tokens": read,
                    "uncached_tokens": total - read,
                    "read_share": read / total if total else 0.0,
                    "serialized": build.serialized,
                    "messages": build.messages,
                    "body_bytes": build.nbytes,
                }
            )
        provider.close()
        assert srv.errors == [], srv.errors
    result = stream.result
    rt.close()
    assert result is not None and result.stopped == "done", result
    later = rows[1:]
    return {
        "model": MODELS[rule],
        "steps": rows,
        "tool_calls": len(result.tool_runs),
        "min_later_share": min(r["read_share"] for r in later),
        "later_uncached_mean": sum(r["uncached_tokens"] for r in later) / len(later),
        "later_serialized_max": max(r["serialized"] for r in later),
        "input_tokens": sum(r["input_tokens"] for r in rows),
        "cache_read_tokens": sum(r["cache_read_tokens"] for r in rows),
    }


def run_tasks(
    workdir: str,
    *,
    steps: int = 10,
    seed: int = 1,
    rules: tuple[str, ...] = ("openai", "anthropic", "bedrock", "responses", "anthropic.no_hints"),
    system_chars: int = SYSTEM_CHARS,
    progress: Progress = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"task_steps": steps, "system_chars": system_chars, "target": TARGET}
    for i, rule in enumerate(rules):
        out[rule] = run_rule(workdir, rule, steps=steps, seed=seed, system_chars=system_chars)
        if progress is not None:
            progress(i + 1, len(rules))
    hinted = [r for r in rules if r in ("openai", "anthropic")]
    out["min_later_share"] = min(out[r]["min_later_share"] for r in hinted) if hinted else 0.0
    return out


def lines(r: dict[str, Any]) -> list[str]:
    """The workload's section of the report."""
    out = [
        f"tasks: a {r['task_steps']}-step task (3 tools, 1-3 parallel calls a step), "
        f"{r['system_chars']:,}-char system prompt; per model call (step:uncached/input)",
        "  (openai.chat sends each message's stored bytes as they are: 0 serialized)",
    ]
    for rule, x in r.items():
        if not isinstance(x, dict):
            continue
        out.append(
            f"  {rule:<19} later steps: min {100 * x['min_later_share']:5.1f}% read from "
            f"cache, mean {x['later_uncached_mean']:,.0f} uncached tokens, at most "
            f"{x['later_serialized_max']} messages serialized; {x['tool_calls']} tool calls"
        )
        out.append(
            "      "
            + " ".join(
                f"{s['step']}:{s['uncached_tokens']}/{s['input_tokens']}" for s in x["steps"]
            )
        )
    return out
