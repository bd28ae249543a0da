"""``SrtSession.delete_branch``'s touch of the forks it re-parents, on SQLite and
PostgreSQL. The touch moves a fork's head to where it is, so that its time changes and
every handle's cache of the fork is read again. It used to try up to 64 times and give up
without a word, and a fork deleted meanwhile (by another handle) made the whole
``delete_branch`` fail with ``SessionNotFoundError`` half-way. Now it tries once: a head
another handle moved meanwhile moved its time too (all the touch is for), a fork deleted
meanwhile has no cache to refresh; either is logged at debug with what happened, and the
deletion goes on."""

from __future__ import annotations

import logging
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


def _three(rt: srt.Runtime) -> SrtSession:
    """Session ``s``: ``main`` with one turn, branch ``b`` forked from it, and ``f``
    forked from ``b``; the handle returned is on ``main``."""
    x = SrtSession("s", rt)
    run(x.add_items(_batch("m", 0)))
    run(x.fork(name="b"))
    run(x.fork(name="f", switch=False))
    run(x.switch_to("main"))
    return x


def _hook_touch(store: Any, monkeypatch: pytest.MonkeyPatch, then: Any, what: str) -> list[bool]:
    """Right after ``store``'s first read of srt session ``s@f`` (the touch's), ``then``
    runs to its end in a thread of its own."""
    real = store.get_session
    ran: list[bool] = []

    def read_then(name: str) -> Any:
        row = real(name)
        if name == "s@f" and not ran:
            ran.append(True)
            t = threading.Thread(target=then, daemon=True)
            t.start()
            joined(t, what)
        return row

    monkeypatch.setattr(store, "get_session", read_then)
    return ran


def _debug(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "srt.integrations.agents" and r.levelno == logging.DEBUG
    ]


def test_a_fork_whose_head_moves_during_the_touch(
    store_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Handle ``w`` (on fork ``f``) adds a turn between the touch's read of ``f`` and its
    move: the touch gives up at once, says so at debug, and every handle reads ``f``
    whole, ids and all (``w``'s own add moved the time the touch was to move)."""
    caplog.set_level(logging.DEBUG, logger="srt.integrations.agents")
    with srt.Runtime(store_url) as rt, srt.Runtime(store_url) as rt2:
        x = _three(rt)
        w = SrtSession("s", rt2, branch="f")
        assert run(w.get_items()) == _batch("m", 0)  # (w caches f as it was)
        ran = _hook_touch(
            rt.store, monkeypatch, lambda: run(w.add_items(_batch("w", 1))), "w's add"
        )
        run(x.delete_branch("b"))
        monkeypatch.undo()
        assert ran
        said = [m for m in _debug(caplog) if "'s@f'" in m]
        assert len(said) == 1 and "ConflictError" in said[0], _debug(caplog)
        want = _batch("m", 0) + _batch("w", 1)
        assert run(w.get_items()) == want
        with srt.Runtime(store_url) as rt3:
            assert run(SrtSession("s", rt3, branch="f").get_items()) == want
        assert [b["name"] for b in run(x.branches())] == ["main", "f"]


def test_a_fork_deleted_during_the_touch(
    store_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Handle ``z`` deletes fork ``f`` between the touch's read of it and its move: the
    deletion of ``b`` still ends (it was ``SessionNotFoundError`` half-way, ``b`` left
    behind), and says at debug what the touch found."""
    caplog.set_level(logging.DEBUG, logger="srt.integrations.agents")
    with srt.Runtime(store_url) as rt, srt.Runtime(store_url) as rt2:
        x = _three(rt)
        z = SrtSession("s", rt2)
        ran = _hook_touch(rt.store, monkeypatch, lambda: run(z.delete_branch("f")), "z's delete")
        run(x.delete_branch("b"))
        monkeypatch.undo()
        assert ran
        said = [m for m in _debug(caplog) if "'s@f'" in m]
        assert len(said) == 1 and "SessionNotFoundError" in said[0], _debug(caplog)
        assert [b["name"] for b in run(x.branches())] == ["main"]
        assert run(x.get_items()) == _batch("m", 0)
        assert rt.store.get_session("s@b") is None
