"""A session evicted by ``Runtime(memory_budget=...)`` while it is in use: while the
caller holds a body it built (``bytes``, a ``memoryview`` of it), while a stream on it is
being consumed, and between the build of a send and its bytes reaching the socket. The
caller's bytes never change (``_core.OutputBuffer`` writes in place only a body nobody
else holds), and the next turn's bytes are what a fresh runtime builds from the stored
head."""

from __future__ import annotations

import asyncio
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

import srt
from rel_support.waits import WAIT_S, joined, waited
from srt.providers import OpenAI
from test_async28_threads import MODEL, TaggedServer, fill


def fresh(path: Path, name: str, tag: str) -> bytes:
    """What a new runtime on the file builds for session ``name`` as stored."""
    with srt.Runtime(str(path)) as rt:
        return rt.session(name).request("openai.chat", model=MODEL, user=tag)


def test_held_bodies_stay_as_built_across_evictions(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    fill(path, 3)  # s0 and s1: bodies of ~150 KB, past the in-place threshold
    with srt.Runtime(str(path), memory_budget=1) as rt:
        s, other = rt.session("s0"), rt.session("s2")
        held: list[tuple[bytes, memoryview, bytes]] = []
        for turn in range(8):
            body = s.request("openai.chat", model=MODEL, user="x")
            assert body == fresh(path, "s0", "x")
            if turn % 2 == 0:
                view = memoryview(body)
                held.append((body, view, bytes(view)))
            del body
            len(other)  # s0 evicted: its builder and its kept bodies dropped
            assert s.footprint() == 0
            s.append({"role": "user", "content": f"turn {turn} " * 50})
            s.request("openai.chat", model=MODEL, user="x")  # built again, then dropped
            s.append({"role": "assistant", "content": f"reply {turn}"})  # (grown in place)
        for body, view, copy in held:
            assert body == copy and view.tobytes() == copy
        assert rt.memory["evictions"] >= 8


def test_a_stream_consumed_while_its_session_is_evicted(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    fill(path, 3)
    with TaggedServer() as srv, srt.Runtime(str(path), memory_budget=1) as rt:
        srv.respond("*", lambda _e, body, _u: f"re:{body.get('user')} " * 30)
        provider = OpenAI(api_key="sk-test", base_url=srv.url + "/v1")
        s, other = rt.session("s0"), rt.session("s2")
        s.append({"role": "user", "content": "stream please"})
        got = []
        with s.stream(provider, model=MODEL, user="one") as st:
            for delta in st:
                got.append(delta)
                if len(got) == 2:
                    len(other)  # s0 evicted mid-stream
                    assert s.footprint() == 0
        assert "".join(got) == "re:one " * 30
        assert s.messages()[-1]["content"] == "re:one " * 30
        # The next turn sends what a fresh runtime builds from the stored history.
        s.append({"role": "user", "content": "and again"})
        s.send(provider, model=MODEL, user="two")
        with srt.Runtime(str(path)) as rt2:
            v = rt2.session("v")
            v.append(*rt2.session("s0").messages()[:-1])
            assert srv.bodies["two"] == v.request("openai.chat", model=MODEL, user="two")
        provider.close()


def test_an_astream_consumed_while_its_session_is_evicted(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    fill(path, 3)
    with TaggedServer() as srv, srt.Runtime(str(path), memory_budget=1) as rt:
        srv.respond("*", lambda _e, body, _u: f"re:{body.get('user')} " * 30)
        provider = OpenAI(api_key="sk-test", base_url=srv.url + "/v1")
        s, other = rt.session("s1"), rt.session("s2")

        async def main() -> None:
            got = []
            more = {"role": "user", "content": "astream please"}
            async with s.astream(provider, model=MODEL, user="one", append=[more]) as st:
                async for delta in st:
                    got.append(delta)
                    if len(got) == 2:
                        len(other)  # s1 is not evicted: its call holds staged messages
            assert "".join(got) == "re:one " * 30
            len(other)
            assert s.footprint() == 0  # (evicted once its call ended)
            await s.asend(provider, model=MODEL, user="two", append=[more])
            await provider.aclose()

        asyncio.run(main())
        assert s.messages()[-4:-2] == [
            {"role": "user", "content": "astream please"},
            {"role": "assistant", "content": "re:one " * 30},
        ]
        assert fresh(path, "s1", "x") == s.request("openai.chat", model=MODEL, user="x")
        provider.close()


def test_a_send_body_goes_out_whole_after_its_session_is_evicted(tmp_path: Path) -> None:
    """The send path hands the transport the history's frozen segments (``_core.Body``):
    evicting the session drops its builder, but the body in flight keeps its bytes."""
    path = tmp_path / "b.db"
    fill(path, 3)
    with TaggedServer() as srv, srt.Runtime(str(path), memory_budget=1) as rt:
        provider = OpenAI(api_key="sk-test", base_url=srv.url + "/v1")
        s, other = rt.session("s0"), rt.session("s2")
        real = provider.transport.open

        def evict_then_open(req: Any) -> Any:
            len(other)  # s0 evicted between its build and the body's write
            assert s.footprint() == 0
            return real(req)

        provider.transport.open = evict_then_open  # type: ignore[method-assign]
        for turn in range(3):
            s.append({"role": "user", "content": f"turn {turn}"})
            want = s.request("openai.chat", model=MODEL, user=f"t{turn}")
            assert want == fresh(path, "s0", f"t{turn}")
            s.send(provider, model=MODEL, user=f"t{turn}")
            assert srv.bodies[f"t{turn}"] == want
        provider.close()


def test_a_session_too_busy_to_evict_stays_counted(tmp_path: Path) -> None:
    """A session the budget could not evict (another thread in a call on it) was taken
    out of the count: its state stayed in memory, uncounted and never evicted, until its
    next use (after an asyncio call, none: its persist does not count it again)."""
    path = tmp_path / "t.db"
    fill(path, 3)
    with srt.Runtime(str(path), memory_budget=1) as rt:
        a, b = rt.session("s2"), rt.session("s1")
        len(a)
        busy, done = threading.Event(), threading.Event()

        def hold() -> None:
            with a._lock:  # noqa: SLF001 - another thread in the middle of a call
                busy.set()
                done.wait(WAIT_S)

        t = threading.Thread(target=hold)
        t.start()
        waited(busy, "the holder thread taking a's lock")
        len(b)  # over the budget: a is the least recently used, but busy
        done.set()
        joined(t)
        assert a.footprint() > 0
        assert rt.memory["live"] == a.footprint() + b.footprint()
        len(rt.session("s0"))  # the next use of another session evicts it
        assert a.footprint() == 0


def counted(rt: srt.Runtime, s: srt.Session) -> bool:
    """Whether the budget counts the state ``s`` holds (a handle holding state that is
    not counted is never evicted)."""
    return id(s) in rt._shared.budget._live  # noqa: SLF001


def test_a_reply_refused_after_an_eviction_leaves_its_session_counted(tmp_path: Path) -> None:
    """Evicted while its request was out, the session's history was read again by the
    reply's commit, which another handle's append then refused (``ConflictError``): the
    state read was left uncounted."""
    path = tmp_path / "r.db"
    fill(path, 3)
    with TaggedServer() as srv, srt.Runtime(str(path), memory_budget=1) as rt:
        provider = OpenAI(api_key="sk-test", base_url=srv.url + "/v1")
        s, other, rival = rt.session("s2"), rt.session("s1"), rt.session("s2")
        len(rival)
        real = provider.transport.open

        def open_evict_and_move(req: Any) -> Any:
            resp = real(req)
            len(other)  # s evicted while its request is out
            rival.append({"role": "user", "content": "first"}, rebase=True)  # its head moved
            return resp

        provider.transport.open = open_evict_and_move  # type: ignore[method-assign]
        s.append({"role": "user", "content": "question"})
        with pytest.raises(srt.ConflictError):
            s.send(provider, model=MODEL, user="r")
        assert s.footprint() > 0 and counted(rt, s)
        provider.close()


def test_a_call_failing_before_its_body_went_out_leaves_its_session_counted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "f.db"
    fill(path, 3)
    with srt.Runtime(str(path), memory_budget=1) as rt:
        s, other = rt.session("s2"), rt.session("s1")
        len(s)
        len(other)  # s evicted
        assert s.footprint() == 0
        with socket.socket() as sock:  # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        provider = OpenAI(
            api_key="sk-test",
            base_url=f"http://127.0.0.1:{port}/v1",
            retry=srt.RetryPolicy(max_retries=0),
        )
        with pytest.raises(srt.ProviderError):
            s.send(provider, model=MODEL)
        assert s.footprint() > 0 and counted(rt, s)  # its build read the history again
        provider.close()
