"""How the SQLite batched gc shares the writer lock with the writers going on meanwhile
(``store.sqlite.gc``): each batch sized by the time the last one held the lock."""

from __future__ import annotations

import pytest

from srt.store.sqlite import gc as batched


def test_a_batch_is_sized_by_the_time_the_last_held_the_lock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The next batch's size is the last one's scaled by ``HOLD`` over the time it held
    the lock (its re-check, deletes, commit and checkpoint): at most doubled or halved,
    at most ``BATCH``, at least one node."""
    monkeypatch.setattr(batched, "HOLD", 0.0625)
    monkeypatch.setattr(batched, "BATCH", 3000)
    assert batched.next_size(1000, 0.0625) == 1000
    assert batched.next_size(1000, 0.078125) == 800
    assert batched.next_size(1000, 0.5) == 500  # halved at most
    assert batched.next_size(1000, 0.001) == 2000  # doubled at most
    assert batched.next_size(2000, 0.001) == 3000  # BATCH at most
    assert batched.next_size(1000, 0.0) == 2000
    assert batched.next_size(1, 10.0) == 1
