"""The integrations attacked the way their users' code will: odd and hostile input through
the public protocol methods, cancellation, races between handles and processes, secrets.
Each refusal is a typed ``srt.errors`` error, and the store is read back after it: nothing
half-written."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import apsw
import pytest
from agents import SQLiteSession
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import empty_checkpoint

import srt
from rel_support.waits import joined, waited
from srt.errors import ConfigError, InvalidMessageError, SessionExistsError
from srt.integrations.agents import SrtSession
from srt.integrations.langchain import SrtChatMessageHistory
from srt.integrations.langgraph import SrtSaver


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# -- the Agents SDK session ----------------------------------------------------------------


@pytest.mark.parametrize(
    "item",
    [
        {"role": "user", "content": b"bytes"},
        {"type": "function_call_output", "call_id": "c1", "output": b"bytes"},
        {"role": "user", "content": {1, 2}},
        {"role": "user", "content": float("nan")},
    ],
    ids=["bytes-content", "bytes-output", "set-content", "nan-content"],
)
def test_content_that_is_not_json_is_refused_whole(tmp_path: Path, item: dict[str, Any]) -> None:
    s = SrtSession("s", tmp_path / "a.db")
    run(s.add_items([{"role": "user", "content": "kept"}]))
    with pytest.raises(InvalidMessageError, match="not JSON"):
        run(s.add_items([{"role": "user", "content": "first of two"}, item]))
    assert run(s.get_items()) == [{"role": "user", "content": "kept"}]
    s.close()
    with srt.Runtime(tmp_path / "a.db") as rt:
        assert [m["content"] for m in rt.session("s").messages()] == ["kept"]


@pytest.mark.parametrize("items", [5, "text", {"role": "user", "content": "x"}, b"x"])
def test_add_items_takes_a_list(tmp_path: Path, items: Any) -> None:
    s = SrtSession("s", tmp_path / "a.db")
    with pytest.raises(InvalidMessageError, match="list of Responses items"):
        run(s.add_items(items))
    assert run(s.get_items()) == []
    s.close()


def test_get_items_limit_as_the_sdk_reads_it(tmp_path: Path) -> None:
    """0 gives nothing and a negative limit everything (SQLite's LIMIT, which the SDK's
    ``SQLiteSession`` passes on); a limit that is not an int is a ``ConfigError``."""
    items = [{"role": "user", "content": str(i)} for i in range(3)]
    srt_s = SrtSession("s", tmp_path / "a.db")
    sdk_s = SQLiteSession("s", tmp_path / "sdk.db")
    for s in (srt_s, sdk_s):
        run(s.add_items(items))
    for limit in (0, -1, -5, 1, 2, 3, 9, None):
        assert run(srt_s.get_items(limit)) == run(sdk_s.get_items(limit)), limit
    for bad in (1.5, "2", [1]):
        with pytest.raises(ConfigError, match="limit must be an int"):
            run(srt_s.get_items(bad))
    assert run(srt_s.pop_item()) == items[-1]
    run(srt_s.clear_session())
    assert run(srt_s.pop_item()) is None
    assert run(srt_s.get_items(-1)) == []
    srt_s.close()
    sdk_s.close()


def _hold_the_write_lock(path: Path, started: threading.Event, seconds: float) -> None:
    conn = apsw.Connection(str(path))
    conn.execute("BEGIN IMMEDIATE")
    started.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def test_a_cancelled_add_is_settled_when_the_cancellation_arrives(tmp_path: Path) -> None:
    """Cancelling ``add_items`` while its write waits for the file: the caller gets the
    ``CancelledError`` once the write is whole or not there, never before (a write that
    lands after the caller was told it was cancelled is a lost update waiting to happen).
    """
    db = tmp_path / "a.db"
    s = SrtSession("c", db)
    run(s.add_items([{"role": "user", "content": "before"}]))
    started = threading.Event()
    blocker = threading.Thread(target=_hold_the_write_lock, args=(db, started, 0.5))
    blocker.start()
    waited(started, "the blocker taking the write lock")
    new = [{"role": "user", "content": "a", "id": "1"}, {"role": "user", "content": "b"}]

    async def cancel_mid_add() -> list[Any]:
        task = asyncio.create_task(s.add_items(new))
        await asyncio.sleep(0.15)  # the write is waiting for the lock
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # What another handle sees as the cancellation arrives (asyncio.run would wait
        # for the session's thread on its way out).
        with srt.Runtime(db) as rt:
            other = SrtSession("c", rt)
            return await other.get_items()

    seen = run(cancel_mid_add())
    joined(blocker, what="holding the write lock")
    later = run(s.get_items())
    assert seen == later
    before = [{"role": "user", "content": "before"}]
    assert later in (before, [*before, *new])
    s.close()


def test_two_tasks_on_one_handle_add_and_pop(tmp_path: Path) -> None:
    s = SrtSession("t", tmp_path / "a.db")

    async def adder(tag: str) -> None:
        for i in range(15):
            await s.add_items([{"role": "user", "content": f"{tag}{i}", "id": f"id-{tag}{i}"}])

    async def popper() -> list[Any]:
        popped = []
        for _ in range(10):
            item = await s.pop_item()
            if item is not None:
                popped.append(item)
            await asyncio.sleep(0)
        return popped

    async def main() -> list[Any]:
        *_, popped = await asyncio.gather(adder("a"), adder("b"), popper())
        return list(popped)

    popped = run(main())
    left = run(s.get_items())
    everything = sorted([*popped, *left], key=lambda i: i["content"])
    added = [
        {"role": "user", "content": f"{t}{i}", "id": f"id-{t}{i}"} for t in "ab" for i in range(15)
    ]
    assert everything == sorted(added, key=lambda i: i["content"])
    s.close()


# -- secrets ------------------------------------------------------------------------------


def test_no_password_in_the_adapters_reprs_or_errors(pg_url: str) -> None:
    """A store URL's password is in no adapter's ``repr()``, nor in the error of one
    that cannot reach its server."""
    secret = "hunter2-canary"
    url = pg_url.replace("postgresql://srt@", f"postgresql://srt:{secret}@", 1)
    assert secret in url  # (the tests' server trusts its socket: the password is unused)
    session = SrtSession("s", url)
    saver = SrtSaver(url)
    history = SrtChatMessageHistory("h", url)
    run(session.add_items([{"role": "user", "content": "hi"}]))
    for obj in (session, saver, history):
        assert secret not in repr(obj), type(obj).__name__
    with pytest.raises(ConfigError) as caught:
        saver.put({"configurable": {}}, empty_checkpoint(), {}, {})
    assert secret not in str(caught.value)
    for closable in (session, saver, history):
        closable.close()
    bad = f"postgresql://srt:{secret}@127.0.0.1:1/nope?schema=x&pool_timeout=0.3"
    for make in (
        lambda: SrtSession("s", bad),
        lambda: SrtSaver(bad),
        lambda: SrtChatMessageHistory("h", bad),
    ):
        with pytest.raises(srt.StoreUnavailableError) as err:
            make()
        assert secret not in str(err.value) and secret not in repr(err.value)


def test_a_session_id_naming_another_sessions_branch_is_refused(tmp_path: Path) -> None:
    """Branch ``b`` of session ``"alice"`` is the srt session ``"alice@b"``: a session
    opened with that id read alice's branch, wrote into it, and lost its items when
    alice cleared hers. It is refused, and nothing is written."""
    db = tmp_path / "a.db"
    alice = SrtSession("alice", db)
    run(alice.add_items([{"role": "user", "content": "alice's", "id": "m1"}]))
    branch = run(alice.fork(switch=False))
    with pytest.raises(SessionExistsError, match=f"is branch '{branch}' of session 'alice'"):
        SrtSession(f"alice@{branch}", db)
    on_branch = SrtSession("alice", db, branch=branch)
    assert run(on_branch.get_items()) == [{"role": "user", "content": "alice's", "id": "m1"}]
    with srt.Runtime(db) as rt:
        assert rt.store.list_objects("agents.branch", f"alice@{branch}") == []
    # The other way round: a session "bob@branch-1" first, then bob's forks pass it by.
    run(SrtSession("bob@branch-1", db).add_items([{"role": "user", "content": "not bob's"}]))
    bob = SrtSession("bob", db)
    run(bob.add_items([{"role": "user", "content": "bob's"}]))
    assert run(bob.fork()) == "branch-2"
    assert run(bob.get_items()) == [{"role": "user", "content": "bob's"}]
    for s in (alice, on_branch, bob):
        s.close()


@pytest.mark.parametrize("messages", [None, 5, "text", HumanMessage("one")])
def test_add_messages_takes_a_list(tmp_path: Path, messages: Any) -> None:
    h = SrtChatMessageHistory("h", tmp_path / "h.db")
    with pytest.raises(InvalidMessageError, match="list of LangChain messages"):
        h.add_messages(messages)
    assert h.messages == []
    h.close()


def test_a_cancelled_aput_is_settled_when_the_cancellation_arrives(tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    saver = SrtSaver(db)
    cfg: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    first = empty_checkpoint()
    first["channel_values"] = {"messages": [HumanMessage("q", id="q")]}
    first["channel_versions"] = {"messages": 1}
    saver.put(cfg, first, {}, {"messages": 1})
    started = threading.Event()
    blocker = threading.Thread(target=_hold_the_write_lock, args=(db, started, 0.5))
    blocker.start()
    waited(started, "the blocker taking the write lock")
    second = empty_checkpoint()
    second["channel_values"] = {"messages": [HumanMessage("q", id="q"), AIMessage("a", id="a")]}
    second["channel_versions"] = {"messages": 2}

    async def cancel_mid_put() -> int:
        task = asyncio.create_task(saver.aput(cfg, second, {}, {"messages": 2}))
        await asyncio.sleep(0.15)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        other = SrtSaver(db)
        seen = len(list(other.list(cfg)))
        other.close()
        return seen

    seen = run(cancel_mid_put())
    joined(blocker, what="holding the write lock")
    assert seen == len(list(saver.list(cfg))) in (1, 2)
    saver.close()


def test_a_cancelled_aadd_messages_is_settled_when_the_cancellation_arrives(
    tmp_path: Path,
) -> None:
    db = tmp_path / "h.db"
    h = SrtChatMessageHistory("h", db)
    h.add_messages([HumanMessage("before", id="b")])
    started = threading.Event()
    blocker = threading.Thread(target=_hold_the_write_lock, args=(db, started, 0.5))
    blocker.start()
    waited(started, "the blocker taking the write lock")
    new = [HumanMessage("q", id="q"), AIMessage("a", id="a")]

    async def cancel_mid_add() -> list[Any]:
        task = asyncio.create_task(h.aadd_messages(new))
        await asyncio.sleep(0.15)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        other = SrtChatMessageHistory("h", db)
        seen = other.messages
        other.close()
        return seen

    seen = run(cancel_mid_add())
    joined(blocker, what="holding the write lock")
    assert seen == h.messages
    assert seen in ([HumanMessage("before", id="b")], [HumanMessage("before", id="b"), *new])
    h.close()
