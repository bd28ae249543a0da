"""``delete_thread`` beside a writer whose clock is not the deleting saver's (a SQLite
file; a PostgreSQL schema, where the savers may run on machines of their own). The
deletion kept the thread's values and its entry in the thread list only if they were
last written after it began, by ``updated``, which the writer's clock stamps: a writer
whose clock ran behind had the values of a record it wrote during the deletion deleted
(the record no longer read, ``CorruptionError``) and its thread left out of
``list(None)``; one whose clock ran ahead left the values of a deleted thread in the
store for good. The store's order decides now: what a record read after the deletes
names is written back. The skew is the deleting saver's clock against the writer's."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

import srt
from srt.integrations import _lgdelete
from srt.integrations._lgnames import BLOB, THREAD, THREADS
from srt.integrations.langgraph import SrtSaver
from test_lg29_delete_races import _bytes, _cfg
from test_lg30_drop_races import _Writer


@pytest.fixture
def db(store_url: str) -> str:
    """A SQLite file, then a PostgreSQL schema (conftest's ``store_url``)."""
    return store_url


def _skewed(monkeypatch: pytest.MonkeyPatch, skew: float) -> None:
    real_time = time.time
    monkeypatch.setattr(_lgdelete, "time", SimpleNamespace(time=lambda: real_time() + skew))


@pytest.mark.parametrize("skew", [0.0, 60.0])
def test_a_record_written_during_delete_thread_keeps_its_values(
    db: str, skew: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer puts a checkpoint when the deletion deletes its first value: one
    naming every value the thread held (the same bytes again). It reads back whole,
    and the thread is listed."""
    _skewed(monkeypatch, skew)
    writer, deleter = _Writer(db), SrtSaver(db)
    fresh: SrtSaver | None = None
    try:
        for _ in range(4):
            writer.put("r1")
        store = deleter._rt.store  # noqa: SLF001 (a write landing inside the deletion)
        real_delete = store.delete_object
        landed: list[str] = []

        def delete_object(kind: str, scope: str, key: str, **kwargs: Any) -> Any:
            if kind == BLOB and not landed:
                landed.append(writer.put("r2", olds=4))
            return real_delete(kind, scope, key, **kwargs)

        store.delete_object = delete_object  # type: ignore[method-assign]
        deleter.delete_thread("t")
        store.delete_object = real_delete  # type: ignore[method-assign]
        assert landed, "the deletion deleted no value"
        fresh = SrtSaver(db)
        left = {t.config["configurable"]["checkpoint_id"]: t for t in fresh.list(_cfg())}
        assert set(left) == set(landed)
        assert _bytes(left[landed[0]].checkpoint) == writer.told[landed[0]]
        latest = fresh.get_tuple(_cfg())
        assert latest is not None and _bytes(latest.checkpoint) == writer.told[landed[0]]
        assert [t.config["configurable"]["thread_id"] for t in fresh.list(None)] == ["t"]
    finally:
        for saver in (writer.saver, deleter, fresh):
            if saver is not None:
                saver.close()
    with srt.Runtime(db) as rt:
        assert rt.store.verify().ok


@pytest.mark.parametrize("skew", [0.0, -60.0])
def test_delete_thread_leaves_no_value_of_the_thread(
    db: str, skew: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing writes during the deletion: every value and the thread's entry go, however
    far ahead of the deleting saver's clock the writer's ran."""
    _skewed(monkeypatch, skew)
    writer, deleter = _Writer(db), SrtSaver(db)
    try:
        for _ in range(4):
            writer.put("r1")
        deleter.delete_thread("t")
        store = deleter._rt.store  # noqa: SLF001 (what the thread left in the store)
        assert store.list_objects(BLOB, "t") == []
        assert store.get_object(THREAD, THREADS, "t") is None
        assert list(deleter.list(None)) == []
        assert writer.saver.get_tuple(_cfg()) is None
    finally:
        writer.saver.close()
        deleter.close()
