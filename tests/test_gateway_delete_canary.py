"""What a client deletes at the gateway is gone once collected: after
``DELETE /v1/responses/{id}`` and ``DELETE /v1/conversations/{id}`` (the official
``openai`` SDK against ``srt serve``), the text grace passed (aged here) and
``Runtime.gc()``, no byte of the deleted things' input, output, instructions or tool
descriptions is left in the SQLite file, ``-wal`` or ``-shm``, while what other live
responses and conversations reach reads back whole (SQLite only: PostgreSQL does not
zero; ``test_gateway_delete_chains.py`` checks both engines keep and drop the same)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

import srt
from gateway_support import Harness, canary_tool, harness
from srt.store.reports import GcReport
from support import NOTHING, found_in_files


def _others(h: Harness, n: int, tag: str) -> list[str]:
    """Responses and a conversation that stay (their pages split and merge around)."""
    c = h.client()
    return [
        c.responses.create(
            model="gpt-4o-mini", input=f"{tag} q{i} " + "x" * 300, instructions=f"{tag} {i}"
        ).id
        for i in range(n)
    ]


def _collect(db: str, monkeypatch: pytest.MonkeyPatch) -> GcReport:
    """The text grace passed (``texts.GRACE_S``: the clock moved on), then ``srt gc``."""
    import time

    later = time.time() + 3 * 86400.0
    with srt.Runtime(db) as rt, monkeypatch.context() as m:
        m.setattr(time, "time", lambda: later)
        return rt.gc()


def _check_kept(db: str, monkeypatch: pytest.MonkeyPatch, kept: list[str]) -> None:
    with harness(db, monkeypatch) as h:
        c = h.client()
        for rid in kept:
            got = c.responses.retrieve(rid)
            assert got.output_text and got.instructions
            assert c.responses.input_items.list(rid).data
            assert c.responses.create(model="gpt-4o-mini", input="on", previous_response_id=rid)


def test_deleted_responses_leave_no_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chain (instructions, tools, input and output carrying the canary), a fork of
    its first response, a re-rooted continuation (new instructions), a streamed one:
    all deleted, every byte goes; the responses around them stay whole."""
    db = str(tmp_path / "srt.db")
    canary = f"CANARY{secrets.token_hex(6)}"  # (the test server echoes 20 chars)
    with harness(db, monkeypatch) as h:
        c = h.client()
        kept = _others(h, 15, "before")
        r1 = c.responses.create(
            model="gpt-4o-mini",
            input=f"{canary} is my secret " + canary * 200,  # overflows its page
            instructions=f"keep {canary} safe",
            tools=canary_tool(canary),
        )
        r2 = c.responses.create(
            model="gpt-4o-mini", input=f"{canary} again", previous_response_id=r1.id
        )
        r3 = c.responses.create(
            model="gpt-4o-mini", input=f"{canary} fork", previous_response_id=r1.id
        )
        r4 = c.responses.create(
            model="gpt-4o-mini",
            input=f"{canary} rerooted",
            instructions=f"now {canary}",
            previous_response_id=r2.id,
        )
        with c.responses.stream(
            model="gpt-4o-mini", input=f"{canary} streamed", previous_response_id=r4.id
        ) as st:
            r5 = st.get_final_response()
        assert all(canary in r.output_text for r in (r1, r2, r3, r4, r5))
        kept += _others(h, 15, "after")
        assert sum(found_in_files(db, canary.encode()).values()) > 0
        for r in (r3, r1, r5, r2, r4):  # in no order of the chain
            assert c.responses.delete(r.id) is None
    report = _collect(db, monkeypatch)
    assert report.messages > 0
    assert found_in_files(db, canary.encode()) == NOTHING
    _check_kept(db, monkeypatch, kept)


def test_a_deleted_conversation_leaves_no_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conversation's items, its responses (new instructions re-root it in a new
    session, tools described with the canary), an item deleted: the conversation and
    its responses deleted, every byte goes; another conversation stays whole."""
    db = str(tmp_path / "srt.db")
    canary = f"CANARY{secrets.token_hex(6)}"  # (the test server echoes 20 chars)
    with harness(db, monkeypatch) as h:
        c = h.client()
        kept = _others(h, 10, "before")
        stays = c.conversations.create(items=[{"role": "user", "content": "stay " + "y" * 200}])
        conv = c.conversations.create(
            items=[{"role": "user", "content": f"note {canary} " + canary * 200}]
        )
        made = []
        for i, instructions in enumerate(("first", f"then {canary}", "last")):
            made.append(
                c.responses.create(
                    model="gpt-4o-mini",
                    input=f"{canary} turn {i}",
                    instructions=instructions,
                    conversation=conv.id,
                    tools=canary_tool(canary),
                ).id
            )
        c.responses.create(model="gpt-4o-mini", input="stays", conversation=stays.id)
        items = c.conversations.items.list(conv.id, order="asc").data
        c.conversations.items.delete(items[1].id, conversation_id=conv.id)
        kept += _others(h, 10, "after")
        for rid in made:
            c.responses.delete(rid)
        c.conversations.delete(conv.id)
    report = _collect(db, monkeypatch)
    assert report.messages > 0
    assert found_in_files(db, canary.encode()) == NOTHING
    _check_kept(db, monkeypatch, kept)
    with harness(db, monkeypatch) as h:
        c = h.client()
        texts = [json.dumps(i.model_dump()) for i in c.conversations.items.list(stays.id).data]
        assert len(texts) == 3 and "stay " in texts[-1]
