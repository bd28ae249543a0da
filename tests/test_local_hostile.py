"""The ``local`` provider's server attacked: a port already taken, a model that does not
load, the server SIGKILLed mid-reply or stopped (SIGSTOP), and the files it writes.
Each test starts a server of its own (SmolLM2-135M, about a second) and checks that no
server outlives it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import srt
from srt.errors import ConfigError, ProviderError, StreamInterruptedError
from srt.providers.local import LocalProvider
from support import call_in, local_model

STARTED: list[int] = []


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return "gone"


def _alive(pid: int) -> bool:
    return _state(pid) not in ("Z", "X", "gone")


@pytest.fixture(scope="module", autouse=True)
def _no_orphans() -> Iterator[None]:
    yield
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in STARTED) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in STARTED if _alive(pid)] == [], "a server outlived the tests"


@pytest.fixture(scope="module")
def model() -> str:
    return local_model()


def _start(model: str, tmp_path: Path, **kw: object) -> LocalProvider:
    opts: dict[str, object] = {"ctx_size": 512, "slots": 1, "threads": 1, "save_slots": False}
    opts.update(kw)
    p = LocalProvider(model, **opts).start()  # type: ignore[arg-type]
    assert p.pid is not None
    STARTED.append(p.pid)
    return p


def test_a_port_taken_and_a_model_that_does_not_load_say_why(model: str, tmp_path: Path) -> None:
    """The error carries the end of llama.cpp's log, which names the cause (it was read
    after the log was closed, so it was always empty)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = LocalProvider(model, save_slots=False, options={"port": port})
        with pytest.raises(ProviderError, match="couldn't bind HTTP server socket") as e:
            p.start()
        assert f"port: {port}" in str(e.value)
        assert p.pid is None
        p.close()
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\xff" * 64)
    log = tmp_path / "llama.log"  # a log of the caller's: read back too
    p = LocalProvider(str(bad), save_slots=False, log_path=str(log))
    with pytest.raises(ProviderError, match="failed to load model"):
        p.start()
    p.close()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600  # made by srt: private


def test_a_server_killed_mid_reply_is_replaced_on_the_next_request(
    model: str, tmp_path: Path, rt: srt.Runtime
) -> None:
    """SIGKILL closes the server's sockets at once, but its main thread stays a zombie
    for a second or more while the others exit: the next request must start a new
    server, not be refused by the dead one's port."""
    p = _start(model, tmp_path)
    first = p.pid
    assert first is not None
    s = rt.session("killed")
    s.append({"role": "user", "content": "Tell me a long story about a garden."})
    reply = s.stream(p, model=p.model_name, max_tokens=200)
    with pytest.raises(StreamInterruptedError), reply as st:
        for n, _ in enumerate(st):
            if n == 2:
                os.kill(first, signal.SIGKILL)
    s.append({"role": "user", "content": "Name a herb."})
    s.send(p, model=p.model_name, max_tokens=4)  # a new server answers
    assert p.pid is not None and p.pid != first
    STARTED.append(p.pid)
    assert not _alive(first)
    p.close()


def test_close_does_not_hang_on_a_stopped_server(
    model: str, tmp_path: Path, rt: srt.Runtime
) -> None:
    """A server that hangs (SIGSTOP) answers nothing: ``close``, which saves slots first,
    ends it at once instead of waiting on its saves (it waited up to 600 s a slot)."""
    p = _start(model, tmp_path, save_slots=True, state_dir=str(tmp_path / "states"))
    pid = p.pid
    assert pid is not None
    s = rt.session("stopped")
    s.append({"role": "user", "content": "Name a herb."})
    s.send(p, model=p.model_name, max_tokens=4)  # leaves a slot with unsaved state
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while _state(pid) != "T" and time.monotonic() < deadline:  # every thread stopped
        time.sleep(0.01)
    closing = threading.Thread(target=p.close)
    try:
        closing.start()
        closing.join(5.0)
        hung = closing.is_alive()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)  # (lets a hung close finish)
        closing.join(60)
    assert not hung, "close() hung on a stopped server"
    assert p.pid is None and not _alive(pid)


@pytest.mark.parametrize("where", ["a-file", "a-file/below", "/proc/srt-nope"])
def test_a_state_dir_that_cannot_be_made_is_a_config_error(
    model: str, tmp_path: Path, where: str
) -> None:
    """(A NotADirectoryError or FileNotFoundError escaped from the constructor.)"""
    (tmp_path / "a-file").write_text("not a folder")
    state_dir = where if where.startswith("/") else str(tmp_path / where)
    with pytest.raises(ConfigError, match=r"cannot use .* as the folder of saved slot states"):
        LocalProvider(model, state_dir=state_dir)


@pytest.mark.parametrize("how", ["send", "stream", "asend", "astream"])
def test_a_prompt_over_the_real_context_is_a_typed_refusal(
    model: str, tmp_path: Path, how: str
) -> None:
    """llama.cpp's own ``exceed_context_size_error`` for a prompt longer than its
    ``ctx_size``, streamed or not: ``ProviderContextOverflowError`` with the server's
    token count and window, and nothing appended (before: a plain
    ``ProviderResponseError``)."""

    p = _start(model, tmp_path)
    try:
        with srt.Runtime(str(tmp_path / "s.db")) as rt:
            s = rt.session("long")
            s.append({"role": "system", "content": "Answer briefly."})
            long = {"role": "user", "content": "a garden shop sells compost and seeds " * 80}
            kw = {"model": p.model_name, "append": long, "max_tokens": 4}
            with pytest.raises(srt.ProviderContextOverflowError) as caught:
                call_in(how, s, p, **kw)
            err = caught.value
            assert isinstance(err, srt.ContextOverflowError) and err.status == 400
            assert err.limit == 512 and err.prompt_tokens is not None and err.prompt_tokens > 512
            assert "exceed" in err.provider_message
            assert [m["role"] for m in s.messages()] == ["system"]
            assert [r["status"] for r in s.calls()] == ["error"]
    finally:
        p.close()
