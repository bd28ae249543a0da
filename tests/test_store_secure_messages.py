"""A session deleted and collected (``srt gc``, secure delete on: the default) leaves no
byte of its messages in a SQLite file, even where page splits earlier copied them: every
connection runs with ``secure_delete=FAST``, so a split or a rewrite zeroes the space it
frees in a page it writes anyway, and gc zeroes the pages it frees."""

from __future__ import annotations

import secrets
from pathlib import Path

import apsw

import srt
from support import NOTHING, found_in_files


def test_a_collected_session_leaves_no_copy_in_split_pages(tmp_path: Path) -> None:
    path = tmp_path / "srt.db"
    canary = f"CANARY-{secrets.token_hex(8)}"
    with srt.Runtime(path) as rt:
        secret = rt.session("secret")
        secret.append({"role": "user", "content": "my password is " + canary * 150})
        secret.append({"role": "assistant", "content": "noted " + canary * 3})
        other = rt.session("other")
        for i in range(300):  # the pages holding the secret split (the heap's, the nodes')
            role = "user" if i % 2 == 0 else "assistant"
            other.append({"role": role, "content": f"filler {i} " + "x" * (200 + i % 700)})
            if i == 5:
                secret.append({"role": "user", "content": "again " + canary})
        assert (
            sum(found_in_files(path, canary.encode()).values()) > 0
        )  # (what the test looks for is there)
        rt.delete("secret")
        report = rt.gc()
        assert report.secure_delete and report.messages == 3 and report.checkpointed
        kept = [m["content"] for m in other.messages()]
    assert found_in_files(path, canary.encode()) == NOTHING
    assert len(kept) == 300 and kept[299].startswith("filler 299 ")


def test_every_connection_zeroes_what_it_frees_in_a_page(tmp_path: Path) -> None:
    path = tmp_path / "srt.db"
    with srt.Runtime(path) as rt:
        rt.session("s").append({"role": "user", "content": "hi"})
        rows = rt.store.db.read("reading a setting", "PRAGMA secure_delete")  # type: ignore[attr-defined]
        assert rows == [(2,)]  # FAST
    plain = apsw.Connection(str(path))  # (a connection srt did not open: SQLite's default)
    try:
        assert plain.execute("PRAGMA secure_delete").get == 0
    finally:
        plain.close()
