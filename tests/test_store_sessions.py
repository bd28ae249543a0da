"""Session names (hostile ones are plain names, invalid ones refused) and session lookup,
fork targets, delete and rename, once per engine."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import srt
from store_support import HISTORY, user
from support import connect, snapshot


@pytest.fixture
def rt(store_rt: srt.Runtime) -> srt.Runtime:
    """The session tests of this module run once per engine (SQLite, PostgreSQL)."""
    return store_rt


# -- session names ----------------------------------------------------------------------------

_HOSTILE_OK = [
    "'); DROP TABLE sessions;--",
    "../../etc/passwd",
    "..",
    "/tmp/x",
    "名前 with spaces",
    "𝄞" * 256,
    "%s %d {0} ?1 :name",
]


@pytest.mark.parametrize("name", _HOSTILE_OK)
def test_hostile_names_are_plain_names(tmp_path: Path, name: str) -> None:
    path = tmp_path / "inner" / "srt.db"
    outside = sorted(os.listdir(tmp_path))
    with srt.Runtime(str(path)) as rt:
        rt.session(name).append(user("hi"))
        rt.session("other").append(user("hello"))
    with srt.Runtime(str(path)) as rt:
        assert rt.session(name, create=False).messages() == [user("hi")]
        assert sorted(i.name for i in rt.sessions()) == sorted([name, "other"])
        rt.rename(name, "renamed")
        assert rt.session("renamed", create=False).messages() == [user("hi")]
        rt.rename("renamed", name)
        assert rt.session(name, create=False).messages() == [user("hi")]
    assert sorted(os.listdir(tmp_path)) == sorted({*outside, "inner"})
    assert {p.name for p in (tmp_path / "inner").iterdir()} <= {
        "srt.db",
        "srt.db-wal",
        "srt.db-shm",
    }
    with connect(str(path)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
    assert {"heap", "nodes", "sessions"} <= tables


_BAD_NAMES: list[Any] = [
    "",
    "x" * 10_240,
    "x" * 257,
    "a\x00b",
    "line\nbreak",
    "tab\t",
    "del\x7f",
    "lone \ud800 surrogate",
    "\udfff",
    b"bytes",
    42,
    None,
    ["list"],
]


@pytest.mark.parametrize("name", _BAD_NAMES, ids=[repr(n)[:20] for n in _BAD_NAMES])
def test_invalid_session_names(rt: srt.Runtime, name: Any) -> None:
    s = rt.session("ok")
    s.append(user("x"))
    before = snapshot(rt.path)
    for call in (
        lambda: rt.session(name),
        lambda: rt.session(name, create=False),
        lambda: rt.delete(name),
        lambda: rt.rename("ok", name),
        lambda: rt.rename(name, "ok2"),
        lambda: s.fork(name),
    ):
        with pytest.raises(srt.InvalidSessionNameError) as info:
            call()
        assert isinstance(info.value, srt.SessionError)
        assert isinstance(info.value, ValueError)
    assert snapshot(rt.path) == before


def test_longest_allowed_name(rt: srt.Runtime) -> None:
    name = "n" * 256
    rt.session(name).append(user("x"))
    assert rt.session(name, create=False).messages() == [user("x")]


# -- session lookup, fork targets, delete and rename ------------------------------------------


def test_missing_session_with_create_false(rt: srt.Runtime) -> None:
    before = snapshot(rt.path)
    with pytest.raises(srt.SessionNotFoundError) as info:
        rt.session("missing", create=False)
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, srt.SessionError)
    assert snapshot(rt.path) == before
    assert rt.sessions() == []


def test_session_created_on_first_use(rt: srt.Runtime) -> None:
    s = rt.session("new")
    assert s.name == "new"
    assert len(s) == 0
    assert s.head is None
    assert s.prefix_hash is None
    assert s.messages() == []
    info = rt.sessions()
    assert [(i.name, i.messages, i.head_prefix) for i in info] == [("new", 0, None)]
    s.append(*HISTORY)
    [i] = rt.sessions()
    assert (i.name, i.messages, i.head_prefix) == ("new", 3, s.prefix_hash)
    assert i.updated >= i.created


def test_fork_onto_an_existing_name(rt: srt.Runtime) -> None:
    s = rt.session("a")
    s.append(*HISTORY)
    rt.session("b").append(user("b's own"))
    before = snapshot(rt.path)
    with pytest.raises(srt.SessionExistsError):
        s.fork("b")
    with pytest.raises(srt.SessionExistsError):
        s.fork("a")
    assert snapshot(rt.path) == before
    assert rt.session("b").messages() == [user("b's own")]


def test_delete(rt: srt.Runtime) -> None:
    with pytest.raises(srt.SessionNotFoundError):
        rt.delete("missing")
    rt.session("a").append(user("x"))
    rt.delete("a")
    assert rt.sessions() == []
    with pytest.raises(srt.SessionNotFoundError):
        rt.delete("a")
    # The name can be reused; the new session starts empty.
    assert rt.session("a").messages() == []


def test_rename(rt: srt.Runtime) -> None:
    rt.session("old").append(*HISTORY)
    rt.session("taken").append(user("mine"))
    rt.rename("old", "new")
    assert rt.session("new", create=False).messages() == HISTORY
    with pytest.raises(srt.SessionNotFoundError):
        rt.session("old", create=False)
    with pytest.raises(srt.SessionExistsError):
        rt.rename("new", "taken")
    with pytest.raises(srt.SessionNotFoundError):
        rt.rename("old", "newer")
    assert rt.session("taken").messages() == [user("mine")]
    assert [i.name for i in rt.sessions()] == ["new", "taken"]
