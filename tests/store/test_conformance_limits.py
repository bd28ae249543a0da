"""Store conformance for issue 13's protocol additions (the session limit, the append
deadline and gc's watched prefixes) and for arguments at their edges, on every engine of
``engines_support.ENGINES``; and every store's id."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
from engines_support import ENGINES, EngineUnderTest
from helpers import body, conversation, extend, new_session, nodes

import srt
from rel_support.waits import joined
from srt.store import Store


def test_the_session_limit_refuses_one_more_and_writes_nothing(store: Store) -> None:
    for i in range(3):
        store.create_session(f"s{i}", None, exist_ok=False, limit=3)
    with pytest.raises(srt.SessionLimitError, match="maximum is 3"):
        store.create_session("s3", None, exist_ok=False, limit=3)
    assert [i.name for i in store.list_sessions()] == ["s0", "s1", "s2"]
    again = store.create_session("s1", None, exist_ok=True, limit=3)  # opening is not creating
    assert again.name == "s1"


def test_concurrent_creators_never_pass_the_limit(engine: EngineUnderTest) -> None:
    refused: list[str] = []
    lock = threading.Lock()

    def create(t: int) -> None:
        store = engine.open()
        for i in range(5):
            try:
                store.create_session(f"t{t}-{i}", None, exist_ok=False, limit=7)
            except srt.SessionLimitError:
                with lock:
                    refused.append(f"t{t}-{i}")

    threads = [threading.Thread(target=create, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    joined(*threads)
    assert len(engine.open().list_sessions()) == 7 and len(refused) == 13


def test_an_append_past_its_deadline_still_commits_when_nothing_waits(store: Store) -> None:
    sid, _ = new_session(store, "s")
    ids = store.append(sid, None, None, 0, nodes(conversation(2)), deadline=time.monotonic())
    assert len(ids) == 2 and len(store.chain(ids[-1])) == 2


def test_gc_names_the_watched_prefixes_no_live_node_carries(store: Store) -> None:
    _, keep = new_session(store, "keep", conversation(2, "k"))
    _, drop = new_session(store, "drop", conversation(3, "d"))
    extend(store, "keep", conversation(1, "k2"))
    live = store.chain(keep[-1])[-1][3]
    dead = store.chain(drop[-1])[-1][3]
    unknown = b"\x01" * 16
    store.delete_session("drop")
    dry = store.gc(dry_run=True, watch=[live, dead, unknown])
    assert set(dry.dead_prefixes) == {dead, unknown}
    assert store.chain(drop[-1])  # a dry run changed nothing
    report = store.gc(watch=[live, dead])
    assert report.dead_prefixes == (dead,)
    assert store.gc(watch=[live]).dead_prefixes == ()


def test_a_list_limit_past_any_integer_column_lists_everything(store: Store) -> None:
    """``list_objects`` with a limit no 64-bit integer holds: every object, on every
    engine (SQLite raised a bare ``OverflowError`` binding it)."""
    store.put_object("k", "s", "a", b"1")
    store.put_object("k", "s", "b", b"2")
    for limit in (2**63, 10**30):
        assert [o.key for o in store.list_objects("k", "s", limit=limit)] == ["a", "b"]
        got = store.list_objects("k", "s", limit=limit, descending=True)
        assert [o.key for o in got] == ["b", "a"]


def test_search_text_holding_nul_is_refused_alike_and_a_bad_query_is_the_callers(
    engine: EngineUnderTest,
) -> None:
    """A U+0000 in the search text is a ``ConfigError`` on every engine, with or without
    ``syntax``, before anything is read or built: each engine indexes a NUL in a message
    as a break between words, so no search finds one (SQLite searched a truncated text or
    raised ``StoreError``; PostgreSQL blamed its ``text`` type). With ``syntax``, a query
    FTS5 cannot parse is a ``ConfigError`` saying what is wrong with it, on SQLite (it was
    a ``StoreError``, or a ``CorruptionError`` for ``a:b``); PostgreSQL's
    ``websearch_to_tsquery`` reads any text, so there the same queries just search."""
    store = engine.open()
    new_session(store, "s", [body("user", "quokka x\x00wombat")])
    for text in ("quokka\x00", "\x00", "x\x00wombat", "a\x00 OR b"):
        for syntax in (False, True):
            with pytest.raises(srt.ConfigError, match=r"U\+0000 \(NUL\), which no search"):
                store.search(text, syntax=syntax)
    assert not store.has_search_index()
    bad = ['"unterminated', "AND OR", "NOT", "*", "(", "quokka:x", "-quokka", "quokka)"]
    for query in bad:
        if engine.name == "sqlite":
            with pytest.raises(srt.ConfigError, match="not a valid FTS5 query: ") as err:
                store.search(query, syntax=True)
            assert "SQLError" not in str(err.value) and "fts5" not in str(err.value)
        else:
            assert isinstance(store.search(query, syntax=True), list)
    if engine.name == "sqlite":
        assert not store.has_search_index()  # a bad query builds nothing
    for text in ("wombat", "quokka wombat", "x"):
        assert [h.text for h in store.search(text)] == ["quokka x\x00wombat"]


def test_a_store_has_an_id_of_its_own_that_every_opener_reads(
    engine: EngineUnderTest, tmp_path: Path
) -> None:
    # ``store_id`` scopes the session cache keys and names the local provider's saved
    # KV states: random per database, the same for every handle on it.
    first = engine.open()
    sid = first.store_id
    assert re.fullmatch("[0-9a-f]{32}", sid), sid
    new_session(first, "a", conversation(2))
    assert engine.open().store_id == sid
    (tmp_path / "other").mkdir()
    with ENGINES[engine.name](tmp_path / "other") as other:
        second = other.open()
        try:
            assert re.fullmatch("[0-9a-f]{32}", second.store_id)
            assert second.store_id != sid
        finally:
            second.close()
