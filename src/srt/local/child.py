"""The child process that hosts llama.cpp's HTTP server for the ``local`` provider.

Run as a script, ``python .../srt/providers/_llama_child.py`` (running it as a path
rather than with ``-m`` spares the child importing the ``srt`` package, about
0.6 s of its start); srt imports it only for the handshake constants.
``xllamacpp.Server(params)`` starts llama.cpp's own server inside the calling
process and has no ``stop()``, so it lives in a process of its own that srt owns
and ends by its PID.

Protocol, over the child's standard streams:

* stdin, first line: a JSON object of settings (see ``_params``);
* stdout, one line: ``SRT-LLAMA-READY {"url": ..., "pid": ...}`` once the model is
  loaded and the server listens, or ``SRT-LLAMA-ERROR {"error": ...}``;
* stdin after that is the lifeline: the child never reads data from it, and exits
  at once when it reaches end of file.

The child dies with its parent, however the parent ends (including SIGKILL):

* the parent holds the only write end of the child's stdin, so the kernel closes
  it when the parent dies and the child reads end of file;
* a watcher also polls ``os.getppid()``, which changes when the parent dies, for
  the case where a fork of the parent inherited that pipe.

``prctl(PR_SET_PDEATHSIG)`` is not used: Linux sends it when the *thread* that
started the child exits, so a provider started from a worker thread would lose
its server while the process is still alive.

SIGINT is ignored: a Ctrl-C at the terminal reaches the whole foreground process
group, and the parent shuts the server down itself (after saving slots).
llama.cpp's log goes to stderr, which the parent points at a log file.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import threading
import time
from typing import Any

READY = "SRT-LLAMA-READY"
ERROR = "SRT-LLAMA-ERROR"
POLL_S = 0.25
LOG_GRACE_S = 0.3


class NoParameter(ValueError):
    """``options`` names a server parameter that llama.cpp does not have."""


def set_param(obj: Any, dotted: str, value: Any) -> None:
    """Set the server parameter ``dotted`` (``sampling.seed``) of ``CommonParams``
    ``obj``: ``NoParameter`` if there is none, llama.cpp's ``TypeError`` or
    ``OverflowError`` if it refuses the value. (The parent checks ``options`` with it.)"""
    *path, last = dotted.split(".")
    for part in path:
        if part.startswith("_") or not hasattr(obj, part):
            raise NoParameter(f"llama.cpp has no server parameter {dotted!r}")
        obj = getattr(obj, part)
    if last.startswith("_") or not hasattr(obj, last):
        raise NoParameter(f"llama.cpp has no server parameter {dotted!r}")
    setattr(obj, last, value)


def _params(xllamacpp: Any, cfg: dict[str, Any]) -> Any:
    p = xllamacpp.CommonParams()
    p.model.path = cfg["model"]
    p.hostnames = [cfg.get("host", "127.0.0.1")]
    p.port = int(cfg.get("port", 0))
    p.n_parallel = int(cfg["slots"])
    p.n_ctx = int(cfg["ctx_size"]) * int(cfg["slots"])
    p.cache_prompt = True
    if cfg.get("threads"):
        p.cpuparams.n_threads = int(cfg["threads"])
        p.cpuparams_batch.n_threads = int(cfg["threads"])
    if cfg.get("cache_ram_mib") is not None:
        p.cache_ram_mib = int(cfg["cache_ram_mib"])
    if cfg.get("slot_save_path"):
        # llama.cpp joins this and the file name as strings: it needs the separator.
        p.slot_save_path = os.path.join(cfg["slot_save_path"], "")
    p.warmup = bool(cfg.get("warmup", False))
    for key, value in (cfg.get("options") or {}).items():
        set_param(p, key, value)
    return p


def _watch(parent: int) -> None:
    """Exit when the parent dies: end of file on stdin, or a new parent PID."""

    def lifeline() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        os._exit(0)

    threading.Thread(target=lifeline, name="srt-lifeline", daemon=True).start()
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(POLL_S)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Saved slot states decode back to conversations: 0600 files, 0700 directories.
    os.umask(0o077)
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        del sys.path[0]  # this directory's modules must not shadow installed ones
    # Keep stdout for the handshake only: llama.cpp's own output goes to stderr.
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    line = sys.stdin.buffer.readline()
    parent = os.getppid()
    try:
        cfg = json.loads(line)
        if int(cfg.get("parent", parent)) != parent:
            return 0  # the parent died before we started
        xllamacpp = importlib.import_module("xllamacpp")
        server = xllamacpp.Server(_params(xllamacpp, cfg))
        url = str(server.listening_address)
    except BaseException as exc:
        # llama.cpp logs from a thread of its own: give it time to write why it failed
        # (the parent reads the log's end into the error) before os._exit ends it.
        time.sleep(LOG_GRACE_S)
        out.write(f"{ERROR} {json.dumps({'error': f'{type(exc).__name__}: {exc}'})}\n")
        out.flush()
        os._exit(2)
    out.write(f"{READY} {json.dumps({'url': url, 'pid': os.getpid()})}\n")
    out.flush()
    _watch(parent)
    return 0  # pragma: no cover - _watch only leaves through os._exit


if __name__ == "__main__":
    sys.exit(main())
