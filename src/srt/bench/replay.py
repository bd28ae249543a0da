"""Replays of real conversations against the local provider server's cache accounting.

``sharegpt`` and ``mtbench`` replay conversations turn by turn against
``srt.testing.ProviderServer`` (real HTTP on 127.0.0.1), under OpenAI's caching rules
(automatic, >= 1,024 tokens, 128-token steps) and Anthropic's (explicit breakpoints,
1,024-token minimum for Sonnet, 20-block lookback), through these clients:

* ``stateless``: keeps a list, re-sends the whole history each turn with
  ``json.dumps`` (default settings) and sends no cache hint of any kind;
* ``careful``: the careful stateless client of ``srt.savings``, under each provider's
  caching rules: a byte-stable compact ``json.dumps``, on OpenAI a ``prompt_cache_key``
  derived from its first message (it earns whatever automatic caching that gets), and on
  Anthropic one ``cache_control`` on the last message of every request, the most a
  client without state can place;
* ``srt``: a ``Session`` per conversation, sent through srt's provider layer
  (``Session.send`` with ``srt.OpenAI``/``srt.Anthropic``), cache planner on.

Every client gets the same assistant replies (the dataset's own, or for MT-Bench a
seeded text), scripted into the server before each request. Figures come from the
server's accounting of each request (``ProviderServer.log[i].cache``); costs from
``srt.pricing`` (genai-prices). The two baselines of ``srt.savings`` are reported for
srt: the careful client's measured bill, and no caching (every input token at the full
input price); beside them, ``srt.savings``' own careful figure computed from srt's ledger
alone (``careful_modelled``), which should equal the measured one.

*Reuse efficiency* is srt's cached tokens over the most the provider's rules let be
cached: per request, the previous request's whole prompt (everything but the new turn
and the previous reply), if it reaches the minimum, rounded down to 128-token steps on
OpenAI. Per request, cached tokens count up to that most; hits beyond it (another
conversation began the same way) are reported apart, as ``cached_beyond_own_prefix``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..pricing import Pricing
from ..providers import Anthropic, OpenAI, Provider
from ..runtime import Runtime
from ..savings import Savings
from ..testing import _http
from ..testing.server import ProviderServer, RequestRecord
from . import datasets, workloads

KEY = "srt-bench-key"
RULES: dict[str, tuple[str, str]] = {
    "openai": ("openai.chat", "gpt-4.1"),
    "anthropic": ("anthropic.messages", "claude-sonnet-4-5"),
}
MIN_TOKENS = 1024
STEP = 128
#: Above the replayed replies (srt.testing stops a reply at the request's cap, as the APIs do).
MAX_TOKENS = 8192

Progress = Callable[[int, int], None] | None


@dataclass
class ClientTotals:
    requests: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    written_tokens: int = 0
    billed_usd: float = 0.0
    full_price_usd: float = 0.0
    wire_bytes: int = 0
    careful_modelled_usd: float = 0.0  # srt only: srt.savings' careful baseline
    max_cacheable: int = 0  # the most the provider's rules let be cached
    reused: int = 0  # cached tokens up to that most, request by request
    # per conversation: messages, input tokens, uncached tokens, most cacheable by the rules
    per_conv: list[tuple[int, int, int, int]] = field(default_factory=list)

    @property
    def uncached(self) -> int:
        return self.input_tokens - self.cached_tokens


class _Stateless:
    """A client with no state but its message list; it posts with httpx."""

    def __init__(self, srv: ProviderServer, rules: str, kind: str) -> None:
        self.rules, self.kind = rules, kind
        self.http = httpx.Client(timeout=60.0)
        if rules == "openai":
            self.url = f"{srv.url}/v1/chat/completions"
            self.headers = {"authorization": f"Bearer {KEY}"}
        else:
            self.url = f"{srv.url}/v1/messages"
            self.headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
        self.messages: list[dict[str, Any]] = []
        self.conv = ""

    def start(self, conv_id: str, system: str | None) -> None:
        self.conv = conv_id
        self.system = system
        self.messages = []
        if system is not None and self.rules == "openai":
            self.messages.append({"role": "system", "content": system})

    def turn(self, user: str, model: str) -> int:
        self.messages.append({"role": "user", "content": user})
        body: dict[str, Any] = {"model": model}
        msgs: list[dict[str, Any]] = self.messages
        if self.rules == "anthropic":
            body["max_tokens"] = MAX_TOKENS
            if self.system is not None:
                body["system"] = self.system
            if self.kind == "careful":
                last = msgs[-1]
                block = {"type": "text", "text": last["content"]}
                block["cache_control"] = {"type": "ephemeral"}
                msgs = [*msgs[:-1], {"role": "user", "content": [block]}]
        else:
            body["max_tokens"] = MAX_TOKENS
            if self.kind != "stateless":
                # A key any stateless client can derive from its own request: its first
                # message. Conversations that begin alike share a routing key.
                first = json.dumps(self.messages[0], ensure_ascii=False, sort_keys=True)
                body["prompt_cache_key"] = hashlib.sha256(first.encode()).hexdigest()[:32]
        body["messages"] = msgs
        if self.kind == "stateless":
            data = json.dumps(body).encode("utf-8")
        else:
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {**self.headers, "content-type": "application/json"}
        r = self.http.post(self.url, content=data, headers=headers)
        r.raise_for_status()
        out = r.json()
        if self.rules == "openai":
            text = out["choices"][0]["message"]["content"]
        else:
            text = "".join(b.get("text", "") for b in out["content"])
        self.messages.append({"role": "assistant", "content": text})
        return len(data)

    def close(self) -> None:
        self.http.close()


class _Srt:
    def __init__(self, srv: ProviderServer, rules: str, path: str) -> None:
        self.rules = rules
        self.rt = Runtime(path)
        self.provider: Provider
        if rules == "openai":
            self.provider = OpenAI(api_key=KEY, base_url=f"{srv.url}/v1")
        else:
            self.provider = Anthropic(api_key=KEY, base_url=srv.url)
        self.session: Any = None
        self.modelled: Savings | None = None

    def start(self, conv_id: str, system: str | None) -> None:
        self.session = self.rt.session(conv_id)
        if system is not None:
            self.session.append({"role": "system", "content": system})

    def turn(self, user: str, model: str) -> int:
        s = self.session
        s.append({"role": "user", "content": user})
        s.send(self.provider, model=model, max_tokens=MAX_TOKENS)
        return int(s.last_build.nbytes)

    def close(self) -> None:
        self.modelled = self.rt.savings()
        self.provider.close()
        self.rt.close()


def _allowed(prev_tokens: int, rules: str) -> int:
    """The most the provider's rules let be cached, given the previous prompt's tokens."""
    if prev_tokens < MIN_TOKENS:
        return 0
    return prev_tokens - prev_tokens % STEP if rules == "openai" else prev_tokens


def _account(t: ClientTotals, rec: RequestRecord, model: str, rules: str, pricing: Pricing) -> None:
    c = rec.cache
    assert c is not None, rec.error
    t.requests += 1
    t.input_tokens += c.total
    t.cached_tokens += c.read
    t.written_tokens += c.written
    cost = pricing.request_cost(
        {
            "model": model,
            "provider": rules,
            "input_tokens": c.total,
            "cache_read_tokens": c.read,
            "cache_write_tokens": c.written,
        }
    )
    assert cost is not None, model
    t.billed_usd += cost[0]
    t.full_price_usd += cost[1]


Turns = list[tuple[str, str]]  # (user, assistant reply)


def fast_server(**kw: Any) -> ProviderServer:
    """A ``ProviderServer`` whose replies are not held back by Nagle's algorithm.

    The server writes the headers and the body of a reply in two ``send`` calls; with
    Nagle on, the body waits for the client's delayed ACK (40 ms on Linux), so every
    request took ~45 ms. ``disable_nagle_algorithm`` is the standard
    ``socketserver.StreamRequestHandler`` switch (reported upstream; set here until the
    server sets it itself).
    """
    _http.Handler.disable_nagle_algorithm = True
    return ProviderServer(api_key=KEY, **kw)


def replay(
    workdir: str,
    convs: Sequence[tuple[str | None, Turns]],
    rules: str,
    *,
    tag: str = "replay",
    progress: Progress = None,
) -> dict[str, ClientTotals]:
    """Replay ``convs`` (system prompt, turns) through every client under ``rules``;
    srt's sessions go to a fresh database named after ``tag`` and ``rules``."""
    endpoint, model = RULES[rules]
    kinds = ["stateless", "careful", "srt"]
    pricing = Pricing()
    out: dict[str, ClientTotals] = {}
    total = len(convs) * len(kinds)
    done = 0
    for kind in kinds:
        t = out[kind] = ClientTotals()
        with fast_server() as srv:
            client: _Srt | _Stateless = (
                _Srt(srv, rules, os.path.join(workdir, f"{tag}-{rules}.db"))
                if kind == "srt"
                else _Stateless(srv, rules, kind)
            )
            try:
                for ci, (system, turns) in enumerate(convs):
                    client.start(f"conv-{ci}", system)
                    conv_in = conv_unc = conv_max = 0
                    prev = 0
                    for user, reply in turns:
                        srv.script(endpoint, [reply])
                        t.wire_bytes += client.turn(user, model)
                        rec = srv.log[-1]
                        _account(t, rec, model, rules, pricing)
                        assert rec.cache is not None
                        allowed = _allowed(prev, rules)
                        t.max_cacheable += allowed
                        t.reused += min(rec.cache.read, allowed)
                        conv_max += allowed
                        prev = rec.cache.total
                        conv_in += rec.cache.total
                        conv_unc += rec.cache.total - rec.cache.read
                    nmsgs = 2 * len(turns) + (system is not None)
                    t.per_conv.append((nmsgs, conv_in, conv_unc, conv_max))
                    done += 1
                    if progress is not None:
                        progress(done, total)
            finally:
                client.close()
            if isinstance(client, _Srt) and client.modelled is not None:
                t.careful_modelled_usd = client.modelled.careful.input_usd
    return out


