"""Store conformance for issue 13's protocol additions: the session limit, the append
deadline and gc's watched prefixes, on every engine of ``conftest.ENGINES``."""

from __future__ import annotations

import threading
import time

import pytest
from helpers import conversation, extend, new_session, nodes

import srt
from conftest import EngineUnderTest
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
    for th in threads:
        th.join()
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
