"""A second handle of a session in the same runtime takes the history another handle
holds loaded (``Chain._from_sibling``) instead of reading and checking the whole chain
again, and stays an independent handle: its own head, its own compare-and-swap."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

import srt
from rel_support.waits import joined
from srt._chain import SHARE_MIN_MESSAGES
from srt.errors import ConflictError

MODEL = "gpt-4o-mini"


def _msgs(n: int, tag: str = "") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": "You are terse." + "x" * 2000}]
    for i in range(n):
        out.append({"role": "user", "content": f"question {tag}{i} " + "q" * (i % 7 * 300)})
        out.append({"role": "assistant", "content": f"answer {tag}{i} " + "a" * (i % 5 * 400)})
    return out


class _Counted:
    """The runtime's own store, with its whole-chain reads and its reads of one node's
    prefix hash counted."""

    def __init__(self, rt: srt.Runtime) -> None:
        self.reads = self.prefix_reads = 0
        store = rt.store
        real, real_prefix = store.chain, store.node_prefix

        def chain(head: int | None) -> Any:
            self.reads += 1
            return real(head)

        def node_prefix(node: int) -> Any:
            self.prefix_reads += 1
            return real_prefix(node)

        store.chain = chain  # type: ignore[method-assign]
        store.node_prefix = node_prefix  # type: ignore[method-assign]


@pytest.fixture
def runtime(store_url: str) -> Iterator[srt.Runtime]:
    rt = srt.Runtime(store_url)
    try:
        yield rt
    finally:
        rt.close()


def test_a_second_handle_copies_the_history_a_loaded_handle_holds(runtime: srt.Runtime) -> None:
    first = runtime.session("s")
    first.append(*_msgs(60))
    body = first.request("openai.chat", model=MODEL, max_tokens=50)
    counted = _Counted(runtime)
    second = runtime.session("s")
    assert second.request("openai.chat", model=MODEL, max_tokens=50) == body
    assert second.messages() == first.messages()
    assert second.prefix_hash == first.prefix_hash
    assert counted.reads == 0  # nothing of the chain was read again
    assert counted.prefix_reads == 0  # the head's prefix came with the session row
    # The copy is the second handle's own: its next turn builds on it, and equals what
    # a handle that read the store builds.
    second.append({"role": "user", "content": "one more"})
    reader = srt.Runtime(runtime.store.location)
    try:
        kw = {"model": "claude-3-5-haiku-latest"}
        assert second.request("anthropic.messages", **kw) == (
            reader.session("s").request("anthropic.messages", **kw)
        )
    finally:
        reader.close()


def test_handles_keep_their_own_heads_after_the_copy(runtime: srt.Runtime) -> None:
    first = runtime.session("s")
    first.append(*_msgs(40))
    len(first)  # loaded
    second = runtime.session("s")
    second.append({"role": "user", "content": "from the second handle"})
    assert first.head != second.head
    assert len(first) == 81 and len(second) == 82
    with pytest.raises(ConflictError):
        first.append({"role": "user", "content": "from the first, now stale"})
    first.append({"role": "user", "content": "rebased"}, rebase=True)
    assert [m["content"] for m in first.messages()[-2:]] == ["from the second handle", "rebased"]
    assert len(second) == 82  # the first handle's copy and commits did not touch it


def test_a_handle_in_use_is_not_copied_from(runtime: srt.Runtime) -> None:
    first = runtime.session("s")
    first.append(*_msgs(40))
    expected = first.messages()
    counted = _Counted(runtime)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with first.parts.lock:  # what a send in progress holds
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert held.wait(10)
        second = runtime.session("s")
        assert second.messages() == expected
        assert counted.reads == 1  # read from the store, not copied mid-change
    finally:
        release.set()
        joined(t)


def test_a_handle_behind_the_stored_head_is_not_copied_from(runtime: srt.Runtime) -> None:
    first = runtime.session("s")
    first.append(*_msgs(40))
    len(first)
    other = srt.Runtime(runtime.store.location)  # another process, as far as srt knows
    try:
        other.session("s").append({"role": "user", "content": "elsewhere"})
    finally:
        other.close()
    counted = _Counted(runtime)
    second = runtime.session("s")
    assert second.messages()[-1]["content"] == "elsewhere"
    assert counted.reads == 1


def test_a_head_id_given_to_another_node_after_gc_is_not_taken_from_a_stale_handle(
    db_path: str,
) -> None:
    rt = srt.Runtime(db_path, history_retention=0)
    try:
        stale = rt.session("s")
        stale.append(*_msgs(40), {"role": "user", "content": "dropped later"})
        len(stale)
        mover = rt.session("s")  # copied from ``stale``
        mover.rewind(1)
        rt.gc()
        # Node ids are never given again (the floor gc leaves), unless the floor is
        # removed by hand, as here: then SQLite gives the new node the freed id (the
        # largest id + 1): the same head id, another history. Only the stored prefix
        # hash tells them apart.
        rt.store.db.connection().execute("DELETE FROM srt_meta WHERE key = 'nodes_floor'")
        mover.append({"role": "user", "content": "took its place"})
        assert mover.head == stale.head
        counted = _Counted(rt)
        fresh = rt.session("s")
        assert fresh.messages()[-1]["content"] == "took its place"
        assert fresh.messages() == mover.messages() != stale.messages()
        assert counted.reads == 1
    finally:
        rt.close()


def test_an_evicted_handle_is_not_copied_from(db_path: str) -> None:
    rt = srt.Runtime(db_path, memory_budget=1)  # every other handle's state is evicted
    try:
        first = rt.session("a")
        first.append(*_msgs(40))
        rt.session("b").append(*_msgs(2, "b"))  # evicts the first's state
        counted = _Counted(rt)
        assert rt.session("a").messages() == first.messages()
        assert counted.reads >= 1
    finally:
        rt.close()


def test_a_short_session_is_read_again(runtime: srt.Runtime) -> None:
    """Below ``SHARE_MIN_MESSAGES`` a chain is not offered: reading it costs about what
    copying does, and an offer costs the runtime memory while the chain lives."""
    first = runtime.session("s")
    first.append(*_msgs(SHARE_MIN_MESSAGES // 2 - 1))
    assert len(first) < SHARE_MIN_MESSAGES
    counted = _Counted(runtime)
    assert runtime.session("s").messages() == first.messages()
    assert counted.reads == 1


def test_handles_opened_while_others_append_hold_the_stored_history(db_path: str) -> None:
    """Threads open handles of one session (copying another live handle's state when
    they can) while others append to it; every handle's history is the one the store
    holds below that handle's head."""
    rt = srt.Runtime(db_path)
    try:
        rt.session("s").append(*_msgs(40))
        errors: list[BaseException] = []
        keep: list[srt.Session] = []

        def work(k: int) -> None:
            try:
                for i in range(15):
                    h = rt.session("s")
                    h.append({"role": "user", "content": f"thread {k} turn {i}"}, rebase=True)
                    rows = rt.store.chain(h.head)
                    assert [r[2] for r in rows] == h.messages_bytes()
                    assert h.prefix_hash == rows[-1][3].hex()
                    h.request("openai.chat", model=MODEL)
                    if i % 5 == 0:
                        keep.append(h)  # some handles stay alive to be copied from
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        joined(*threads)
        assert errors == []
        assert len(rt.session("s")) == 81 + 4 * 15
    finally:
        rt.close()
