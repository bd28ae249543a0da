"""``srt gc`` collects the gateway's texts that no live record names, with the gateway
stopped, on both engines: the texts are made through the official ``openai`` SDK against
the gateway, which then stops; ``srt gc`` (a child process) removes exactly the unnamed
ones unused for the grace period, keeps those named or used within it, and reports the
count (text and ``--json``). A store without gateway objects gc's as before, and its gc
never imports the gateway."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import srt
from gateway_support import age_texts, harness, srt_cli
from srt.gateway import records as rc
from srt.gateway.orphans import THREAD
from support import cli_env

LINE = "removed 2 gateway texts that no live response or conversation names, unused for 24 hours"


def _texts(db: str) -> dict[str, str]:
    """Each stored text's value (JSON) -> its key."""
    with srt.Runtime(db) as rt:
        rows = list(rt.store.scan_objects(kind=rc.TEXT))
    return {bytes(r.value).decode("utf-8"): r.key for r in rows}


def _made(db: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A gateway store, the gateway stopped: texts named by live responses and a
    conversation's, and texts of deleted responses; returns the response ids by name."""
    with harness(db, monkeypatch) as h:
        c = h.client()
        conv = c.conversations.create()
        ids = {
            name: c.responses.create(
                model="gpt-4o-mini", input=f"q {name}", instructions=name, **kw
            ).id
            for name, kw in [
                ("named", {}),
                ("in conversation", {"conversation": conv.id}),
                ("gone old", {}),
                ("gone too", {}),
                ("gone recent", {}),
                ("reused", {}),
            ]
        }
        for name in ("gone old", "gone too", "gone recent", "reused"):
            c.responses.delete(ids[name])
    return ids


def test_srt_gc_removes_exactly_the_unnamed_texts_past_the_grace_period(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = store_url
    ids = _made(db, monkeypatch)
    every = {json.dumps(n) for n in ids}
    assert set(_texts(db)) == every
    # every text but "gone recent" unused for longer than the grace period ...
    age_texts(db, monkeypatch, *(v for v in every if v != '"gone recent"'))
    # ... and then "reused" used again by a turn (a gateway started afresh), its
    # response deleted again: unnamed, but used within the grace period
    with harness(db, monkeypatch) as h:
        c = h.client()
        again = c.responses.create(model="gpt-4o-mini", input="q", instructions="reused")
        c.responses.delete(again.id)
    before = _texts(db)

    with srt.Runtime(db) as rt:  # the API: a dry run counts, removes nothing
        # (the threads' sweep runs too: the live responses' threads, all named)
        assert rt.gc(dry_run=True).swept == ((rc.TEXT, 2), (THREAD, 0))
    dry = json.loads(srt_cli(db, tmp_path, "gc", "--dry-run", "--json"))
    assert dry["swept"] == {rc.TEXT: 2, THREAD: 0} and dry["dry_run"] is True
    assert LINE.replace("removed", "would remove") in srt_cli(db, tmp_path, "gc", "--dry-run")
    assert _texts(db) == before

    assert LINE in srt_cli(db, tmp_path, "gc").splitlines()
    gone = {'"gone old"', '"gone too"'}
    assert _texts(db) == {v: k for v, k in before.items() if v not in gone}
    assert json.loads(srt_cli(db, tmp_path, "gc", "--json"))["swept"] == {rc.TEXT: 0, THREAD: 0}
    assert "gateway text" not in srt_cli(db, tmp_path, "gc")

    with harness(db, monkeypatch) as h:  # the records still named read back whole
        c = h.client()
        for name in ("named", "in conversation"):
            assert c.responses.retrieve(ids[name]).instructions == name


def test_a_text_reused_while_runtime_gc_sweeps_it_stays(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race rule through ``Runtime.gc`` (what ``srt gc`` runs), from another runtime
    on the store while a gateway serves it: the sweep found the text unnamed and old, a
    turn reuses it before the deletion, and the deletion leaves it."""
    db = store_url
    with harness(db, monkeypatch) as h:
        c = h.client()
        for name in ("shared", "old"):
            c.responses.delete(c.responses.create(model="m", input="q", instructions=name).id)
    age_texts(db, monkeypatch, '"shared"', '"old"')
    shared = _texts(db)['"shared"']
    with harness(db, monkeypatch) as h, srt.Runtime(db) as cron:
        deleting, written = threading.Event(), threading.Event()
        real = cron.store.delete_object

        def delete_object(kind: str, scope: str, key: str, **kw: Any) -> bool:
            if (kind, key) == (rc.TEXT, shared):  # found unnamed and old: the turn runs now
                deleting.set()
                assert written.wait(30)
            return real(kind, scope, key, **kw)

        monkeypatch.setattr(cron.store, "delete_object", delete_object)
        got: list[Any] = []
        sweep = threading.Thread(target=lambda: got.append(cron.gc().swept))
        sweep.start()
        assert deleting.wait(30)
        c = h.client()
        turn = c.responses.create(model="m", input="q", instructions="shared")
        written.set()
        sweep.join(30)
        assert got == [((rc.TEXT, 1),)]  # "old" went
        assert set(_texts(db)) == {'"shared"'}
        assert c.responses.retrieve(turn.id).instructions == "shared"


def test_srt_gc_of_a_store_without_gateway_objects_is_unchanged(
    store_url: str, tmp_path: Path
) -> None:
    db = store_url
    with srt.Runtime(db) as rt:
        s = rt.session("a")
        s.append({"role": "user", "content": "kept"}, {"role": "assistant", "content": "ok"})
        s.fork("b").append({"role": "user", "content": "dropped"})
        rt.delete("b")
        rt.store.put_object("checkpoint", "t", "c", b"x")  # another layer's object
        sessions = [i.name for i in rt.sessions()]
    assert srt_cli(db, tmp_path, "gc", "--dry-run").splitlines() == [
        "would remove 1 node and 1 message (35 bytes of message bodies) that no session reaches",
        "dry run: nothing was changed",
    ]
    report = json.loads(srt_cli(db, tmp_path, "gc", "--json"))
    assert (report["nodes"], report["messages"], report["swept"]) == (1, 1, {})
    out = srt_cli(db, tmp_path, "gc").splitlines()
    assert out[0] == (
        "removed 0 nodes and 0 messages (0 bytes of message bodies) that no session reaches"
    )
    assert not [line for line in out if "gateway" in line]
    with srt.Runtime(db) as rt:
        assert [i.name for i in rt.sessions()] == sessions
        row = rt.store.get_object("checkpoint", "t", "c")
        assert row is not None and bytes(row.value) == b"x"
    # Runtime.gc on such a store neither sweeps nor imports the gateway
    code = (
        "import sys, srt\n"
        f"with srt.Runtime({db!r}) as rt:\n"
        "    r = rt.gc()\n"
        "print(r.swept, 'srt.gateway' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        env=cli_env(tmp_path / "cli" / "srt.db"),
        timeout=120,
    )
    assert (proc.returncode, proc.stderr, proc.stdout) == (0, b"", b"() False\n"), proc