def summarize(res: dict[str, ClientTotals], rules: str) -> dict[str, Any]:
    """Totals, srt's reuse efficiency, and srt against the stateless clients by length."""
    srt = res["srt"]
    out: dict[str, Any] = {"clients": {}}
    for kind, t in res.items():
        out["clients"][kind] = {
            "requests": t.requests,
            "input_tokens": t.input_tokens,
            "cached_tokens": t.cached_tokens,
            "uncached_tokens": t.uncached,
            "written_tokens": t.written_tokens,
            "billed_input_usd": t.billed_usd,
            "full_price_input_usd": t.full_price_usd,
            "wire_bytes_per_turn": t.wire_bytes / max(t.requests, 1),
        }
    careful = res["careful"].billed_usd
    out["baselines"] = {
        name: {
            "label": label,
            "input_usd": usd,
            "srt_input_usd": srt.billed_usd,
            "saved_usd": usd - srt.billed_usd,
            "saved_share": (usd - srt.billed_usd) / usd if usd else 0.0,
        }
        for name, label, usd in (
            ("careful", "a careful stateless client (measured)", careful),
            ("no_cache", "a client with no prompt caching", srt.full_price_usd),
        )
    }
    out["baselines"]["careful"]["modelled_input_usd"] = srt.careful_modelled_usd
    out["reuse_efficiency"] = srt.reused / srt.max_cacheable if srt.max_cacheable else 1.0
    out["max_cacheable"] = srt.max_cacheable
    # Hits beyond the conversation's own previous prompt: another conversation that
    # starts the same way (ShareGPT repeats popular first prompts) left it in the cache.
    out["cached_beyond_own_prefix"] = srt.cached_tokens - srt.reused

    def fewer(kind: str, min_msgs: int) -> dict[str, float]:
        """srt's reduction of uncached tokens against ``kind`` on conversations of at
        least ``min_msgs`` messages: over the subset and the median per conversation,
        beside the most any client could reach under the rules (``bound``)."""
        pairs = [
            (b, s)
            for b, s in zip(res[kind].per_conv, srt.per_conv, strict=True)
            if b[0] >= min_msgs
        ]
        if not pairs:
            return {"aggregate": 0.0, "median": 0.0, "bound": 0.0, "n": 0}
        base_unc = max(sum(b[2] for b, _ in pairs), 1)
        agg = 1 - sum(s[2] for _, s in pairs) / base_unc
        bound = 1 - sum(s[1] - s[3] for _, s in pairs) / base_unc
        med = statistics.median(1 - s[2] / b[2] if b[2] else 0.0 for b, s in pairs)
        return {"aggregate": agg, "median": med, "bound": bound, "n": len(pairs)}

    for kind in res:
        if kind != "srt":
            for m in (0, 10, 20):
                out[f"fewer_uncached_vs_{kind}_ge{m}"] = fewer(kind, m)
    return out


