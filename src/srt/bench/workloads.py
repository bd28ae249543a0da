"""Deterministic, seeded conversation generators for the benchmarks."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

_WORDS = (
    "the of and to in is that for it as with was on be by this are or at from "
    "cache prefix token model request session history reply answer question "
    "function value result python sqlite store hash chain fork branch edit "
    "naïve café déjà–vu — “quoted” 数据 模型 привет мир ✓ → λ"
).split()


def text(rng: random.Random, n_chars: int) -> str:
    """About ``n_chars`` characters of word salad (ASCII with some Unicode)."""
    out: list[str] = []
    size = 0
    while size < n_chars:
        w = rng.choice(_WORDS)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)[:n_chars]


def chat(
    turns: int,
    *,
    seed: int = 1,
    system_chars: int = 4096,
    user: tuple[int, int] = (200, 800),
    assistant: tuple[int, int] = (500, 3000),
) -> tuple[dict[str, Any], Iterator[tuple[dict[str, Any], dict[str, Any]]]]:
    """A system message and ``turns`` (user, assistant) pairs, fully determined by ``seed``."""
    rng = random.Random(seed)
    system = {"role": "system", "content": text(rng, system_chars)}

    def gen() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        for _ in range(turns):
            u = {"role": "user", "content": text(rng, rng.randint(*user))}
            a = {"role": "assistant", "content": text(rng, rng.randint(*assistant))}
            yield u, a

    return system, gen()
