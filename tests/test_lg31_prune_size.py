"""What ``prune`` frees at once and what it leaves to ``srt gc`` (a SQLite file; a
PostgreSQL schema). It deletes the values no record names at once, and makes each pruned
record (and its ``lg.keep`` objects) gone in the transaction that keeps the rest: written
again empty with an expiry long past, so no reader sees it and its bytes are freed. The
row itself (kind, scope, key: about 160 bytes of SQLite pages) stays for ``srt gc``,
which removes it with the messages no checkpoint names any more. A row deleted outright
after that transaction could be a record another saver has written again under the same
id meanwhile (the store has no delete "only if still expired"): so it is left to ``gc``,
which removes only what has expired (measured in ``docs/integrations.md``)."""

from __future__ import annotations

import pytest

import srt
from srt.integrations._lgcodec import key_id
from srt.integrations._lgnames import BLOB, CKPT, KEEP
from srt.integrations.langgraph import SrtSaver
from test_lg29_delete_races import _bytes, _cfg
from test_lg30_drop_races import _Writer

_N = 12  # checkpoints put before the prune


@pytest.fixture
def db(store_url: str) -> str:
    """A SQLite file, then a PostgreSQL schema (conftest's ``store_url``)."""
    return store_url


def test_prune_frees_values_at_once_and_leaves_only_expired_rows_to_gc(db: str) -> None:
    writer = _Writer(db)
    try:
        ids = [writer.put("r1") for _ in range(_N)]
        store = writer.saver._rt.store  # noqa: SLF001 (what the store holds)
        assert len(store.list_objects(BLOB, "t", limit=1000)) == _N
        pruned = {key_id(c) for c in ids[:-1]}
        keeps = [r for r in store.list_objects(KEEP, "t", limit=1000) if r.key[:22] in pruned]
        writer.saver.prune(["t"])
        left = list(writer.saver.list(_cfg()))
        assert [t.config["configurable"]["checkpoint_id"] for t in left] == [ids[-1]]
        assert _bytes(left[0].checkpoint) == writer.told[ids[-1]]
        # The values only pruned records named: deleted at once (the latest's stays).
        assert len(store.list_objects(BLOB, "t", limit=1000)) == 1
        assert [r.key for r in store.list_objects(CKPT, "t", limit=1000)] == [key_id(ids[-1])]
    finally:
        writer.saver.close()
    with srt.Runtime(db) as rt:
        report = rt.gc()
        # The pruned records' rows, gone but kept for gc, and their lg.keep rows:
        # nothing else expired.
        assert report.objects == len(pruned) + len(keeps)
        again = rt.gc()
        assert again.objects == 0
        assert rt.store.verify().ok
    fresh = SrtSaver(db)
    try:
        back = fresh.get_tuple(_cfg())
        assert back is not None and _bytes(back.checkpoint) == writer.told[ids[-1]]
    finally:
        fresh.close()
