"""Token counting (``srt.tokens``): the token cache (hits, keys, LRU bound, threads) and
cumulative sums and budgets (against brute force).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rel_support.waits import joined
from srt import _core
from srt.errors import ConfigError
from srt.tokens import (
    CLAUDE_ESTIMATE,
    GENERIC_ESTIMATE,
    Cumulative,
    TiktokenTokenizer,
    TokenCache,
    chat_request_tokens,
    message_tokens,
)
from test_tokens import bodies

# -- the cache --------------------------------------------------------------------------


def test_token_cache_hits_and_keys() -> None:
    cache = TokenCache()
    tok = TiktokenTokenizer("o200k_base")
    msgs = bodies([{"role": "user", "content": f"message {i}"} for i in range(5)])
    first = chat_request_tokens(tok, msgs, cache=cache)
    assert (cache.hits, cache.misses, len(cache)) == (0, 5, 5)
    assert chat_request_tokens(tok, msgs, cache=cache) == first == chat_request_tokens(tok, msgs)
    assert (cache.hits, cache.misses) == (5, 5)
    # Keyed by the message hash and the tokenizer's name.
    assert cache.get(_core.digest(msgs[0]), tok.name) == message_tokens(tok, msgs[0])
    assert cache.get(_core.digest(msgs[0]), CLAUDE_ESTIMATE.name) is None
    cache.message_tokens(CLAUDE_ESTIMATE, msgs[0])
    assert len(cache) == 6
    assert cache.message_tokens(tok, msgs[0], message_hash=b"h" * 16) == message_tokens(
        tok, msgs[0]
    )
    cache.clear()
    assert (len(cache), cache.hits, cache.misses) == (0, 0, 0)
    with pytest.raises(ConfigError):
        TokenCache(0)


def test_token_cache_is_lru_and_bounded() -> None:
    cache = TokenCache(max_entries=3)
    for i in range(3):
        cache.put(bytes([i]) * 16, "t", i)
    assert cache.get(bytes([0]) * 16, "t") == 0  # 0 becomes the most recent
    cache.put(b"\x09" * 16, "t", 9)  # evicts 1, the least recently used
    assert cache.get(bytes([1]) * 16, "t") is None
    assert [cache.get(bytes([i]) * 16, "t") for i in (0, 2, 9)] == [0, 2, 9]
    assert len(cache) == 3


def test_token_cache_threads() -> None:
    cache = TokenCache(max_entries=500)
    msgs = bodies([{"role": "user", "content": f"m{i}"} for i in range(200)])

    def work() -> None:
        for b in msgs * 3:
            cache.message_tokens(GENERIC_ESTIMATE, b)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    joined(*threads)
    assert len(cache) == 200
    assert cache.hits + cache.misses == 6 * 600 and cache.misses >= 200


# -- cumulative sums and budgets -----------------------------------------------------------


def brute_cut(counts: list[int], budget: int) -> int:
    return max(k for k in range(len(counts) + 1) if sum(counts[:k]) <= budget)


def brute_suffix(counts: list[int], budget: int) -> int:
    return min(i for i in range(len(counts) + 1) if sum(counts[i:]) <= budget)


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 1_000)),
        st.tuples(st.just("extend"), st.lists(st.integers(0, 1_000), max_size=40)),
        st.tuples(st.just("truncate"), st.floats(0, 1)),
    ),
    max_size=30,
)


@settings(max_examples=300)
@given(ops=_OPS, budgets=st.lists(st.integers(0, 30_000), min_size=1, max_size=8))
def test_cumulative_against_brute_force(ops: list[tuple[str, Any]], budgets: list[int]) -> None:
    cum = Cumulative(capacity=1)
    model: list[int] = []
    for op, arg in ops:
        if op == "append":
            cum.append(arg)
            model.append(arg)
        elif op == "extend":
            cum.extend(arg)
            model.extend(arg)
        else:
            k = int(arg * len(model))
            cum.truncate(k)
            del model[k:]
        assert len(cum) == len(model)
        assert cum.total == sum(model)
        assert cum.cumsum.tolist() == list(np.cumsum(model, dtype=np.int64))
        for b in [*budgets, 0, sum(model), max(sum(model) - 1, 0)]:
            assert cum.cut_point(b) == brute_cut(model, b)
            assert cum.suffix_start(b) == brute_suffix(model, b)
    for i, c in enumerate(model):
        assert cum.count(i) == c and cum.prefix(i + 1) == sum(model[: i + 1])


def test_cumulative_details() -> None:
    cum = Cumulative([5, 0, 0, 7])
    assert cum.cut_point(4) == 0 and cum.cut_point(5) == 3 and cum.cut_point(12) == 4
    assert cum.suffix_start(0) == 4 and cum.suffix_start(7) == 1 and cum.suffix_start(12) == 0
    assert cum.cumsum.dtype == np.int64
    with pytest.raises(ValueError):
        cum.cumsum[0] = 1  # read-only view
    with pytest.raises(ValueError):
        cum.append(-1)
    with pytest.raises(ValueError):
        cum.extend([1, -1])
    with pytest.raises(ValueError):
        cum.truncate(5)
    assert cum.total == 12
    with pytest.raises(ValueError):
        cum.cut_point(-1)
    with pytest.raises(ValueError):
        cum.suffix_start(-1)
    with pytest.raises(IndexError):
        cum.count(4)
    big = Cumulative()
    big.extend(np.full(100_000, 2**40, dtype=np.int64))  # int64, no overflow
    assert big.total == 100_000 * 2**40 and big.cut_point(2**41) == 2


def test_cumulative_growth_is_geometric() -> None:
    cum = Cumulative(capacity=1)
    sizes = set()
    for i in range(10_000):
        cum.append(i % 7)
        sizes.add(len(cum._buf))  # noqa: SLF001 - its growth is what is tested
    assert len(sizes) <= 16  # doublings, not one reallocation per append
    assert cum.total == sum(i % 7 for i in range(10_000))
