"""langgraph-checkpoint-conformance against ``SrtSaver`` on both engines, through both
APIs. The suite calls only the ``a*`` methods, so the sync API runs it through a saver
whose ``a*`` methods call the sync ones (``put``, ``list``, ``delete_thread``...).
``tests/test_integrations_langgraph.py`` runs it on SQLite through the async API; here:
PostgreSQL async, and SQLite and PostgreSQL sync."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate

import srt
from srt.integrations.langgraph import SrtSaver


class SyncSaver(SrtSaver):
    """An ``SrtSaver`` whose async methods run its sync ones (on the caller's thread)."""

    async def aget_tuple(self, config: Any) -> Any:
        return self.get_tuple(config)

    async def alist(  # type: ignore[override]
        self, config: Any, *, filter: Any = None, before: Any = None, limit: Any = None
    ) -> AsyncIterator[Any]:
        for item in self.list(config, filter=filter, before=before, limit=limit):
            yield item

    async def aput(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        return self.put(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: Any, writes: Sequence[Any], task_id: str, task_path: str = ""
    ) -> None:
        self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        self.delete_thread(thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        self.delete_for_runs(run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self.copy_thread(source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        self.prune(thread_ids, strategy=strategy)


ALL = {
    "put", "put_writes", "get_tuple", "list", "delete_thread", "delete_for_runs",
    "copy_thread", "prune",
}  # fmt: skip


@pytest.mark.parametrize(
    ("engine", "cls"),
    [("postgres", SrtSaver), ("sqlite", SyncSaver), ("postgres", SyncSaver)],
    ids=["postgres-async", "sqlite-sync", "postgres-sync"],
)
def test_conformance_suite(engine: str, cls: type[SrtSaver], tmp_path: Path) -> None:
    """Every capability detected, every test of it passed, none skipped."""
    stores = contextlib.ExitStack()

    def where(n: int) -> str:
        if engine == "sqlite":
            return str(tmp_path / f"conf-{n}.db")
        from pg_support import fresh_url

        return stores.enter_context(fresh_url())

    made: list[int] = []

    @checkpointer_test(name=f"SrtSaver-{engine}-{cls.__name__}")
    async def factory() -> Any:
        rt = srt.Runtime(where(len(made)))
        made.append(1)
        s = cls(rt)
        yield s
        s.close()
        rt.close()

    with stores:
        report = asyncio.run(validate(factory))
    print("\n".join(f"{c}: {r.tests_passed} passed" for c, r in report.results.items()))
    assert set(report.results) == ALL
    for cap, r in report.results.items():
        assert r.detected and r.passed, (cap, r.failures)
        assert r.tests_failed == 0 and r.tests_skipped == 0 and r.tests_passed > 0
    assert len(made) == len(ALL)  # a fresh saver (and store) per capability
