"""A session deleted and collected leaves no trace of its words in the search index:
FTS5 keeps a deleted row's terms in its segments until they are rewritten, so gc cleans
the index after its deletes (``gc.clean_index``). The canary's token (the index holds it
lowercased, the message body upper-cased) is in neither the file nor ``-wal`` nor
``-shm`` afterwards, whether gc collects in batches or in one transaction, and the
cleanup runs in steps that writers append between (the gc module's hook runs them,
deterministically)."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest

import srt
from srt.store.sqlite import gc as batched
from srt.store.sqlite import gc_once
from support import NOTHING, found_in_files


@pytest.mark.parametrize("how", ["batches", "one transaction"])
def test_a_collected_session_leaves_no_term_in_the_search_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    path = tmp_path / "srt.db"
    token = f"qqcanary{secrets.token_hex(8)}"
    if how == "one transaction":
        monkeypatch.setattr(batched, "mark", lambda *_: None)  # (gc_once collects)
    with srt.Runtime(path) as rt:
        _canary_session(rt, token)
        rt.store.checkpoint()
        assert found_in_files(path, token.encode())[""] > 0  # (the index holds it)
        rt.delete("secret")
        report = rt.gc()
        assert report.messages == 2 and report.checkpointed
        assert rt.store.search(token) == []
        assert len(rt.store.search("filler", limit=5000)) == 4000
        assert rt.store.verify().ok
    assert found_in_files(path, token.encode()) == NOTHING
    assert found_in_files(path, token.upper().encode()) == NOTHING


@pytest.mark.parametrize("how", ["batches", "one transaction"])
def test_the_index_is_cleaned_in_steps_with_writes_between_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Each step merges one page: a turn appends after every step (each commit adds a
    segment to the index), and the cleanup still ends, with the canary gone."""
    path = tmp_path / "srt.db"
    token = f"qqcanary{secrets.token_hex(8)}"
    _one_page_steps(monkeypatch, how)
    with srt.Runtime(path) as rt:
        _canary_session(rt, token)
        rt.delete("secret")
        turns = rt.session("turns")
        steps: list[int] = []

        def hook(phase: str) -> None:  # after a step's commit, without the lock
            if phase == "index":
                steps.append(1)
                turns.append({"role": "user", "content": f"turn {len(steps)} meanwhile"})

        monkeypatch.setattr(batched, "hook", hook)
        report = rt.gc()
        monkeypatch.setattr(batched, "hook", None)
        assert report.messages == 2 and report.checkpointed
        assert len(steps) > 10  # (one page a step: the index took many)
        assert len(turns.messages()) == len(steps)
        assert len(rt.store.search("meanwhile", limit=1000)) == len(steps)
        assert rt.store.search(token) == []
        assert rt.store.verify().ok
    assert found_in_files(path, token.encode()) == NOTHING
    assert found_in_files(path, token.upper().encode()) == NOTHING


class _Stopped(Exception):
    pass


@pytest.mark.parametrize("how", ["batches", "one transaction"])
def test_a_gc_stopped_before_the_cleanup_ended_is_cleaned_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """gc commits its deletes, then cleans the index: stopped in between (here an error
    after the cleanup's first step, as a crash would), the next gc cleans it though it
    collects nothing itself (the marker the first left in ``srt_meta`` says so)."""
    path = tmp_path / "srt.db"
    token = f"qqcanary{secrets.token_hex(8)}"
    _one_page_steps(monkeypatch, how)

    def stop(phase: str) -> None:
        if phase == "index":
            raise _Stopped

    with srt.Runtime(path) as rt:
        _canary_session(rt, token)
        rt.delete("secret")
        monkeypatch.setattr(batched, "hook", stop)
        with pytest.raises(_Stopped):
            rt.gc()
        monkeypatch.setattr(batched, "hook", None)
        rt.store.checkpoint()
        assert found_in_files(path, token.encode())[""] > 0  # (still in the index)
    with srt.Runtime(path) as rt:
        report = rt.gc()
        assert report.messages == 0 and report.checkpointed
        assert rt.store.search(token) == []
        assert rt.store.verify().ok
    assert found_in_files(path, token.encode()) == NOTHING
    assert found_in_files(path, token.upper().encode()) == NOTHING


def _canary_session(rt: srt.Runtime, token: str) -> None:
    """A session "secret" of two messages holding ``token``, indexed once by the search
    index's fill and once by its trigger, among 4,000 others ("other")."""
    secret = rt.session("secret")
    secret.append({"role": "user", "content": f"my password is {token.upper()}"})
    other = rt.session("other")
    other.append([_filler(i) for i in range(2000)])
    assert rt.store.search("filler")  # builds the index over what is stored
    secret.append({"role": "assistant", "content": f"noted {token.upper()} again"})
    for k in range(20):  # indexed by the triggers, in segments of their own
        other.append([_filler(i) for i in range(2000 + 100 * k, 2100 + 100 * k)])
    assert [h.role for h in rt.store.search(token)] == ["assistant", "user"]


def _filler(i: int) -> dict[str, str]:
    return {"role": "user", "content": f"filler {i} word{i} w{i * 7919 % 10007} " + "x" * 40}


_OTHER_GC = """
import sys
import srt
from srt.store.sqlite import gc as batched

def stop(phase):
    if phase == "index":
        raise SystemExit(3)

with srt.Runtime(sys.argv[1]) as rt:
    rt.delete("secret2")
    batched.hook = stop
    rt.gc()
"""


def test_a_gc_removes_only_its_own_marker_not_one_another_process_set_since(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes' gcs: while this one cleans the index, another deletes a session,
    collects it and stops before its own cleanup. This gc's end leaves that gc's marker,
    so the next gc still cleans the other's deleted words out of the index."""
    path = tmp_path / "srt.db"
    token = f"qqcanary{secrets.token_hex(8)}"
    _one_page_steps(monkeypatch, "batches")
    codes: list[int] = []

    def other_gc(phase: str) -> None:
        if phase == "index" and not codes:
            run = subprocess.run([sys.executable, "-c", _OTHER_GC, str(path)], check=False)
            codes.append(run.returncode)

    with srt.Runtime(path) as rt:
        _canary_session(rt, f"qqfirst{secrets.token_hex(8)}")
        rt.session("secret2").append({"role": "user", "content": f"the word {token} here"})
        rt.delete("secret")
        monkeypatch.setattr(batched, "hook", other_gc)
        rt.gc()
        monkeypatch.setattr(batched, "hook", None)
        assert codes == [3]  # (the other gc stopped at its cleanup)
        key = gc_once.INDEX_PENDING_KEY
        marker = rt.store.db.connection().execute(
            "SELECT count(*) FROM srt_meta WHERE key = ?", (key,)
        )
        assert marker.fetchone()[0] == 1
    with srt.Runtime(path) as rt:
        report = rt.gc()
        assert report.messages == 0 and report.checkpointed
        assert rt.store.search(token) == []
        assert rt.store.verify().ok
    assert found_in_files(path, token.encode()) == NOTHING


def _one_page_steps(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """The index's cleanup merges one page a step, after gc's batches or (``how``: "one
    transaction") after the one-transaction gc."""
    if how == "one transaction":
        monkeypatch.setattr(batched, "mark", lambda *_: None)
    monkeypatch.setattr(batched, "MERGE_FIRST", 1, raising=False)
    monkeypatch.setattr(batched, "MERGE_MOST", 1, raising=False)
