"""Bad input, property-tested (3): structured values. NaN and +-Inf anywhere, deep
nesting, tool-call arguments whose JSON text repeats keys (kept verbatim), and messages
of any shape: each round-trips byte-exact or is refused, typed, before anything is
written. Part of the bad-input properties: ``test_rel_properties``'s docstring says what
is checked and how many examples run.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import srt
from srt.message import canonicalize
from test_rel_properties import ALL_CHARS, PROPERTY, Writer, run, writer

__all__ = ["writer"]  # the fixture, imported for the property here


# -- 3. structured values ---------------------------------------------------------------------

LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats()  # NaN and +-Inf included
    | st.text(st.characters(codec="utf-8"), max_size=8)
)
JSON = st.recursive(
    LEAVES,
    lambda ch: (
        st.lists(ch, max_size=4)
        | st.dictionaries(st.text(st.characters(codec="utf-8"), max_size=6), ch, max_size=4)
    ),
    max_leaves=5,
)
KEYS = st.sampled_from(
    ["role", "content", "name", "tool_calls", "tool_call_id", "metadata", "artifacts", "x"]
) | st.text(ALL_CHARS, max_size=4)
ANY = st.recursive(
    LEAVES | st.binary(max_size=6) | st.text(ALL_CHARS, max_size=8),
    lambda ch: st.lists(ch, max_size=3) | st.dictionaries(KEYS, ch, max_size=3),
    max_leaves=3,
)
MESSAGES = st.fixed_dictionaries(
    {
        "role": st.sampled_from(["user", "assistant", "system", "tool", "developer", "x"]),
        "content": st.text(ALL_CHARS, max_size=8) | st.none() | ANY,
    },
    optional={
        "name": st.text(ALL_CHARS, max_size=8) | ANY,
        "tool_call_id": st.text(ALL_CHARS, max_size=8) | ANY,
        "metadata": st.dictionaries(st.text(max_size=4), JSON, max_size=3) | ANY,
        "tool_calls": ANY,
        "refusal": JSON,  # an assistant's key: refused on the other roles
    },
) | st.dictionaries(KEYS, ANY, max_size=4)


def finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(finite(v) for v in value)
    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    return True


def nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


def arguments(items: list[tuple[str, Any]], dup: bool) -> str:
    if dup and items:
        items = [*items, (items[0][0], "dup")]
    return "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in items) + "}"


def test_structured_values(
    writer: Callable[..., Writer], capsys: Any, tmp_path_factory: Any
) -> None:
    w = writer()
    stats: Counter[str] = Counter()
    depth_ok: set[int] = set()
    depth_refused: set[int] = set()
    keys = st.text(st.characters(codec="utf-8"), max_size=4)

    @PROPERTY
    @given(
        st.one_of(
            st.tuples(st.just("json"), st.sampled_from(["audio", "metadata", "extra"]), JSON),
            st.tuples(st.just("nesting"), st.integers(0, 200), LEAVES.filter(finite)),
            st.tuples(
                st.just("arguments"),
                st.lists(st.tuples(keys, LEAVES.filter(finite)), max_size=6),
                st.booleans(),
            ),
            st.tuples(st.just("message"), MESSAGES, st.none()),
        )
    )
    def prop(case: tuple[str, Any, Any]) -> None:
        kind, a, b = case
        if kind == "json":
            # ``audio``: a key an assistant message may carry, any JSON value; ``extra``:
            # a key no provider takes, refused whatever its value (msgkeys24)
            msg: dict[str, Any] = {"role": "assistant", "content": "v", a: {"v": b}}
            outcome, body = w.append(msg)
            assert (outcome == "ok") == (finite(b) and a != "extra")
            if body is not None and a == "audio":
                assert json.loads(body)["audio"] == {"v": json.loads(json.dumps(b))}
        elif kind == "nesting":
            value = nested(a, b)
            outcome, body = w.append({"role": "assistant", "content": "d", "audio": value})
            (depth_ok if outcome == "ok" else depth_refused).add(a)
            if body is not None:
                assert json.loads(body).get("audio") == value  # a None value is left out
        elif kind == "arguments":
            text = arguments(a, b)
            call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": text}}
            outcome, body = w.append({"role": "assistant", "content": None, "tool_calls": [call]})
            assert outcome == "ok"
            assert body is not None
            assert json.loads(body)["tool_calls"][0]["function"]["arguments"] == text
        else:
            try:
                canonical: bytes | None = canonicalize(a)[0]
            except srt.InvalidMessageError:
                canonical = None
            outcome, body = w.append(a)
            # Any message that passes validation is stored as its canonical bytes, and
            # those bytes are a fixed point; anything else is refused with nothing written.
            if body is not None and canonical is not None:
                assert body == canonical
                assert canonicalize(json.loads(body))[0] == body
        stats[f"{kind} {outcome}"] += 1

    run(
        "properties_structured",
        prop,
        stats,
        capsys,
        tmp_path_factory,
        lambda: {
            "deepest_nesting_accepted": max(depth_ok),
            "shallowest_refused": min(depth_refused),
        },
    )
    assert max(depth_ok) < min(depth_refused)  # one clean nesting limit
    assert max(depth_ok) >= 32
