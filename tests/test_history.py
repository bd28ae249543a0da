"""What users look for in the API (issue 14, item 7): metadata and status readable,
a compaction's span visible, earlier heads listed and restored and kept for a
retention period, and the ledger's bodies rebuilt by verify."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import apsw
import pytest

import srt
from srt import history
from srt.context import WindowPolicy
from srt.providers import Anthropic, OpenAI
from srt.testing import ProviderServer
from srt.tokens import GENERIC_ESTIMATE

KEY = "sk-history-key"


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server


def _turns(s: srt.Session, n: int) -> None:
    s.append({"role": "system", "content": "sys"})
    for i in range(n):
        s.append({"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"})


# -- metadata, status, compactions ---------------------------------------------------------


def test_metadata_is_readable_and_the_default_list_unchanged(rt: srt.Runtime) -> None:
    s = rt.session("m")
    s.append(
        {"role": "user", "content": "hi", "metadata": {"ticket": 42, "pinned": True}},
        {"role": "assistant", "content": "hello"},
    )
    assert s.messages() == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    ]
    with_meta = s.messages(metadata=True)
    assert with_meta[0]["metadata"] == {"ticket": 42, "pinned": True}
    assert "metadata" not in with_meta[1]
    # What messages(metadata=True) gives can be appended elsewhere as it is.
    copy = rt.session("copy")
    copy.append(*with_meta)
    assert copy.messages(metadata=True) == with_meta and copy.head == s.head
    entries = s.entries()
    assert [(e.index, e.metadata, e.status) for e in entries] == [
        (0, {"ticket": 42, "pinned": True}, None),
        (1, None, None),
    ]


def test_a_partial_replys_status_is_public(rt: srt.Runtime, srv: ProviderServer) -> None:
    s = rt.session("p")
    s.append({"role": "user", "content": "tell me"})
    srv.fault("openai", "reset_after_events", n=3)
    with closing(OpenAI(KEY, base_url=srv.url + "/v1")) as p, pytest.raises(srt.ProviderError):
        s.stream(p, model="gpt-4o-mini").text()
    last = s.entries()[-1]
    assert (last.message["role"], last.status, last.partial) == ("assistant", "incomplete", True)
    assert not s.entries()[0].partial


def test_a_compactions_span_is_visible(rt: srt.Runtime) -> None:
    s = rt.session("c")
    _turns(s, 6)
    original = s.messages()
    s.compact(9, "six questions, six answers")  # after the system and first user message
    entries = s.entries()
    summary = entries[2]
    assert summary.message["content"].endswith("six questions, six answers")
    assert list(summary.replaced) == original[2:9]
    assert summary.metadata is None  # srt's own link is not the user's metadata
    assert all(not e.replaced for i, e in enumerate(entries) if i != 2)


# -- earlier heads -------------------------------------------------------------------------


def test_rewind_and_edit_leave_heads_that_can_be_restored(rt: srt.Runtime) -> None:
    s = rt.session("h")
    _turns(s, 3)
    full, full_head = s.messages(), s.head
    assert s.history() == []  # appending leaves nothing behind
    s.rewind(2)
    (rec,) = s.history()
    assert (rec.action, rec.messages, rec.head) == ("rewind", 7, full_head)
    assert rec.expires == pytest.approx(rec.at + history.DEFAULT_RETENTION_S)
    s.edit(-1, {"role": "assistant", "content": "a1, said again"})
    edited = s.messages()
    assert [r.action for r in s.history()] == ["edit", "rewind"]
    s.restore(rec)
    assert s.messages() == full and s.head == full_head
    assert [r.action for r in s.history()] == ["restore", "edit", "rewind"]
    s.restore(s.history()[0].key)  # back to the edited branch, by key
    assert s.messages() == edited
    # Another handle sees the moves; an unknown key is a typed error.
    assert rt.session("h").messages() == edited
    with pytest.raises(srt.SessionError, match="no earlier head"):
        s.restore("nope")
    # compact and expand are recorded too.
    s.compact(5, "summary")
    s.expand()
    assert [r.action for r in s.history()][:2] == ["expand", "compact"]


def test_gc_frees_an_earlier_head_only_after_its_retention(db_path: str) -> None:
    with srt.Runtime(db_path) as rt:
        s = rt.session("g")
        _turns(s, 4)
        s.rewind(4)
        assert rt.store.gc().nodes == 0  # within the retention: nothing is freed
        assert rt.history_retention == history.DEFAULT_RETENTION_S
        # A shorter retention re-dates the record; gc frees the head only past it.
        assert rt.set_history_retention(1.5) == 1
        (rec,) = s.history()
        assert rec.expires == pytest.approx(rec.at + 1.5)
        if time.time() < rec.at + 1.2:  # (as long as this runs well within it)
            assert rt.store.gc().nodes == 0 and len(s.history()) == 1
        time.sleep(max(0.0, rec.at + 1.6 - time.time()))
        report = rt.store.gc()
        assert report.nodes == 4 and s.history() == []
    # The setting is the database's: a new runtime reads it.
    with srt.Runtime(db_path) as rt:
        assert rt.history_retention == 1.5
    with srt.Runtime(db_path, history_retention=0) as rt:
        s = rt.session("g")
        s.append({"role": "user", "content": "x"})
        s.rewind(1)
        assert s.history() == []  # retention 0: no earlier head is kept
    with pytest.raises(srt.ConfigError):
        srt.Runtime(db_path, history_retention=-1)


# -- the ledger ----------------------------------------------------------------------------


def test_verify_rebuilds_every_ledger_body(rt: srt.Runtime, srv: ProviderServer) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    system = {"role": "system", "content": "Rules. " * 600}
    with (
        closing(OpenAI(KEY, base_url=srv.url + "/v1")) as chat,
        closing(OpenAI(KEY, base_url=srv.url + "/v1", api="responses")) as responses,
        closing(Anthropic(KEY, base_url=srv.url)) as anthropic,
    ):
        a = rt.session("anthropic")
        a.append(system)
        for i in range(4):  # breakpoints that depend on the previous request
            a.append({"role": "user", "content": f"question {i} " * 50})
            a.send(anthropic, model="claude-sonnet-4-6", max_tokens=64, tools=[tool])
        r = rt.session("responses")
        r.append(system)
        for i in range(3):  # previous_response_id deltas
            r.append({"role": "user", "content": f"q{i}"})
            r.send(responses, model="gpt-5", max_output_tokens=64)
        w = rt.session("window")
        w.append(system)
        window = WindowPolicy("cache_aware", 1_500, tokenizer=GENERIC_ESTIMATE)
        for i in range(6):  # a window that cuts
            w.append({"role": "user", "content": f"turn {i} " * 120})
            w.stream(chat, model="gpt-4o-mini", window=window, temperature=0.2).text()
        srv.fault("openai", "reset_after_events", n=3)
        with pytest.raises(srt.ProviderError):
            w.stream(chat, model="gpt-4o-mini").text()  # a partial reply
        w.append({"role": "user", "content": "again"})
        w.send(chat, model="gpt-4o-mini", include_partial=True)
    calls = rt.calls()
    assert any(c["previous_response_id"] for c in calls)
    assert any(json.loads(c["params"])["kept"] for c in calls)
    assert any(json.loads(c["params"])["breakpoints"] for c in calls)
    report = rt.verify_ledger()
    assert report.ok, [str(f) for f in report.faults]
    assert (report.checked, report.unchecked) == (len(calls), 0)

    # A row whose parameters were altered no longer rebuilds to its hash.
    row = calls[-1]
    spec = json.loads(row["params"])
    spec["params"]["max_tokens"] = 7
    conn = apsw.Connection(rt.path)
    conn.execute("UPDATE calls SET params = ? WHERE id = ?", (json.dumps(spec), row["id"]))
    conn.close()
    report = rt.verify_ledger()
    assert len(report.faults) == 1 and report.faults[0].row == row["id"]
    assert "not the" in report.faults[0].detail


def test_deleting_a_session_drops_its_earlier_heads(rt: srt.Runtime) -> None:
    """srt delete then srt gc frees everything only that session reached."""
    s = rt.session("d")
    _turns(s, 3)
    s.rewind(4)
    assert len(s.history()) == 1 and rt.store.gc().nodes == 0
    rt.delete("d")
    assert rt.store.gc().nodes == 7
    assert rt.store.list_objects(history.KIND, str(s.parts.chain.id)) == []


def test_verify_rebuilds_the_ledger_of_a_keyed_store(tmp_path: Path, srv: ProviderServer) -> None:
    """The exchange records a keyed store's body hash with the store's key, and verify
    rebuilds it the same way (it once used plain XXH3 and reported every row)."""
    rt = srt.Runtime(str(tmp_path / "keyed.db"), hash_key=b"k" * 32)
    s = rt.session("k")
    s.append({"role": "user", "content": "hi"})
    srv.script("openai", ["hello"])
    with closing(OpenAI(KEY, base_url=srv.url + "/v1")) as p:
        s.send(p, model="gpt-4o-mini")
    report = rt.verify_ledger()
    assert report.ok and (report.checked, report.unchecked) == (1, 0), report.faults
    rt.close()
