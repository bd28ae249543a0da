"""``SrtSaver.delete_thread`` from one saver, the thread written again by another (a
SQLite file; a PostgreSQL schema): the thread is listed with every thread again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import empty_checkpoint

from srt.integrations.langgraph import SrtSaver


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: Any, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "g.db")
        return
    from pg_support import fresh_url

    with fresh_url() as url:
        yield url


def _cfg(thread: str = "t") -> Any:
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}


def _first(tag: str) -> Any:
    c = empty_checkpoint()
    c["channel_values"] = {"messages": [HumanMessage(tag, id=tag)], "big": tag * 300}
    c["channel_versions"] = {"messages": 1, "big": 1}
    return c


def test_a_thread_written_again_after_another_saver_deleted_it_is_listed(db: str) -> None:
    """The writer's saver remembered registering the thread and did not register it
    again: ``list(None)`` (and ``delete_for_runs``, which walks it) missed the thread."""
    writer, deleter = SrtSaver(db), SrtSaver(db)
    writer.put(_cfg(), _first("a"), {"run_id": "r1"}, {"messages": 1, "big": 1})
    deleter.delete_thread("t")
    again = writer.put(_cfg(), _first("b"), {"run_id": "r2"}, {"messages": 1, "big": 1})
    fresh = SrtSaver(db)
    assert [t.config for t in fresh.list(None)] == [again]
    fresh.delete_for_runs(["r2"])
    assert writer.get_tuple(_cfg()) is None
    for s in (writer, deleter, fresh):
        s.close()
