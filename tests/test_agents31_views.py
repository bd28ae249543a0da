"""``SrtSession``'s view of its branch is one read of the session row and the items of
that row's head, on SQLite and PostgreSQL.

The root cause of ``test_clear_while_another_handle_adds``'s CorruptionError (1 run in
3-9 before 5f20c6e): ``add_items`` read the branch twice per try (``_items``, then
``_user_positions`` read it again). A clear of an already empty session (by another
handle) between the two leaves the head where it was but moves the row's time, so the
second read loaded a new, empty cache; the append, a compare-and-swap on the head alone,
went through and extended the first read's cache, and ``_mark`` stamped the new head's
key on the second, empty one (and shelved it for the runtime's other handles). The
handle then held "head H1, no items": ``get_items`` answered ``[]`` for a session holding
items, and its next add chained from the root below H1 (the store's CorruptionError;
since 5f20c6e, a retry). These tests force that interleaving with a hook on the adding
handle's store, no sleeps."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import srt
from agents_support import joined, run
from srt.integrations.agents import SrtSession


def _batch(tag: str, i: int) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": f"{tag}-{i}", "id": f"u-{tag}-{i}"},
        {"role": "assistant", "content": f"ok {tag}-{i}", "id": f"m-{tag}-{i}"},
    ]


def _on_first_read(store: Any, monkeypatch: pytest.MonkeyPatch, then: Any, what: str) -> list[Any]:
    """Hook ``store.get_session``: right after the first read of a session row, ``then``
    runs to its end (in a thread of its own: another handle, on another runtime).
    Returns the list the rows read before ``then`` ran are put in (one, once it ran)."""
    real = store.get_session
    seen: list[Any] = []

    def read_then(name: str) -> Any:
        row = real(name)
        if not seen:
            seen.append(row)
            t = threading.Thread(target=then, daemon=True)
            t.start()
            joined(t, what)
        return row

    monkeypatch.setattr(store, "get_session", read_then)
    return seen


def test_a_clear_of_an_empty_session_between_an_adds_reads(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Handle ``b`` clears the (empty) session right after handle ``a``'s add read the
    session row: ``a`` then holds, and answers, the items it added, and adds more after
    them (no stale view, no CorruptionError, no retry needed)."""
    with srt.Runtime(store_url) as rt, srt.Runtime(store_url) as rt2:
        a, b = SrtSession("s", rt), SrtSession("s", rt2)
        seen = _on_first_read(
            rt.store, monkeypatch, lambda: run(b.clear_session()), "b's clear (in a thread)"
        )
        run(a.add_items(_batch("a", 0)))
        monkeypatch.undo()
        assert len(seen) == 1 and seen[0].head is None  # (b cleared an empty session)
        assert run(a.get_items()) == _batch("a", 0)
        run(a.add_items(_batch("a", 1)))
        assert run(a.get_items()) == _batch("a", 0) + _batch("a", 1)
        # Another handle of a's runtime starts from what a shelved: the same items.
        assert run(SrtSession("s", rt).get_items()) == _batch("a", 0) + _batch("a", 1)
        assert run(b.get_items()) == _batch("a", 0) + _batch("a", 1)
        assert rt.store.verify().ok


def test_a_touch_between_an_adds_reads(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same with a head that only has its time moved (``delete_branch`` does that to
    the forks of the branch it deletes) on a branch that holds items: ``a`` keeps the
    items it had and the ones it added."""
    with srt.Runtime(store_url) as rt, srt.Runtime(store_url) as rt2:
        a = SrtSession("s", rt)
        run(a.add_items(_batch("a", 0)))
        b = SrtSession("s", rt2)

        def touch() -> None:
            row = rt2.store.get_session("s")
            assert row is not None
            rt2.store.move_head(row.id, row.head, row.head)

        _on_first_read(rt.store, monkeypatch, touch, "b's touch (in a thread)")
        run(a.add_items(_batch("a", 1)))
        monkeypatch.undo()
        want = _batch("a", 0) + _batch("a", 1)
        assert run(a.get_items()) == want
        assert run(a.pop_item()) == want[-1]
        assert run(a.get_items()) == want[:-1]
        assert run(b.get_items()) == want[:-1]


def test_the_same_items_added_again_while_a_clear_deletes_the_old_entries(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Handle ``b``'s clear has emptied ``main`` and is about to delete the patch entries
    written before it started, when handle ``a`` adds the very items the session held
    (the same text at the same places: the same patch entries). ``a`` reads the old
    entries; had it kept them instead of writing its own, the clear would delete them
    and the items would come back without their ids."""
    with srt.Runtime(store_url) as rt, srt.Runtime(store_url) as rt2:
        a, b = SrtSession("s", rt), SrtSession("s", rt2)
        run(a.add_items(_batch("a", 0)))
        real = rt2.store.list_objects
        added: list[bool] = []

        def a_adds() -> None:
            run(a.add_items(_batch("a", 0)))

        def listed_after_a_adds(kind: str, *args: Any, **kw: Any) -> Any:
            if kind == "agents.item" and not added:  # (b's clear, before its deletions)
                added.append(True)
                t = threading.Thread(target=a_adds, daemon=True)
                t.start()
                joined(t, "a's add (in a thread)")
            return real(kind, *args, **kw)

        monkeypatch.setattr(rt2.store, "list_objects", listed_after_a_adds)
        run(b.clear_session())
        monkeypatch.undo()
        assert added
        assert run(a.get_items()) == _batch("a", 0)
        with srt.Runtime(store_url) as rt3:
            assert run(SrtSession("s", rt3).get_items()) == _batch("a", 0)


def test_a_fork_counts_the_turns_of_the_items_it_read(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fork(at_turn)`` reads the branch once: another handle adding two turns right
    after that read does not lend it turns its items lack (it read the branch again for
    the user messages, and forked past the end of the items it held: an IndexError)."""
    with srt.Runtime(store_url) as rt, srt.Runtime(store_url) as rt2:
        a = SrtSession("s", rt)
        run(a.add_items(_batch("a", 0)))
        b = SrtSession("s", rt2)
        _on_first_read(
            rt.store,
            monkeypatch,
            lambda: run(b.add_items(_batch("b", 1) + _batch("b", 2))),
            "b's add (in a thread)",
        )
        with pytest.raises(srt.ConfigError, match="has 1 user turns, not 3"):
            run(a.fork(at_turn=3))
        monkeypatch.undo()
        name = run(a.fork(at_turn=3))  # (now it sees them)
        assert run(a.get_items()) == _batch("a", 0) + _batch("b", 1)
        assert a.branch == name
