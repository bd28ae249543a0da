"""The content-addressed store: bad input leaves it unchanged, dedup, forks, rewinds and
edits copy nothing. Request bytes are in ``test_store_requests``, races in
``test_store_races``, file identity and permissions in ``test_store_files``, session names
and lookup in ``test_store_sessions``.

Rows are inspected by opening the file with ``apsw`` (see ``support.snapshot``);
the stdlib ``sqlite3`` module is never used on an srt file.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import srt
from srt.message import canonicalize
from store_support import HISTORY, assistant, user
from support import BAD_MESSAGES, count, rows, snapshot

# -- bad input leaves the store unchanged ------------------------------------------------

_LIMIT = 10_000
_BAD = [
    *BAD_MESSAGES,
    ("oversize-content", user("x" * (_LIMIT + 1))),
    ("oversize-multibyte", user("€" * (_LIMIT // 2))),
    ("oversize-parts", {"role": "user", "content": [{"type": "text", "text": "y" * 3000}] * 4}),
    ("oversize-image", {"role": "user", "content": [{"type": "image", "data": b"\0" * _LIMIT}]}),
]


@pytest.fixture
def rt(store_url: str) -> Iterator[srt.Runtime]:
    """The session tests of this module run once per engine (SQLite, PostgreSQL)."""
    with srt.Runtime(store_url) as runtime:
        yield runtime


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[srt.Runtime]:
    with srt.Runtime(str(tmp_path / "limited.db"), max_message_bytes=_LIMIT) as runtime:
        yield runtime


@pytest.mark.parametrize("bad", [m for _, m in _BAD], ids=[i for i, _ in _BAD])
def test_bad_input_leaves_the_store_unchanged(limited: srt.Runtime, bad: Any) -> None:
    s = limited.session("chat")
    s.append(*HISTORY)
    s.request(model="m")
    before = snapshot(limited.path)
    serialized = limited.serialized

    with pytest.raises(srt.InvalidMessageError):
        s.append(bad)
    assert snapshot(limited.path) == before

    # Only the last of several messages is bad: nothing at all is written.
    with pytest.raises(srt.InvalidMessageError):
        s.append(user("fine 1"), assistant("fine 2"), bad)
    assert snapshot(limited.path) == before
    with pytest.raises(srt.InvalidMessageError):
        s.append(user("fine 3"), bad, rebase=True)
    with pytest.raises(srt.InvalidMessageError):
        s.edit(1, bad)
    assert snapshot(limited.path) == before

    assert s.messages() == HISTORY
    assert limited.session("chat").messages() == HISTORY
    assert [i.name for i in limited.sessions()] == ["chat"]
    assert limited.serialized == serialized
    # The handle is still usable afterwards.
    s.append(user("after"))
    assert s.messages() == [*HISTORY, user("after")]


# -- dedup ------------------------------------------------------------------------------


def test_shared_system_prompt_is_stored_once(rt: srt.Runtime) -> None:
    """100 sessions x 50 turns, all starting with the same 4 KB system prompt.

    The prompt's row is counted with both of these queries; each must return 1::

        SELECT count(*) FROM messages WHERE body = ?          -- the canonical bytes
        SELECT count(*) FROM messages WHERE instr(body, ?) > 0 -- the prompt's UTF-8 bytes
    """
    rng = random.Random(7)
    prompt = "".join(rng.choice("abcdefghij klmnop ✓é") for _ in range(4096))
    system = {"role": "system", "content": prompt}
    for i in range(100):
        s = rt.session(f"user-{i}")
        s.append(system)
        for t in range(50):
            s.append(user(f"s{i} q{t}"), assistant(f"s{i} a{t}"))
        assert len(s) == 101

    body = canonicalize(system)[0]
    by_body = rows(rt.path, "SELECT count(*) FROM messages WHERE body = ?", (body,))[0][0]
    by_instr = sum(
        prompt.encode() in bytes(b) for (b,) in rows(rt.path, "SELECT body FROM messages")
    )
    total = rows(rt.path, "SELECT count(*) FROM messages")[0][0]
    roots = rows(rt.path, "SELECT count(*) FROM nodes WHERE depth = 1")[0][0]
    nodes = rows(rt.path, "SELECT count(*) FROM nodes")[0][0]
    assert by_body == 1
    assert by_instr == 1
    assert total == 1 + 100 * 50 * 2
    assert roots == 1  # the system prompt's node is shared too
    assert nodes == 1 + 100 * 50 * 2
    assert rt.session("user-42").messages()[0] == system


def test_identical_histories_share_node_rows(rt: srt.Runtime) -> None:
    convo = [
        HISTORY[0],
        *itertools.chain.from_iterable((user(f"q{t}"), assistant(f"a{t}")) for t in range(20)),
    ]
    a = rt.session("a")
    for msg in convo:
        a.append(msg)
    rows = {t: count(rt.path, t) for t in ("messages", "nodes")}
    b = rt.session("b")
    b.append(*convo[:10])
    b.append(*convo[10:])
    assert {t: count(rt.path, t) for t in ("messages", "nodes")} == rows
    assert a.head == b.head
    assert a.prefix_hash == b.prefix_hash
    assert b.messages() == convo
    # Diverging afterwards adds exactly one node and one message.
    b.append(user("only in b"))
    assert count(rt.path, "nodes") == rows["nodes"] + 1
    assert count(rt.path, "messages") == rows["messages"] + 1
    assert a.prefix_hash != b.prefix_hash


def test_repeated_message_in_one_session_is_stored_once(rt: srt.Runtime) -> None:
    s = rt.session("s")
    s.append(user("again"), user("again"), user("again"))
    assert s.messages() == [user("again")] * 3
    assert count(rt.path, "messages") == 1
    assert count(rt.path, "nodes") == 3


# -- fork, rewind, edit copy nothing --------------------------------------------------------


@pytest.fixture
def long_session(rt: srt.Runtime) -> tuple[srt.Session, list[dict[str, str]]]:
    msgs = [user(f"message {i}") if i % 2 else assistant(f"message {i}") for i in range(2000)]
    s = rt.session("long")
    for i in range(0, 2000, 250):
        s.append(*msgs[i : i + 250])
    return s, msgs


@pytest.mark.parametrize(("at", "keep"), [(None, 2000), (-1, 1999), (10, 10), (0, 0)])
def test_fork_copies_no_rows(
    rt: srt.Runtime,
    long_session: tuple[srt.Session, list[dict[str, str]]],
    at: int | None,
    keep: int,
) -> None:
    s, msgs = long_session
    before = {t: count(rt.path, t) for t in ("messages", "nodes", "sessions")}
    child = s.fork("child", at=at) if at is not None else s.fork("child")
    after = {t: count(rt.path, t) for t in ("messages", "nodes", "sessions")}
    assert after == {**before, "sessions": before["sessions"] + 1}
    assert child.messages() == msgs[:keep]
    assert len(child) == keep
    # The same from a fresh handle and a fresh runtime.
    assert rt.session("child", create=False).messages() == msgs[:keep]
    with srt.Runtime(rt.path) as other:
        assert other.session("child", create=False).messages() == msgs[:keep]
    assert s.messages() == msgs  # the parent is untouched


def test_fork_then_diverge(
    rt: srt.Runtime, long_session: tuple[srt.Session, list[dict[str, str]]]
) -> None:
    s, msgs = long_session
    child = s.fork("child", at=10)
    child.append(user("child turn"))
    s.append(user("parent turn"))
    assert child.messages() == [*msgs[:10], user("child turn")]
    assert s.messages() == [*msgs, user("parent turn")]
    with srt.Runtime(rt.path) as other:
        assert other.session("child").messages() == [*msgs[:10], user("child turn")]


def test_rewind_and_edit_copy_nothing_but_the_edit(
    rt: srt.Runtime, long_session: tuple[srt.Session, list[dict[str, str]]]
) -> None:
    s, msgs = long_session
    before = snapshot(rt.path)
    s.rewind(500)
    after = snapshot(rt.path)
    assert after["messages"] == before["messages"]
    assert after["nodes"] == before["nodes"]
    assert len(after["sessions"]) == len(before["sessions"])
    assert s.messages() == msgs[:1500]

    s.edit(100, user("edited"))
    edited = snapshot(rt.path)
    assert len(edited["messages"]) == len(before["messages"]) + 1
    assert len(edited["nodes"]) == len(before["nodes"]) + 1
    assert edited["messages"][: len(before["messages"])] == before["messages"]
    assert edited["nodes"][: len(before["nodes"])] == before["nodes"]
    assert s.messages() == [*msgs[:100], user("edited")]

    # Editing back to the original content reuses the original node: no new rows.
    s.edit(100, msgs[100])
    assert snapshot(rt.path)["nodes"] == edited["nodes"]
    assert s.messages() == msgs[:101]
    with srt.Runtime(rt.path) as other:
        assert other.session("long").messages() == msgs[:101]


def test_rewind_bounds(rt: srt.Runtime) -> None:
    s = rt.session("s")
    s.append(*HISTORY)
    with pytest.raises(IndexError):
        s.rewind(4)
    with pytest.raises(IndexError):
        s.rewind(-1)
    with pytest.raises(IndexError):
        s.edit(3, user("x"))
    with pytest.raises(IndexError):
        s.fork("f", at=4)
    s.rewind(0)
    assert s.messages() == HISTORY
    s.rewind(3)
    assert s.messages() == []
    assert s.head is None
    assert rt.session("s").messages() == []


def test_deleting_a_session_never_harms_its_forks(
    rt: srt.Runtime, long_session: tuple[srt.Session, list[dict[str, str]]]
) -> None:
    s, msgs = long_session
    s.fork("keep-all")
    s.fork("keep-some", at=-100)
    rt.delete("long")
    with pytest.raises(srt.SessionNotFoundError):
        rt.session("long", create=False)
    with pytest.raises(srt.SessionNotFoundError):
        s.append(user("into a deleted session"))
    rt.close()
    with srt.Runtime(rt.path) as other:
        assert other.session("keep-all", create=False).messages() == msgs
        assert other.session("keep-some", create=False).messages() == msgs[:-100]
        assert [i.name for i in other.sessions()] == ["keep-all", "keep-some"]
    with srt.Runtime(rt.path) as other:
        assert other.store.verify().ok


def test_edit_and_rewind_are_seen_by_every_cached_assembly(rt: srt.Runtime) -> None:
    """Regression: an edit that keeps the length must not reuse the old fragment."""
    s = rt.session("edit-cache")
    s.append({"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"})
    for fmt in ("openai.chat", "anthropic.messages", "openai.responses"):
        s.request(fmt, model="m", cache=False)
    s.edit(1, {"role": "assistant", "content": "EDITED"})
    for fmt in ("openai.chat", "anthropic.messages", "openai.responses"):
        body = s.request(fmt, model="m", cache=False)
        assert b"EDITED" in body and b'"a1"' not in body, fmt
    s.rewind(1)
    s.append({"role": "assistant", "content": "again"})
    assert b"again" in s.request(model="m", cache=False)
