"""``srt copy`` said "1 object copied" on every re-run, and counted a message once per
session that holds it (49 for 33 stored). It now reports what the run wrote to DEST:
the distinct messages new there, the objects new or changed, what was already there
(the per-session count stays in the JSON as ``messages_sent``), SQLite to PostgreSQL
and back, a re-run included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import srt

KIND = "test.cli28b"


def _copy(src: str, dest: str, *json_flag: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "SRT_DB"}
    r = subprocess.run(
        [sys.executable, "-m", "srt", "copy", src, dest, *json_flag],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (r.returncode, r.stderr) == (0, ""), r
    return r.stdout


def _report(src: str, dest: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(_copy(src, dest, "--json"))
    assert report.pop("verified") is True
    return report


def _stored(url: str) -> int:
    """The distinct messages the store holds, as ``verify`` counts them."""
    with srt.Runtime(url) as rt:
        report = rt.store.verify()
        assert report.ok, report.faults
        return report.messages


def _fill(path: str) -> None:
    """Two sessions sharing their first two messages (8 in the sessions, 6 distinct),
    an earlier head that reaches a seventh (``srt.history``), and an object."""
    with srt.Runtime(path) as rt:
        a = rt.session("a")
        a.append({"role": "system", "content": "You are terse."})
        a.append({"role": "user", "content": "Where is my order?"})
        a.append({"role": "assistant", "content": "On its way."})
        a.append({"role": "user", "content": "When?"})
        a.rewind(1)  # (the earlier head keeps "When?")
        a.append({"role": "user", "content": "And my refund?"})
        b = a.fork("b", 2)
        b.append({"role": "user", "content": "Cancel it."})
        b.append({"role": "assistant", "content": "Cancelled."})
        rt.store.put_object(KIND, "s", "k", b"one")


def test_copy_counts_what_it_wrote_there_and_back(tmp_path: Path, pg_url: str) -> None:
    src = str(tmp_path / "src.db")
    _fill(src)
    with srt.Runtime(src) as rt:
        objects = sum(1 for _ in rt.store.scan_objects())
    assert objects >= 2  # (the earlier head's record and ours)

    first = _report(src, pg_url)
    assert first == {
        "sessions_copied": 2,
        "sessions_present": 0,
        "messages_stored": 7,
        "messages_sent": 8,  # (per session: a's 4, b's 4)
        "objects_copied": objects,
        "objects_present": 0,
        "calls_copied": 0,
        "calls_present": 0,
    }
    assert _stored(pg_url) == 7
    again = _report(src, pg_url)
    assert again == {
        **first,
        "sessions_copied": 0,
        "sessions_present": 2,
        "messages_stored": 0,
        "messages_sent": 0,
        "objects_copied": 0,
        "objects_present": objects,
    }
    assert _copy(src, pg_url) == (
        "copied 0 sessions (0 new messages stored), 0 new or changed objects, "
        "0 ledger rows; already there: 2 sessions, "
        f"{objects} objects, 0 ledger rows; verified by hashes\n"
    )

    # one message more in b and our object changed: that much is written
    with srt.Runtime(src) as rt:
        rt.session("b").append({"role": "user", "content": "Thanks."})
        rt.store.put_object(KIND, "s", "k", b"two")
    more = _report(src, pg_url)
    assert (more["sessions_copied"], more["sessions_present"]) == (1, 1)
    assert (more["messages_stored"], more["messages_sent"]) == (1, 1)
    assert (more["objects_copied"], more["objects_present"]) == (1, objects - 1)
    assert _stored(pg_url) == 8

    back = str(tmp_path / "back.db")
    home = _report(pg_url, back)
    assert (home["sessions_copied"], home["messages_stored"], home["messages_sent"]) == (
        2,
        8,
        9,
    )
    assert (home["objects_copied"], home["objects_present"]) == (objects, 0)
    assert _stored(back) == 8
    assert _copy(pg_url, back) == (
        "copied 0 sessions (0 new messages stored), 0 new or changed objects, "
        "0 ledger rows; already there: 2 sessions, "
        f"{objects} objects, 0 ledger rows; verified by hashes\n"
    )
