"""``srt._core``'s fragment cache against an ``OrderedDict`` LRU (``reference_core``) under
random operation sequences, its LRU order, counters, sizes and refusals.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

import reference_core as ref
from srt import _core
from test_core import FAST

# -- the fragment cache -----------------------------------------------------------------


class FragmentCacheMachine(RuleBasedStateMachine):
    """Drive ``_core.FragmentCache`` and the reference with the same operations."""

    keys = Bundle("keys")

    def __init__(self) -> None:
        super().__init__()
        self.core: Any = None
        self.ref: Any = None

    @initialize(max_bytes=st.integers(min_value=0, max_value=96))
    def make(self, max_bytes: int) -> None:
        self.core = _core.FragmentCache(max_bytes)
        self.ref = ref.FragmentCache(max_bytes)

    @rule(
        target=keys,
        key=st.one_of(st.integers(0, 12), st.tuples(st.binary(max_size=2), st.just("f"))),
    )
    def new_key(self, key: object) -> object:
        return key

    @rule(key=keys, value=st.binary(max_size=40), nbytes=st.none() | st.integers(0, 60))
    def put(self, key: object, value: bytes, nbytes: int | None) -> None:
        if nbytes is None:
            assert self.core.put(key, value) is None
            self.ref.put(key, value)
        else:
            assert self.core.put(key, value, nbytes) is None
            self.ref.put(key, value, nbytes)

    @rule(key=keys)
    def put_none(self, key: object) -> None:
        with pytest.raises(ValueError):
            self.core.put(key, None)
        with pytest.raises(ValueError):
            self.ref.put(key, None)

    @rule(key=keys)
    def get(self, key: object) -> None:
        got = self.core.get(key)
        assert got == self.ref.get(key)
        assert got is None or isinstance(got, bytes)

    @rule(key=keys)
    def contains(self, key: object) -> None:
        assert (key in self.core) == (key in self.ref)

    @rule()
    def clear(self) -> None:
        self.core.clear()
        self.ref.clear()

    @invariant()
    def same_state(self) -> None:
        c, r = self.core, self.ref
        assert (len(c), c.nbytes, c.hits, c.misses, c.evictions) == (
            len(r),
            r.nbytes,
            r.hits,
            r.misses,
            r.evictions,
        )
        assert c.max_bytes == r.max_bytes
        assert 0 <= c.nbytes <= c.max_bytes


FragmentCacheMachine.TestCase.settings = settings(
    max_examples=400, stateful_step_count=50, deadline=None
)
TestFragmentCacheAgainstReference = FragmentCacheMachine.TestCase


ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 8), st.binary(max_size=32), st.just(-1)),
        st.tuples(st.just("put"), st.integers(0, 8), st.binary(max_size=8), st.integers(0, 40)),
        st.tuples(st.just("get"), st.integers(0, 8), st.just(b""), st.just(-1)),
        st.tuples(st.just("clear"), st.just(0), st.just(b""), st.just(-1)),
    ),
    max_size=80,
)


@FAST
@given(st.integers(min_value=0, max_value=80), ops)
def test_fragment_cache_op_lists_match_reference(
    max_bytes: int, seq: list[tuple[str, int, bytes, int]]
) -> None:
    core = _core.FragmentCache(max_bytes)
    model = ref.FragmentCache(max_bytes)
    for op, key, value, nbytes in seq:
        if op == "put":
            core.put(key, value, nbytes)
            model.put(key, value, nbytes)
        elif op == "get":
            assert core.get(key) == model.get(key)
        else:
            core.clear()
            model.clear()
        assert len(core) == len(model)
        assert core.nbytes == model.nbytes
        assert (core.hits, core.misses, core.evictions) == (
            model.hits,
            model.misses,
            model.evictions,
        )


def test_fragment_cache_lru_order_and_counters() -> None:
    cache = _core.FragmentCache(10)
    cache.put("a", b"aaaa")
    cache.put("b", b"bbbb")
    assert cache.get("a") == b"aaaa"  # a is now the most recent
    cache.put("c", b"cccc")  # 12 bytes > 10: evict b, the least recently used
    assert "b" not in cache
    assert "a" in cache
    assert "c" in cache
    assert cache.get("b") is None
    assert (cache.hits, cache.misses, cache.evictions, cache.nbytes, len(cache)) == (1, 1, 1, 8, 2)
    cache.put("big", b"x" * 11)  # larger than the whole budget: not stored, nothing evicted
    assert "big" not in cache
    assert len(cache) == 2
    cache.put("a", b"z" * 11)  # replacing with an oversize value drops the old entry
    assert "a" not in cache
    assert cache.nbytes == 4
    cache.clear()
    assert (len(cache), cache.nbytes) == (0, 0)
    assert cache.hits == 1  # counters survive clear()


def test_fragment_cache_shares_the_value_object() -> None:
    cache = _core.FragmentCache(1000)
    value = b"frozen" * 10
    cache.put(("h", "openai.chat"), value)
    assert cache.get(("h", "openai.chat")) is value


def test_fragment_cache_charges_explicit_sizes() -> None:
    cache, model = _core.FragmentCache(100), ref.FragmentCache(100)
    record = ("a record", b"holding bytes")
    for c in (cache, model):
        c.put("r", record, 60)
        c.put("s", "text")
        c.put("t", b"y" * 10, 50)  # 60 + 4 + 50 > 100: "r" is evicted
    assert (cache.nbytes, len(cache), cache.evictions) == (54, 2, 1)
    assert (model.nbytes, len(model), model.evictions) == (54, 2, 1)
    assert cache.get("r") is None
    assert cache.get("s") == "text"


def test_fragment_cache_refuses_none() -> None:
    cache = _core.FragmentCache(100)
    cache.put("k", b"v")
    with pytest.raises(ValueError):
        cache.put("k", None)
    assert cache.get("k") == b"v"
    assert (len(cache), cache.nbytes) == (1, 1)


def test_fragment_cache_rejects_negative_budget() -> None:
    with pytest.raises(ValueError):
        _core.FragmentCache(-1)
    with pytest.raises(ValueError):
        ref.FragmentCache(-1)
    assert _core.FragmentCache().max_bytes == ref.FragmentCache().max_bytes == 256 * 1024 * 1024
