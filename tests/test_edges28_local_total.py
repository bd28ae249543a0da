"""The local provider: a call's ``total`` timeout counts its wait for a busy slot.

``Server.prepare`` waits for a slot busy with another reply (up to the provider's ``idle``
timeout, within its ``total``) before it posts the call's restore and sends the request.
The transport then started the ``total`` clock afresh, after that wait: a call could run up
to ``idle`` seconds past its ``total``. Now the clock starts before the wait and the
transport ends the call by it (``Transport.open(deadline=)``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import srt
from srt.errors import ProviderTimeoutError
from srt.providers.local import LocalProvider
from test_local import model
from test_local_routing import _held_then_cancelled, _saved, shared

__all__ = ["model", "shared"]


def test_the_total_timeout_counts_the_wait_for_a_busy_slot(
    shared: LocalProvider, rt: srt.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``x``'s restore is planned onto the one slot while ``a``'s long reply runs there;
    ``x`` streams with ``total`` 4 s and ``idle`` 600 s. ``a`` is cancelled halfway
    through ``x``'s total; ``x``'s request then goes out, and its stream is read past its
    total (from the call's start). It used to read to the end (the total counted from
    after the wait); now the call ends with ``ProviderTimeoutError`` for its total, and
    what ``x``'s turn stored is at most a partial reply (left out of the next request)."""
    p, total = shared, 4.0
    _saved(p, rt, "total-x")
    x = rt.session("total-x")
    x.append({"role": "user", "content": "Another?"})
    stored = len(x.messages())
    headed, go = threading.Event(), threading.Event()
    started: list[float] = []
    ended: list[Any] = []

    def turn() -> None:
        started.append(time.monotonic())
        try:
            with x.stream(p, model=p.model_name, max_tokens=8, temperature=0) as st:
                chunks = iter(st)
                next(chunks)
                headed.set()
                go.wait(60)
                for _ in chunks:
                    pass
            ended.append("read to the end")
        except BaseException as exc:  # reported below
            ended.append(exc)
        finally:
            headed.set()

    reader = threading.Thread(target=turn)
    with _held_then_cancelled(p, rt, "total-a") as held:
        monkeypatch.setattr(p.transport, "timeouts", srt.Timeouts(idle=600.0, total=total))
        reader.start()
        time.sleep(total / 2)  # (x waits for the slot meanwhile)
        held.stream.cancel()
        assert headed.wait(60)
    # (read past the total from the call's start, and past the watchdog's next look)
    time.sleep(max(0.0, started[0] + total + 0.75 - time.monotonic()))
    go.set()
    reader.join(60)
    (end,) = ended
    assert isinstance(end, ProviderTimeoutError), end
    assert "total" in str(end)
    assert all(e.partial for e in x.entries()[stored:])  # (no complete reply)
