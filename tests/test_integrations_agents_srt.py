"""What ``srt.integrations.agents.SrtSession`` adds to an Agents SDK session: branches
(fork, switch, list, delete; a fork keeps its items when the parent pops below it),
shared storage and snapshots, two handles at once, the redaction hook, a hashing key,
typed errors for bad items, and the bench script."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from agents import set_tracing_disabled

import srt
from srt.integrations.agents import SrtSession
from support import agents_turns
from test_integrations_agents import run

set_tracing_disabled(True)

# -- what SrtSession adds: branches, shared storage, concurrency, typed errors ----------------


def test_fork_switch_and_list_branches(tmp_path: Path) -> None:
    with srt.Runtime(tmp_path / "b.db") as rt:
        s = SrtSession("chat", rt)
        items = agents_turns(3)
        run(s.add_items(items))
        name = run(s.fork(at_turn=2))
        assert s.branch == name
        assert run(s.get_items()) == items[:2]  # up to before user turn 2
        other = {
            "id": "msg_x",
            "content": [{"annotations": [], "text": "answer x", "type": "output_text"}],
            "role": "assistant",
            "status": "completed",
            "type": "message",
        }
        run(s.add_items([{"content": "question x", "role": "user"}, other]))
        assert run(s.get_items())[-1] == other
        run(s.switch_to("main"))
        assert run(s.get_items()) == items
        listed = {b["name"]: b for b in run(s.branches())}
        assert listed["main"]["items"] == 6 and listed["main"]["current"]
        assert listed[name]["items"] == 4 and listed[name]["parent"] == "main"
        assert listed[name]["at"] == 2
        # The fork copied nothing: both branches reach the same stored nodes.
        main_nodes = [r[0] for r in rt.store.chain(rt.session("chat").head)]
        fork_nodes = [r[0] for r in rt.store.chain(rt.session(f"chat@{name}").head)]
        assert fork_nodes[:2] == main_nodes[:2] and fork_nodes[2] != main_nodes[2]
        # A new handle opens on the branch the last one switched to, with its settings.
        again = SrtSession("chat", rt)
        assert again.branch == "main" and run(again.get_items()) == items
        with pytest.raises(srt.SessionNotFoundError):
            run(s.switch_to("no-such-branch"))
        with pytest.raises(srt.ConfigError):
            run(s.fork(at_turn=9))
        with pytest.raises(srt.ConfigError):
            run(s.fork(name=name))


def test_popping_below_a_fork_keeps_the_forks_items(tmp_path: Path) -> None:
    with srt.Runtime(tmp_path / "p.db") as rt:
        s = SrtSession("chat", rt)
        items = agents_turns(2)
        run(s.add_items(items))
        fork = run(s.fork(switch=False))
        # main pops its last answer and adds the same text under a new id: the fork,
        # which shares the stored message, still has its own item.
        assert run(s.pop_item()) == items[-1]
        redo = dict(items[-1], id="msg_redo")
        run(s.add_items([redo]))
        assert run(s.get_items()) == [*items[:-1], redo]
        run(s.switch_to(fork))
        assert run(s.get_items()) == items


def test_same_text_different_ids_in_two_sessions(tmp_path: Path) -> None:
    with srt.Runtime(tmp_path / "d.db") as rt:
        a, b = SrtSession("a", rt), SrtSession("b", rt)
        items_a = agents_turns(2)
        items_b = [dict(i, id=i["id"] + "-b") if "id" in i else i for i in items_a]
        run(a.add_items(items_a))
        run(b.add_items(items_b))
        assert run(a.get_items()) == items_a and run(b.get_items()) == items_b
        # The messages themselves are stored once: both sessions reach the same nodes.
        assert rt.session("a").head == rt.session("b").head


def test_two_handles_append_concurrently(tmp_path: Path) -> None:
    """Each item's patch (here its id) is written with the item, in one transaction: two
    handles adding at once never leave an item with the other's patch, or none."""
    path = tmp_path / "c.db"
    one, two = SrtSession("same", path), SrtSession("same", path)

    def item(tag: str, i: int) -> dict[str, Any]:
        return {
            "id": f"msg_{tag}{i}",
            "content": [{"annotations": [], "text": f"{tag}{i}", "type": "output_text"}],
            "role": "assistant",
            "status": "completed",
            "type": "message",
        }

    def add(handle: SrtSession, tag: str) -> None:
        for i in range(25):
            asyncio.run(handle.add_items([{"role": "user", "content": f"{tag}{i}"}, item(tag, i)]))

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(add, (one, two), ("x", "y")))
    got = run(one.get_items())
    # Each call's two items stay together, and every item is exactly as it was added.
    pairs = [(got[j]["content"], got[j + 1]) for j in range(0, len(got), 2)]
    assert sorted(pairs, key=lambda p: p[0]) == sorted(
        [(f"{t}{i}", item(t, i)) for t in "xy" for i in range(25)], key=lambda p: p[0]
    )
    assert run(two.get_items()) == got
    again = SrtSession("same", path)
    assert run(again.get_items()) == got
    for s in (one, two, again):
        s.close()


