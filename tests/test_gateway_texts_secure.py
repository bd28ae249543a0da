"""A gateway text swept from a SQLite store leaves no byte in the file, ``-wal`` or
``-shm``: instructions (a secret in them) sent through the official ``openai`` SDK, the
conversation and response naming them deleted, and then the worker's hourly sweep or
``srt gc``'s (``Runtime.gc``) removes the text; nothing else of the store changes."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

import srt
from gateway_support import Harness, age_texts, harness
from srt.gateway import records as rc
from srt.gateway.orphans import THREAD
from support import NOTHING, found_in_files


def _turns(h: Harness, secrets_: list[str], n: int) -> list[str]:
    """Responses with other instructions around conversations whose only turn carries
    one of ``secrets_`` (their pages split and merge as in a store in use); the
    conversations and their responses are deleted again. Returns the kept responses."""
    c = h.client()
    kept = [
        c.responses.create(model="gpt-4o-mini", input=f"q{i}", instructions=f"before {i}").id
        for i in range(n)
    ]
    gone = []
    for value in secrets_:
        conv = c.conversations.create()
        r = c.responses.create(model="m", input="q", instructions=value, conversation=conv.id)
        gone.append((conv.id, r.id))
    kept += [
        c.responses.create(model="gpt-4o-mini", input=f"q{i}", instructions=f"after {i}").id
        for i in range(n)
    ]
    for cid, rid in gone:
        c.responses.delete(rid)
        c.conversations.delete(cid)
    return kept


@pytest.mark.parametrize("sweep", ["worker", "srt gc"])
def test_a_swept_text_leaves_no_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sweep: str
) -> None:
    db = str(tmp_path / "srt.db")
    canary = f"CANARY-{secrets.token_hex(8)}"
    values = [f"{canary} in a page", canary * 300]  # the second overflows its page
    with harness(db, monkeypatch) as h:
        kept = _turns(h, values, 30)
        if sweep == "worker":
            h.rt.store.gc()  # the messages of the deleted conversations (zeroed)
            assert found_in_files(db, canary.encode())[""] > 0  # only the texts hold it now
            h.gateway.records.texts.grace_s = 0.0  # unused from now on: old enough
            assert h.gateway.records.sweep_texts() == 2
    if sweep == "srt gc":
        age_texts(db, monkeypatch, *(json.dumps(v) for v in values))
        with srt.Runtime(db) as rt:
            assert rt.gc().swept == ((rc.TEXT, 2), (THREAD, 0))  # (its threads: named)
    assert found_in_files(db, canary.encode()) == NOTHING
    with harness(db, monkeypatch) as h:  # the rest reads back whole
        c = h.client()
        for i, rid in enumerate(kept):
            got = c.responses.retrieve(rid)
            assert got.instructions == (f"before {i}" if i < 30 else f"after {i - 30}")
            assert got.output_text
