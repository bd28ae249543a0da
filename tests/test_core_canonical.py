"""``srt._core.plain_prepared``, the C path of an appended ``{"role", "content"}`` message,
against the Python path it stands in for (``message.canonical_text`` and the store's
digest): the same bytes and hash for every text (escapes, controls, non-ASCII, the
largest code points, huge ones), and ``None`` wherever the Python path refuses the
message (a lone surrogate, over the size limit) or does not take it (any other shape),
so that it then says why in its own words."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srt import InvalidMessageError, Runtime, _core
from srt._chain import Prepared
from srt._hashing import keyed
from srt.message import DEFAULT_MAX_MESSAGE_BYTES, TEXT_HEADS, canonical_text, canonicalize

#: JSON's escapes, every control, DEL, the JSON-unsafe line separators (kept as they
#: are), the UTF-8 length boundaries and lone surrogates.
SPECIAL = [
    '"',
    "\\",
    "/",
    "\x7f",
    "\u2028",
    "\u2029",
    "\x80",
    "\xff",
    "\u07ff",
    "\u0800",
    "\uffff",
    "\U00010000",
    "\U0010ffff",
    "\ud800",
    "\udfff",
    *map(chr, range(32)),
]
TEXT = st.text(alphabet=st.one_of(st.characters(codec=None), st.sampled_from(SPECIAL)))
ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool", "bot", ""])


def _python(msg: Any, limit: int) -> tuple[str, Any]:
    """What the Python path makes of ``msg``: its body, ``None`` (not a plain message),
    or the error it raises."""
    try:
        return "ok", canonical_text(msg, limit)
    except InvalidMessageError as exc:
        return "refused", str(exc)


def _check(msg: Any, limit: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
    got = _core.plain_prepared(msg, TEXT_HEADS, limit, _core.digest, Prepared)
    outcome, body = _python(msg, limit)
    if outcome == "ok" and body is not None:
        assert type(got) is Prepared
        assert got == (_core.digest(body), body, None)
        assert got.body == canonicalize(msg, limit)[0]
    else:
        assert got is None, (outcome, body)


@settings(max_examples=3000)
@given(role=ROLES, text=TEXT)
def test_same_bytes_and_hash_as_python(role: str, text: str) -> None:
    _check({"role": role, "content": text})
    _check({"content": text, "role": role})  # the keys' order does not matter


#: Runs of plain characters (shorter and longer than the 16 bytes the C path checks at
#: once) between the characters JSON escapes, so that each falls at every offset.
RUNS = st.lists(
    st.tuples(st.text(alphabet="ab é数", max_size=40), st.sampled_from(SPECIAL)), max_size=12
).map(lambda runs: "".join(a + b for a, b in runs))


@settings(max_examples=2000)
@given(text=RUNS)
def test_runs_between_escapes(text: str) -> None:
    _check({"role": "user", "content": text})


@given(text=TEXT, limit=st.integers(0, 120))
def test_limits_as_python(text: str, limit: int) -> None:
    # Near the limit: the text's characters against it, then the whole body's bytes.
    _check({"role": "user", "content": text}, limit)


@pytest.mark.parametrize("size", [0, 1, 100_000, 3_000_000])
@pytest.mark.parametrize("unit", ["a", "é", "数", "\U0001f600", '"\n', "\x01"])
def test_huge(size: int, unit: str) -> None:
    text = unit * (size // len(unit.encode("utf-8")))
    _check({"role": "assistant", "content": text}, 10 * size + 64)
    body = canonical_text({"role": "assistant", "content": text}, 10 * size + 64)
    assert body is not None
    _check({"role": "assistant", "content": text}, len(body))  # exactly at the limit
    _check({"role": "assistant", "content": text}, len(body) - 1)  # one byte over


def test_lone_surrogate_falls_back_to_the_python_error() -> None:
    msg = {"role": "user", "content": "ok \ud83d then"}
    assert _core.plain_prepared(msg, TEXT_HEADS, 1000, _core.digest, Prepared) is None
    with pytest.raises(InvalidMessageError, match="lone surrogate"):
        Runtime(":memory:").session("s").append(msg)


class _Str(str):
    pass


class _Collides:
    """A key that hashes as "role" and cannot be compared: ``dict.get`` raises."""

    def __hash__(self) -> int:
        return hash("role")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("compared")


@pytest.mark.parametrize(
    "msg",
    [
        {"role": "user", "content": "hi", "name": "x"},  # an extra key
        {"role": "user"},
        {"role": "user", "text": "hi"},
        {"role": "tool", "content": "hi"},  # a tool result needs its call id
        {"role": "robot", "content": "hi"},
        {"role": None, "content": "hi"},
        {"role": _Str("user"), "content": "hi"},
        {"role": "user", "content": _Str("hi")},
        {"role": "user", "content": None},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": b"user", "content": "hi"},
        OrderedDict(role="user", content="hi"),  # not a dict itself: the general walk
        [("role", "user"), ("content", "hi")],
        "user: hi",
        None,
    ],
)
def test_other_shapes_fall_back(msg: Any) -> None:
    assert _core.plain_prepared(msg, TEXT_HEADS, 10_000, _core.digest, Prepared) is None


def test_a_key_that_raises_raises_as_in_python() -> None:
    msg = {_Collides(): "user", "content": "hi"}
    with pytest.raises(RuntimeError, match="compared"):
        canonical_text(msg)
    with pytest.raises(RuntimeError, match="compared"):
        _core.plain_prepared(msg, TEXT_HEADS, 10_000, _core.digest, Prepared)


@pytest.mark.parametrize("hash_key", [None, b"k" * 32])
def test_append_stores_the_python_paths_bytes_and_hash(tmp_path: Any, hash_key: Any) -> None:
    """Through a session (both hashings): the chain and the file hold the Python path's
    body and digest for each message, plain or not."""
    rt = Runtime(str(tmp_path / "a.db"), hash_key=hash_key)
    hashing = rt.store.hashing
    digest = keyed(hash_key).digest if hash_key is not None else _core.digest
    msgs = [
        {"role": "system", "content": 'be "brief"\n'},
        {"role": "user", "content": "é 数 \U0001f600 \x00"},
        {"role": "assistant", "content": "x", "name": "bot"},  # the general walk
        {"role": "user", "content": ""},
    ]
    s = rt.session("s")
    for m in msgs:
        s.append(m)
    bodies = [canonicalize(m)[0] for m in msgs]
    assert s.messages_bytes() == bodies
    assert s.prefix_hashes() == hashing.chain_many(_core.ROOT, [digest(b) for b in bodies])
    rt.close()
    again = Runtime(str(tmp_path / "a.db"), hash_key=hash_key).session("s")
    assert again.messages_bytes() == bodies
    assert again.prefix_hashes() == s.prefix_hashes()


def test_new_nodes_as_the_namedtuple_builds_them() -> None:
    from srt.store import NewNode

    prepared = [Prepared(b"h1", b"b1", None), Prepared(b"h2", b"b2", b'{"pinned":true}')]
    for plain in (0, 1, 2):
        got = _core.new_nodes(prepared, [b"p1", b"p2"], plain, "partial", NewNode)
        want = [
            NewNode(h, body, p, meta, None if i < plain else "partial")
            for i, ((h, body, meta), p) in enumerate(zip(prepared, [b"p1", b"p2"], strict=True))
        ]
        assert got == want
        assert all(type(n) is NewNode for n in got)
    assert _core.first_items(prepared) == [b"h1", b"h2"]
    with pytest.raises(ValueError, match="prefix hash for each"):
        _core.new_nodes(prepared, [b"p1"], 0, None, NewNode)
