"""``srt copy`` of a compacted session: a summary's link names its span by node ids, which
are the source store's; in the copy ``expand`` and ``entries()`` must bring back the same
messages, on either engine. A link that names other nodes (a store copied before) is a
``CorruptionError`` for ``expand``, never another history."""

from __future__ import annotations

import json
from pathlib import Path

import apsw
import pytest

import srt
from srt.store.copy import copy_store


def _compacted(rt: srt.Runtime) -> srt.Session:
    noise = rt.session("noise")  # (so node ids differ between the stores)
    for i in range(7):
        noise.append({"role": "user", "content": f"noise {i} ✓"})
    s = rt.session("c")
    s.append({"role": "system", "content": "sys"}, {"role": "user", "content": "first 🎉"})
    for i in range(8):
        s.append({"role": "assistant", "content": f"a{i}"}, {"role": "user", "content": f"u{i}"})
    s.compact(8, "S1")
    s.compact(6, "S2")  # (its span holds S1: a compacted session compacted again)
    return s


def _expansions(s: srt.Session) -> list[list[dict[str, object]]]:
    out = [s.messages()]
    out.append([dict(m) for e in s.entries() for m in e.replaced])
    for _ in range(2):
        s.expand()
        out.append(s.messages())
    with pytest.raises(srt.SessionError, match="no compaction"):
        s.expand()
    return out


def test_a_copied_compaction_expands_to_the_same_messages(tmp_path: Path, store_url: str) -> None:
    with (
        srt.Runtime(str(tmp_path / "src.db")) as src,
        srt.Runtime(store_url) as dest,
        srt.Runtime(str(tmp_path / "back.db")) as back,
    ):
        _compacted(src)
        assert copy_store(src.store, dest.store).verified
        assert copy_store(dest.store, back.store).verified  # (and back, from the other engine)
        want = _expansions(src.session("c"))
        assert _expansions(dest.session("c")) == want
        assert _expansions(back.session("c")) == want
        assert dest.store.verify().ok and back.store.verify().ok
    assert want[2][2]["content"].startswith("[Summary of 6 earlier")  # type: ignore[union-attr]


def test_a_link_to_other_nodes_is_corruption_not_another_history(db_path: str) -> None:
    with srt.Runtime(db_path) as rt:
        s = _compacted(rt)
        before = s.messages()
    conn = apsw.Connection(db_path)
    try:  # the newest link moved to 4 nodes of another session, as ids from another store
        noise = [r[0] for r in conn.execute("SELECT id FROM nodes ORDER BY id LIMIT 7")]
        nid, meta = conn.execute(
            "SELECT id, meta FROM nodes WHERE meta IS NOT NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        data = json.loads(meta)
        data["srt_compacted"].update(first=noise[1], last=noise[4])
        conn.execute("UPDATE nodes SET meta = ? WHERE id = ?", (json.dumps(data), nid))
    finally:
        conn.close()
    with srt.Runtime(db_path) as rt:
        s = rt.session("c")
        assert s.entries()[2].replaced == ()  # not the noise
        with pytest.raises(srt.CorruptionError, match="nothing was changed"):
            s.expand()
        assert s.messages() == before