def test_the_redaction_hook_covers_whole_items(tmp_path: Path) -> None:
    """With ``Runtime(redact=...)`` a secret is gone from the text and from what the
    patch keeps (ids, provider fields, reasoning), in the file and in what comes back."""
    secret = "sk-live-0123456789abcdef"
    path = tmp_path / "r.db"
    with srt.Runtime(path, redact=lambda t: t.replace(secret, "[key]")) as rt:
        s = SrtSession("r", rt)
        items = [
            {"role": "user", "content": f"my key is {secret}"},
            {
                "id": "rs_1",
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": f"they pasted {secret}"}],
            },
            {
                "id": "msg_1",
                "content": [{"annotations": [], "text": "noted", "type": "output_text"}],
                "role": "assistant",
                "status": "completed",
                "type": "message",
                "provider_data": {"echo": secret},
            },
        ]
        run(s.add_items(items))
        got = run(s.get_items())
        assert secret not in json.dumps(got)
        assert got[0]["content"] == "my key is [key]"
        assert got[1]["summary"][0]["text"] == "they pasted [key]"
        assert got[2]["provider_data"] == {"echo": "[key]"} and got[2]["id"] == "msg_1"
    for name in os.listdir(tmp_path):
        assert secret.encode() not in (tmp_path / name).read_bytes()


def test_bad_items_write_nothing(tmp_path: Path) -> None:
    with srt.Runtime(tmp_path / "e.db") as rt:
        s = SrtSession("bad", rt)
        run(s.add_items([{"role": "user", "content": "ok"}]))
        for bad in (
            [42],
            [{"role": "user", "content": "\ud800"}],
            [{"role": "user", "content": "x", "blob": b"\x00"}],
        ):
            with pytest.raises(srt.InvalidMessageError):
                run(s.add_items(bad))
        assert run(s.get_items()) == [{"role": "user", "content": "ok"}]


