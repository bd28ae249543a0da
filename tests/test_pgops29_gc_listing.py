"""``srt gc`` lists the store's sessions once. ``sweeps_for`` listed every session to see
whether the store holds a gateway thread (``gw/...``), then the threads' sweep
(``gateway.orphans.collect``) listed them all again, right after: two listings of every
session, each with its message count and head prefix. Now the sweep is handed the first.
Counted in calls and in sessions handed out, on both engines, through the CLI itself."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

import srt
from srt.cli import main
from srt.store.postgres import PostgresStore
from srt.store.sqlite import SQLiteStore

LATER = 3 * 86400.0  # past the gateway threads' grace (a day)
THREADS = ["gw/acme/resp_0a1b", "gw/acme/conv_2c3d", "gw/beta/resp_4e5f"]


class _Listings:
    """Every ``list_sessions()`` of either engine's store: calls, and sessions handed out."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = self.sessions = 0
        for cls in (SQLiteStore, PostgresStore):
            monkeypatch.setattr(cls, "list_sessions", self._counting(cls.list_sessions))

    def _counting(self, listing: Any) -> Any:
        def list_sessions(store: Any) -> Any:
            got = listing(store)
            self.calls += 1
            self.sessions += len(got)
            return got

        return list_sessions


def _gc(store_url: str, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["--db", store_url, "gc", "--json", *args]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
def test_srt_gc_lists_the_sessions_once(
    store_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    dry_run: bool,
) -> None:
    with srt.Runtime(store_url) as rt:
        for name in [*THREADS, "notes"]:
            rt.session(name).append({"role": "user", "content": f"in {name}"})
    listings = _Listings(monkeypatch)
    now = time.time
    monkeypatch.setattr(time, "time", lambda: now() + LATER)
    report = _gc(store_url, capsys, *(["--dry-run"] if dry_run else []))
    # the threads' sweep ran on the one listing (no record names them: all three go)
    assert report["swept"] == {"gw.thread": 3}
    assert (listings.calls, listings.sessions) == (1, 4)  # (it was 2 calls, 8 sessions)
    with srt.Runtime(store_url) as rt:
        kept = [s.name for s in rt.store.list_sessions()]
    assert kept == (sorted([*THREADS, "notes"]) if dry_run else ["notes"])


def test_a_store_without_threads_is_listed_once_and_not_swept(
    store_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with srt.Runtime(store_url) as rt:
        rt.session("notes").append({"role": "user", "content": "hello"})
    listings = _Listings(monkeypatch)
    report = _gc(store_url, capsys)
    assert report["swept"] == {}
    assert (listings.calls, listings.sessions) == (1, 1)
