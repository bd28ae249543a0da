"""The ``window`` workload: a long conversation through a bounded context window.

A seeded 200-turn conversation (turns of about 1-1.5 k tokens, so a 32 k-token window
fills after ~25 turns) is sent turn by turn through ``Session.send`` with
``window=WindowPolicy(kind, 32_000, tokenizer=srt.tokens.GENERIC_ESTIMATE)`` (4 bytes a
token, the local provider server's own count) to ``srt.testing.ProviderServer``, under
OpenAI's and Anthropic's caching rules. The figure is the share of all input tokens the
server served from its cache: ``cache_aware`` drops old history in large steps so the
kept prefix stays byte-stable for many turns; ``sliding`` drops a little every turn, so
the first kept message changes and every request misses.
"""

from __future__ import annotations

import os
import random
from typing import Any

from ..context import WindowPolicy
from ..providers import Anthropic, OpenAI, Provider
from ..runtime import Runtime
from ..tokens import GENERIC_ESTIMATE
from . import workloads
from .replay import KEY, MAX_TOKENS, RULES, Progress, fast_server


def conversation(turns: int, seed: int = 1) -> tuple[str, list[tuple[str, str]]]:
    """A 2 KB system prompt and ``turns`` (user, reply) pairs of ~4-6 KB together."""
    rng = random.Random(seed)
    system = workloads.text(rng, 2048)
    pairs = [
        (workloads.text(rng, rng.randint(800, 1600)), workloads.text(rng, rng.randint(3000, 4200)))
        for _ in range(turns)
    ]
    return system, pairs


def run_window(
    workdir: str,
    *,
    turns: int = 200,
    budget: int = 32_000,
    seed: int = 1,
    rules: tuple[str, ...] = ("openai", "anthropic"),
    progress: Progress = None,
) -> dict[str, Any]:
    system, pairs = conversation(turns, seed)
    out: dict[str, Any] = {"turns": turns, "budget": budget}
    total = len(rules) * 2 * turns
    done = 0
    for r in rules:
        endpoint, model = RULES[r]
        for kind in ("cache_aware", "sliding"):
            policy = WindowPolicy(kind, budget, tokenizer=GENERIC_ESTIMATE)
            rt = Runtime(os.path.join(workdir, f"window-{r}-{kind}.db"))
            with fast_server() as srv:
                provider: Provider = (
                    OpenAI(api_key=KEY, base_url=f"{srv.url}/v1")
                    if r == "openai"
                    else Anthropic(api_key=KEY, base_url=srv.url)
                )
                s = rt.session("long")
                s.append({"role": "system", "content": system})
                tot = read = peak = 0
                for user, reply in pairs:
                    s.append({"role": "user", "content": user})
                    srv.script(endpoint, [reply])
                    s.send(provider, model=model, max_tokens=MAX_TOKENS, window=policy)
                    c = srv.log[-1].cache
                    assert c is not None, srv.log[-1].error
                    tot += c.total
                    read += c.read
                    peak = max(peak, c.total)
                    done += 1
                    if progress is not None:
                        progress(done, total)
                provider.close()
            rt.close()
            out[f"{r}.{kind}"] = {
                "input_tokens": tot,
                "cached_tokens": read,
                "cached_share": read / tot if tot else 0.0,
                "peak_prompt_tokens": peak,
            }
    return out
