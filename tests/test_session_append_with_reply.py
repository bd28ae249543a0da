"""``Session.send/stream(append=...)``: input committed with the reply, or not at all."""

from __future__ import annotations

import pytest

import srt
from srt.errors import ConflictError, ProviderError
from srt.providers import OpenAI
from srt.store import ObjectPut
from srt.testing import ProviderServer


def test_input_is_committed_with_the_reply_or_not_at_all(rt: srt.Runtime) -> None:
    with ProviderServer() as srv:
        p = OpenAI("k", base_url=srv.url + "/v1")
        try:
            _exercise(rt, srv, p)
        finally:
            p.close()


def _exercise(rt: srt.Runtime, srv: ProviderServer, p: OpenAI) -> None:
    s = rt.session("a")
    s.append({"role": "system", "content": "sys"})
    s.send(p, model="gpt-4o-mini", append=[{"role": "user", "content": "hi"}])
    assert len(s) == 3 and rt.session("a").messages()[1]["content"] == "hi"
    assert srv.log[-1].body["messages"][-1] == {"role": "user", "content": "hi"}

    srv.fault("chat", "status", code=400)
    with pytest.raises(ProviderError):
        s.send(p, model="gpt-4o-mini", append=[{"role": "user", "content": "x"}])
    assert len(s) == 3 and len(rt.session("a")) == 3  # nothing half-written

    other = rt.session("a")
    other.append({"role": "user", "content": "other"})
    with pytest.raises(ConflictError):
        s.send(p, model="gpt-4o-mini", append=[{"role": "user", "content": "y"}])
    assert len(rt.session("a")) == 4 and len(s) == 3

    s.refresh()
    assert s.stream(p, model="gpt-4o-mini", append=[{"role": "user", "content": "z"}]).text()
    roles = [m["role"] for m in rt.session("a").messages()]
    assert roles == ["system", "user", "assistant", "user", "user", "assistant"]

    calls = len(rt.calls())
    s.send(p, model="gpt-4o-mini", append=[{"role": "user", "content": "w"}], keep=False)
    assert len(rt.session("a")) == 6 and len(s) == 6 and len(rt.calls()) == calls + 1
    assert srv.log[-1].body["messages"][-1] == {"role": "user", "content": "w"}


def test_objects_are_written_in_the_replys_commit(rt: srt.Runtime) -> None:
    """``objects=fn``: fn(reply, depth) gives objects written in the reply's commit (filed
    under the reply with ``at_head``), or, when the commit fails, not at all."""
    seen: list[tuple[str, int]] = []

    def objects(reply: srt.Reply, depth: int) -> list[ObjectPut]:
        seen.append((str(reply.message["content"]), depth))
        return [ObjectPut("test.obj", "", f"k{depth}", seen[-1][0].encode(), at_head=True)]

    with ProviderServer() as srv:
        p = OpenAI("k", base_url=srv.url + "/v1")
        try:
            s = rt.session("o")
            s.append({"role": "system", "content": "sys"})
            s.send(
                p, model="gpt-4o-mini", append=[{"role": "user", "content": "hi"}], objects=objects
            )
            row = rt.store.get_object("test.obj", "", "k3")
            assert row is not None and row.node == s.head and len(s) == 3
            assert row.value == seen[-1][0].encode() and seen[-1][1] == 3

            other = rt.session("o")
            other.append({"role": "user", "content": "other"})
            with pytest.raises(ConflictError):
                s.send(
                    p,
                    model="gpt-4o-mini",
                    append=[{"role": "user", "content": "y"}],
                    objects=objects,
                )
            assert seen[-1][1] == 5  # asked for, then nothing written with the failed commit
            assert rt.store.get_object("test.obj", "", "k5") is None
        finally:
            p.close()
