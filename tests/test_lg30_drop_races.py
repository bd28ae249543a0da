"""``prune`` and ``delete_for_runs`` while another saver writes the thread (a SQLite file;
a PostgreSQL schema). A write lands at each moment of the deletion (a hook on the
deleting saver's store): before and after its record write, at its first record delete
and at its first value delete. Afterwards every checkpoint left reads back as it was
put, what the writer wrote after the deletion picked its records is all there, and the
checkpoints picked are gone."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import create_checkpoint, empty_checkpoint

import srt
from srt.integrations import _lgdelete
from srt.integrations._lgnames import BLOB, CKPT
from srt.integrations.langgraph import SrtSaver
from test_lg29_delete_races import _bytes, _cfg


@pytest.fixture
def db(store_url: str) -> str:
    """A SQLite file, then a PostgreSQL schema (conftest's ``store_url``)."""
    return store_url


class _Writer:
    """A saver putting one chain: each checkpoint a child of the last, its own large
    value (a stored value of the thread) in ``big``, one message more."""

    def __init__(self, db: str) -> None:
        self.saver = SrtSaver(db)
        self.conf: Any = _cfg()
        self.cp: Any = None
        self.msgs: list[Any] = []
        self.told: dict[str, Any] = {}
        self.n = 0

    def put(self, run: str, olds: int = 0) -> str:
        """The next checkpoint; ``olds``: also the ``big`` values of the first ``olds``
        checkpoints again (each under a channel of its own), values a deletion of those
        checkpoints finds no record naming any more."""
        n = self.n
        self.n += 1
        self.msgs.append((HumanMessage if n % 2 == 0 else AIMessage)(f"m{n}", id=f"m{n}"))
        cp = empty_checkpoint() if self.cp is None else create_checkpoint(self.cp, None, n)
        values: dict[str, Any] = {"messages": list(self.msgs), "big": f"v{n}-" * 300}
        values.update({f"o{i}": f"v{i}-" * 300 for i in range(olds)})
        cp["channel_values"] = values
        cp["channel_versions"] = {k: n + 1 for k in values}
        self.conf = self.saver.put(
            self.conf, cp, {"run_id": run, "step": n}, dict.fromkeys(values, n + 1)
        )
        self.cp = cp
        cid: str = self.conf["configurable"]["checkpoint_id"]
        self.told[cid] = _bytes(cp)
        return cid


@pytest.mark.parametrize("skew", [0.0, 60.0])
@pytest.mark.parametrize("how", ["prune", "delete_for_runs"])
def test_a_write_landing_inside_a_prune_or_delete_for_runs_is_kept_whole(
    db: str, how: str, skew: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deletion rewrote the records it kept, then deleted the others one at a time,
    then swapped the scope's version; and it deleted the values no record named, one at
    a time. A record the writer put in between (packed against a record about to go, or
    naming a value about to go) stayed, and no longer read: the deletion itself, and
    every reader after it, raised ``CorruptionError`` ("checkpoint ... is missing", "a
    stored value ... is missing"). ``skew``: the deleting saver's clock runs that many
    seconds ahead of the writer's (another machine's, on PostgreSQL): a value the
    writer wrote during the deletion counts as written before it began."""
    real_time = time.time
    monkeypatch.setattr(_lgdelete, "time", SimpleNamespace(time=lambda: real_time() + skew))
    writer, deleter = _Writer(db), SrtSaver(db)
    fresh: SrtSaver | None = None
    try:
        first = [writer.put("r1") for _ in range(6)]
        assert deleter.get_tuple(_cfg()) is not None  # (the deleter holds the thread read)
        store = deleter._rt.store  # noqa: SLF001 (a write landing at each moment)
        real_append, real_delete = store.append, store.delete_object
        fired: dict[str, str] = {}

        def land(moment: str, olds: int = 0) -> None:
            if moment not in fired:
                fired[moment] = writer.put("r2", olds)

        def append(*args: Any, **kwargs: Any) -> Any:
            land("before its record write")
            out = real_append(*args, **kwargs)
            land("after its record write")
            return out

        def delete_object(kind: str, scope: str, key: str, **kwargs: Any) -> Any:
            if kind == CKPT:
                land("at its first record delete")
            if kind == BLOB:
                land("at its first value delete", olds=len(first))
            return real_delete(kind, scope, key, **kwargs)

        store.append = append  # type: ignore[method-assign]
        store.delete_object = delete_object  # type: ignore[method-assign]
        if how == "prune":
            deleter.prune(["t"])
        else:
            deleter.delete_for_runs(["r1"])
        store.append, store.delete_object = real_append, real_delete  # type: ignore[method-assign]
        # Each moment the deletion goes through was hit (a record delete: only if it
        # deletes records one at a time).
        assert {"before its record write", "after its record write"} <= set(fired)
        assert "at its first value delete" in fired
        fresh = SrtSaver(db)
        left = {t.config["configurable"]["checkpoint_id"]: t for t in fresh.list(_cfg())}
        assert not set(first) & set(left)
        kept = [c for m, c in fired.items() if m != "before its record write"]
        assert set(kept) <= set(left)
        for cid, tup in left.items():
            assert _bytes(tup.checkpoint) == writer.told[cid]
            again = fresh.get_tuple(
                {"configurable": {**_cfg()["configurable"], "checkpoint_id": cid}}
            )
            assert again is not None and _bytes(again.checkpoint) == writer.told[cid]
        latest = fresh.get_tuple(_cfg())
        assert latest is not None
        assert latest.config["configurable"]["checkpoint_id"] == max(left)
    finally:
        for saver in (writer.saver, deleter, fresh):
            if saver is not None:
                saver.close()
    with srt.Runtime(db) as rt:
        assert rt.store.verify().ok
