"""``Runtime(memory_budget=...)``: the sessions' live state is bounded, least recently used
state is dropped and read again on demand, handles stay valid, and dropping a handle
frees what it held."""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any

import pytest

import srt
from rel_support.waits import WAIT_S, joined, waited
from srt.providers import OpenAI
from srt.testing import ProviderServer


def conversation(i: int, turns: int = 20) -> list[dict[str, str]]:
    out = [{"role": "system", "content": "You are helpful. " * 100}]
    for t in range(turns):
        out.append({"role": "user", "content": f"session {i} question {t} " * 4})
        out.append({"role": "assistant", "content": f"session {i} answer {t} " * 8})
    return out


def fill(path: Path, n: int) -> None:
    with srt.Runtime(str(path)) as rt:
        for i in range(n):
            rt.session(f"s{i}").append(*conversation(i))


def test_the_budget_bounds_live_state_and_handles_stay_valid(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    fill(path, 40)
    budget = 60_000
    with srt.Runtime(str(path), memory_budget=budget) as rt:
        live = [rt.session(f"s{i}") for i in range(40)]
        sizes = []
        for s in live:
            s.request("openai.chat", model="gpt-4o-mini")
            s.request("anthropic.messages", model="claude-sonnet-4-5", max_tokens=64)
            sizes.append(s.footprint())
            assert rt.memory["live"] <= budget + max(sizes)
        assert rt.memory["evictions"] > 0
        assert sum(1 for s in live if s.footprint() == 0) >= 20  # most were dropped
        # Every handle still works: it reads its history again, builds, appends.
        for i, s in enumerate(live):
            assert s.messages() == conversation(i)
            assert len(s) == 41
            s.append({"role": "user", "content": f"more {i}"})
            assert s.messages()[-1] == {"role": "user", "content": f"more {i}"}
            assert rt.memory["live"] <= budget + max(sizes)
    with srt.Runtime(str(path)) as rt:  # nothing was lost or doubled in the file
        for i in range(40):
            want = [*conversation(i), {"role": "user", "content": f"more {i}"}]
            assert rt.session(f"s{i}").messages() == want


def test_dropping_handles_gives_their_state_back(tmp_path: Path) -> None:
    """What a dropped handle held is freed, but for what the runtime keeps for the
    session's next handle (test_kept_state.py): at most ``keep_sessions`` sessions, in
    ``memory["kept"]``, and none once it is let go."""
    path = tmp_path / "d.db"
    fill(path, 10)
    with srt.Runtime(str(path), memory_budget=10_000_000) as rt:
        rt._shared.keep_sessions = 3  # noqa: SLF001
        live = [rt.session(f"s{i}") for i in range(10)]
        for s in live:
            s.request("openai.chat", model="gpt-4o-mini")
        held = rt.memory["live"]
        assert held >= sum(s.footprint() for s in live) > 0
        sizes = [s.footprint() for s in live]
        del s
        live.pop()
        gc.collect()
        assert rt.memory["live"] == held  # the last handle's state is kept, not freed
        assert rt.memory["kept"] == sizes[-1]
        live.clear()
        gc.collect()
        assert 0 < rt.memory["live"] == rt.memory["kept"] <= sum(sorted(sizes)[-3:])
        assert len(rt._shared.kept) == 3  # noqa: SLF001
        rt._shared.let_go(closing=False)  # noqa: SLF001
        assert rt.memory["live"] == 0 and rt.memory["kept"] == 0


def test_a_session_in_use_by_another_thread_is_not_evicted(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    fill(path, 3)
    with srt.Runtime(str(path), memory_budget=1) as rt:
        a, b = rt.session("s0"), rt.session("s1")
        len(a)
        busy = threading.Event()
        done = threading.Event()

        def hold() -> None:
            with a._lock:  # noqa: SLF001 - another thread in the middle of a call
                busy.set()
                done.wait(WAIT_S)

        t = threading.Thread(target=hold)
        t.start()
        waited(busy, "the holder thread taking a's lock")
        assert not a.evict()
        len(b)  # over the budget: a is the least recently used, but busy
        assert a.footprint() > 0
        done.set()
        joined(t)
        len(b)
        assert a.evict() and a.footprint() == 0
        assert a.messages() == conversation(0)


def test_a_send_survives_its_session_being_evicted_mid_call(tmp_path: Path) -> None:
    """The budget may drop a session's state while its request is on the wire; the
    reply is still appended after the right message."""
    path = tmp_path / "x.db"
    fill(path, 2)
    with ProviderServer() as srv, srt.Runtime(str(path), memory_budget=1) as rt:
        s, other = rt.session("s0"), rt.session("s1")
        provider = OpenAI(api_key="sk-test", base_url=srv.url + "/v1")
        real = provider.transport.open

        def open_and_evict(req: Any) -> Any:
            resp = real(req)
            len(other)  # another session used meanwhile: s0 is over the budget
            assert s.footprint() == 0
            return resp

        provider.transport.open = open_and_evict  # type: ignore[method-assign]
        s.append({"role": "user", "content": "one more"})
        reply = s.send(provider, model="gpt-4o-mini")
        assert s.messages()[-2:] == [{"role": "user", "content": "one more"}, reply.message]
        provider.close()


@pytest.mark.parametrize("bad", [0, -1, 1.5, "1", True])
def test_a_bad_budget_is_a_config_error(tmp_path: Path, bad: Any) -> None:
    with pytest.raises(srt.ConfigError):
        srt.Runtime(str(tmp_path / "c.db"), memory_budget=bad)