def test_bench_script_runs(tmp_path: Path) -> None:
    """bench/agents_sessions.py (the table of docs/integrations.md) runs, and the three
    sessions hold the same conversation; its figures come from the full run, not from
    here: no timing is asserted."""
    out = tmp_path / "agents.json"
    script = Path(__file__).resolve().parents[1] / "bench" / "agents_sessions.py"
    done = subprocess.run(
        [sys.executable, str(script), "--turns", "60", "--json", str(out), "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())["results"]
    assert {r["items"] for r in results.values()} == {60 * 2 + 15 * 3}
    assert set(results["SrtSession"]["branches"]) == {"50"}
    assert set(results["AdvancedSQLiteSession"]["branches"]) == {"50"}
    assert results["SQLiteSession"]["branches"] == {}
    assert "| database |" in done.stdout


def test_another_handle_popping_and_adding_the_same_text(tmp_path: Path) -> None:
    """The same text added again in the same place is the same srt node: the head comes
    back to where it was, and a handle that read before still sees the new item's id."""
    path = tmp_path / "aba.db"
    x, y = SrtSession("s", path), SrtSession("s", path)

    def answer(item_id: str) -> dict[str, Any]:
        return {
            "id": item_id,
            "content": [{"annotations": [], "text": "same", "type": "output_text"}],
            "role": "assistant",
            "status": "completed",
            "type": "message",
        }

    run(x.add_items([{"role": "user", "content": "q"}, answer("msg_1")]))
    assert run(x.get_items())[-1]["id"] == run(y.get_items())[-1]["id"] == "msg_1"
    assert run(y.pop_item()) == answer("msg_1")
    run(y.add_items([answer("msg_2")]))
    assert run(x.get_items())[-1] == answer("msg_2")
    assert run(x.pop_item()) == answer("msg_2")
    assert run(y.get_items()) == [{"role": "user", "content": "q"}]
    x.close()
    y.close()


def test_handles_of_one_runtime_share_what_they_read(tmp_path: Path) -> None:
    """A handle opened per request on a long-lived runtime starts from what the last
    handle read or wrote (a copy: changing what one handle returned changes nothing
    else), and a write through another runtime (another process) is seen."""
    path = tmp_path / "shelf.db"
    items = agents_turns(3)
    with srt.Runtime(path) as rt:
        first = SrtSession("s", rt)
        run(first.add_items(items))
        second = SrtSession("s", rt)
        got = run(second.get_items())
        assert got == items
        got[1]["content"][0]["text"] = "changed by the caller"
        got.append({"role": "user", "content": "not added"})
        assert run(SrtSession("s", rt).get_items()) == items
        run(second.add_items([{"role": "user", "content": "more"}]))
        assert run(first.get_items()) == [*items, {"role": "user", "content": "more"}]
        # Another process appends, pops and appends the same text under a new id.
        with srt.Runtime(path) as other:
            elsewhere = SrtSession("s", other)
            run(elsewhere.add_items([dict(items[1], id="msg_other")]))
            assert run(elsewhere.pop_item())["id"] == "msg_other"
            run(elsewhere.add_items([dict(items[1], id="msg_again")]))
        want = [*items, {"role": "user", "content": "more"}, dict(items[1], id="msg_again")]
        for handle in (first, second, SrtSession("s", rt)):
            assert run(handle.get_items()) == want
        # A pop, a fork and the ledger work from a handle that started from the shelf.
        third = SrtSession("s", rt)
        assert run(third.pop_item())["id"] == "msg_again"
        name = run(third.fork(at_turn=2, switch=False))
        assert run(SrtSession("s", rt, branch=name).get_items()) == items[:2]
        assert run(first.get_items()) == want[:-1]


def test_a_store_with_a_hash_key(tmp_path: Path) -> None:
    """Items are hashed and chained the store's way (keyed BLAKE2b with ``hash_key``)."""
    with srt.Runtime(tmp_path / "k.db", hash_key=bytes(range(32))) as rt:
        s = SrtSession("k", rt)
        items = agents_turns(3)
        run(s.add_items(items))
        name = run(s.fork(at_turn=2))
        run(s.add_items([{"role": "user", "content": "other"}]))
        assert run(s.pop_item()) == {"role": "user", "content": "other"}
        assert run(SrtSession("k", rt, branch=name).get_items()) == items[:2]
        assert rt.session("k").messages()[-1]["content"] == "answer 2"
        report = rt.store.verify()
        assert report.ok and report.messages == 7  # the popped one stays until gc


def test_the_shared_snapshots_are_bounded() -> None:
    """A runtime's shelf keeps at most ``size`` snapshots and ``max_bytes`` of message
    bytes, dropping the least recently used; one that is stale is not handed out."""
    from srt.integrations._itemstore import Cache, Shelf, Snapshot

    def snap(n: int, head: int) -> Snapshot:
        return Snapshot((head, 0.0), Cache([b"x" * n], [None], [head], [b"p"]), [0], {})

    shelf = Shelf(size=2, max_bytes=100)
    shelf.put("a", snap(40, 1))
    shelf.put("b", snap(40, 2))
    assert shelf.get("a", (1, 0.0)) is not None  # a is now the most recently used
    shelf.put("c", snap(40, 3))
    assert list(shelf.snapshots) == ["a", "c"] and shelf.held == 80
    shelf.put("c", snap(70, 4))  # 110 bytes: a goes
    assert list(shelf.snapshots) == ["c"] and shelf.held == 70
    assert shelf.get("c", (3, 0.0)) is None  # stale
    got = shelf.get("c", (4, 0.0))
    assert got is not None and got.items.bodies == [b"x" * 70]
    got.items.bodies.append(b"changed")  # a copy
    again = shelf.get("c", (4, 0.0))
    assert again is not None and again.items.bodies == [b"x" * 70]


def test_delete_branch(tmp_path: Path) -> None:
    """A deleted branch's forks keep their items exactly (ids included) and their own
    history; main and (without force) the current branch are refused."""
    with srt.Runtime(tmp_path / "del.db") as rt:
        s = SrtSession("d", rt)
        items = agents_turns(3)
        run(s.add_items(items))
        mid = run(s.fork(at_turn=3))  # items[:4], current
        extra = {"role": "user", "content": "on mid"}
        run(s.add_items([extra]))
        leaf = run(s.fork())  # all of mid: items[:4] + extra
        other = SrtSession("d", rt, branch=leaf)  # a second handle, reading before
        assert run(other.get_items()) == [*items[:4], extra]
        with pytest.raises(srt.ConfigError):
            run(s.delete_branch("main"))
        with pytest.raises(srt.ConfigError):
            run(s.delete_branch(leaf))  # current
        run(s.switch_to(mid))
        run(s.delete_branch(mid, force=True))
        assert s.branch == "main" and run(s.get_items()) == items
        names = {b["name"]: b for b in run(s.branches())}
        assert set(names) == {"main", leaf} and names[leaf]["parent"] == "main"
        for handle in (other, SrtSession("d", rt, branch=leaf)):
            assert run(handle.get_items()) == [*items[:4], extra]
        # The leaf goes on by itself: a pop below its old fork point and a new item.
        run(other.switch_to(leaf))
        for _ in range(4):
            run(other.pop_item())
        run(other.add_items([dict(items[1], id="msg_new")]))
        assert run(other.get_items()) == [items[0], dict(items[1], id="msg_new")]
        assert run(s.get_items()) == items
        with pytest.raises(srt.SessionNotFoundError):
            run(s.delete_branch(mid))