def _sharegpt_turns(conv: list[dict[str, Any]]) -> tuple[str | None, Turns]:
    system = conv[0]["content"] if conv[0]["role"] == "system" else None
    rest = conv[1:] if system is not None else conv
    turns = [(rest[i]["content"], rest[i + 1]["content"]) for i in range(0, len(rest) - 1, 2)]
    return system, turns


def sample_sharegpt(
    n: int, seed: int = 1, *, long_share: float = 0.5
) -> tuple[list[tuple[str | None, Turns]], dict[str, int]]:
    """A seeded sample: ``n`` conversations at random plus up to ``long_share * n`` of
    the conversations with >= 20 messages (``n == 0``: every conversation)."""
    convs, stats = datasets.sharegpt()
    if n <= 0:
        chosen = list(range(len(convs)))
    else:
        rng = random.Random(seed)
        picked = set(rng.sample(range(len(convs)), min(n, len(convs))))
        long = [i for i, c in enumerate(convs) if len(c) >= 20]
        rng.shuffle(long)
        picked.update(long[: int(long_share * n)])
        chosen = sorted(picked)
    stats["replayed"] = len(chosen)
    return [_sharegpt_turns(convs[i]) for i in chosen], stats


def mtbench_convs(seed: int = 1, system_chars: int = 6000) -> list[tuple[str | None, Turns]]:
    """MT-Bench's questions, each with seeded replies of 1-3 KB (it ships no answers),
    all behind one shared seeded system prompt of ``system_chars`` (as a deployed
    assistant sends; 0: none), so a new conversation can reuse the system prompt that
    earlier conversations cached."""
    rng = random.Random(seed)
    system = workloads.text(rng, system_chars) if system_chars else None
    out: list[tuple[str | None, Turns]] = []
    for turns in datasets.mtbench():
        out.append((system, [(q, workloads.text(rng, rng.randint(1000, 3000))) for q in turns]))
    return out


def run_replay(
    workdir: str,
    name: str,
    *,
    conversations: int = 400,
    seed: int = 1,
    rules: Sequence[str] = ("openai", "anthropic"),
    progress: Progress = None,
) -> dict[str, Any]:
    """The ``sharegpt`` or ``mtbench`` workload: every client under every rule set."""
    t0 = time.perf_counter()
    if name == "sharegpt":
        convs, stats = sample_sharegpt(conversations, seed)
    elif name == "mtbench":
        convs, stats = mtbench_convs(seed), {}
        stats["replayed"] = len(convs)
    else:
        raise ValueError(name)
    lengths = [2 * len(t) + (s is not None) for s, t in convs]
    out: dict[str, Any] = {
        "dataset": stats,
        "messages": {
            "median": statistics.median(lengths),
            "ge10": sum(n >= 10 for n in lengths),
            "ge20": sum(n >= 20 for n in lengths),
            "turns": sum(len(t) for _, t in convs),
        },
    }
    for r in rules:
        out[r] = summarize(replay(workdir, convs, r, tag=name, progress=progress), r)
    out["seconds"] = time.perf_counter() - t0
    return out
