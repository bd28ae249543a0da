"""The ``send`` workload: the real ``Session.send`` loop, through the transport, against
``srt.testing``, at two history lengths (1,000 and 10,000 turns by default).

A turn is what an app does: append the user message, then ``Session.send`` (build the
request, send it through srt's transport, read the reply, persist it and its ledger
row). Each turn is timed from the append to the return of ``send``, and the server's
own time for that request (from the request line to its reply written, less the time
it spent reading the body, which is the client's sending) is taken off, so what is
left is the client's cost: its own work, and moving the request and the reply over
the socket.

The server (``srt.testing.ProviderServer``) runs in a child process, so its work (it
parses every body and counts its tokens) never competes with the client for the GIL.
The same child runs the floor's receiver.

Baselines, in the same run, on the same bytes:

* **floor**: ``sendall`` of exactly the body srt sent (after its length, as a request
  has a head), from a ready buffer, over the same kind of loopback TCP socket to a
  receiver that reads it as the server does (a buffered ``read(n)``) and answers one
  byte once it holds all of it. A client must send the whole body to a stateless
  provider every turn, so no turn can cost less. Both the ``sendall`` alone and
  ``sendall`` until the receiver holds every byte are reported; the server's time does
  not include reading the body, so the second is the floor the turn is compared with.
* **stateless**: a client that keeps the conversation as a list of dicts and
  ``json.dumps`` it every turn, sending through the same transport (srt's, with the
  same provider's request) and parsing the reply with ``json.loads``; its body is byte
  for byte srt's (checked by the server's digests).

The same turn as one call, ``Session.send(..., append=[user message])`` (the user's
message committed with the reply, one transaction a turn), is timed at the first history
length in a run of its own with the same baselines (``one_call``), and so is the asyncio
turn, ``append`` then ``await Session.asend(...)`` on one event loop, through the
provider's ``AsyncTransport`` (``asend``; its socket writes are not counted), and so is the
one call on a new handle each turn, ``Runtime.session(name).send(..., append=[...])``, the
last handle dropped (``per_request``: a web app that opens the session per request;
the new handle takes over what the last one left). It is not a fourth
client of the same turns: a client that runs soon after srt's own code finds that code
in the CPU's caches, and would be timed faster for its place alone.

Also measured per turn: the Python allocations (``tracemalloc``: the high-water mark
of a turn over what was traced when it began, and what it kept), in a few extra turns
with tracing on, and their log-log slope against N; and the socket writes the body
reached the socket in (``netcount``).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from .. import _core
from ..providers import OpenAI
from ..providers.transport import Timeouts, Transport
from ..runtime import Runtime
from ..testing.server import ProviderServer
from . import workloads
from .netcount import CountingTransport

MODEL = "gpt-4o-mini"
KEY = "srt-bench-key"

Progress = Callable[[int, int], None] | None

#: The clients of each turn, in the order they send: srt (append + ``Session.send``), the
#: stateless client (``json.dumps`` of its list), and one that holds the finished body
#: and only sends it (the transport's own cost, which every client pays).
_NAMES = ("srt", "stateless", "ready")
_CLIENTS = len(_NAMES)


# -- the child process: srt.testing with its own clock, and the floor's receiver ----------


class TimedServer(ProviderServer):
    """``ProviderServer`` that measures its own time for each request: from reading the
    request line to having written its whole reply, less the time spent reading the
    body (waiting for the client's bytes: that is the client's sending, which the floor
    measures). It keeps a digest of each body and drops its log (the bodies are large).

    The reply goes out in two writes (head, then body): a server descheduled between
    them on a loaded machine would otherwise put its own delay in the client's time."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.times: list[int] = []
        self.reads: list[int] = []
        self.digests: list[str] = []

    def dispatch(self, h: Any, method: str) -> None:
        read = h.read_body
        mark = [0, 0]  # body read from, to

        def read_body() -> bytes:
            mark[0] = time.perf_counter_ns()
            raw: bytes = read()
            mark[1] = time.perf_counter_ns()
            self.digests.append(_core.digest(raw).hex())
            return raw

        # The handler serves every request of its connection: wrap its method for this
        # request only.
        h.read_body = read_body
        try:
            super().dispatch(h, method)
            h.wfile.flush()
        finally:
            del h.read_body
        end = time.perf_counter_ns()  # the whole reply is written
        start = getattr(h, "srt_bench_started", mark[0])
        self.reads.append(mark[1] - mark[0])
        self.times.append(end - start - (mark[1] - mark[0]))
        with self._lock:
            self.log.clear()

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until every request whose body was read has its time recorded (the
        client may ask as soon as it has the last reply)."""
        deadline = time.monotonic() + timeout
        while len(self.times) < len(self.digests) and time.monotonic() < deadline:
            time.sleep(0.001)


def _floor_receiver(listener: socket.socket) -> None:
    """Accept connections; for each frame (8-byte length, then the body) read the body
    as ``http.server`` reads a request body, then answer one byte."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def serve(conn: socket.socket = conn) -> None:
            rfile = conn.makefile("rb")
            with conn, rfile:
                while True:
                    head = rfile.read(8)
                    if len(head) < 8:
                        return
                    n = int.from_bytes(head, "big")
                    if len(rfile.read(n)) < n:
                        return
                    conn.sendall(b"k")

        threading.Thread(target=serve, daemon=True).start()


def serve_main() -> None:
    """The child: print the server's URL and the floor's port, then obey JSON commands on
    stdin (``script``: replies to queue; ``take``: the times and digests so far)."""
    from ..testing import _http

    _http.Handler.disable_nagle_algorithm = True
    parse_request = _http.Handler.parse_request

    def started(h: Any) -> bool:
        h.srt_bench_started = time.perf_counter_ns()  # the request line has arrived
        ok: bool = parse_request(h)
        return ok

    _http.Handler.parse_request = started  # type: ignore[method-assign,assignment]
    srv = TimedServer(api_key=KEY)
    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=_floor_receiver, args=(listener,), daemon=True).start()
    print(json.dumps({"url": srv.url, "floor": listener.getsockname()[1]}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if "script" in cmd:
            srv.script("openai.chat", cmd["script"])
            print(json.dumps({"ok": True}), flush=True)
        elif "take" in cmd:
            srv.settle()
            out = {"times": srv.times, "reads": srv.reads, "digests": srv.digests}
            srv.times, srv.reads, srv.digests = [], [], []
            print(json.dumps(out), flush=True)
        else:
            break
    srv.close()
    listener.close()


class _Child:
    def __init__(self) -> None:
        code = "from srt.bench.send import serve_main; serve_main()"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        hello = self._read()
        self.url: str = hello["url"]
        self.floor_port: int = hello["floor"]

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the bench's server process ended early")
        out: dict[str, Any] = json.loads(line)
        return out

    def ask(self, cmd: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()


# -- the clients -------------------------------------------------------------------------


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class _Floor:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, body: bytes) -> tuple[int, int]:
        """(ns for ``sendall``, ns until the receiver holds every byte). The length
        goes first, in the timed part, as a request's head does."""
        pc = time.perf_counter_ns
        t0 = pc()
        self.sock.sendall(len(body).to_bytes(8, "big"))
        self.sock.sendall(body)
        t1 = pc()
        if self.sock.recv(1) != b"k":
            raise RuntimeError("the floor's receiver went away")
        return t1 - t0, pc() - t0

    def close(self) -> None:
        self.sock.close()


def _pct(xs: list[float], q: float) -> float:
    ys = sorted(xs)
    return ys[min(len(ys) - 1, int(q * len(ys)))]


def _slope(a: float, b: float, n_a: int, n_b: int) -> float:
    if a <= 0 or b <= 0:
        return float("nan")
    return math.log(b / a) / math.log(n_b / n_a)


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def run_size(
    workdir: str,
    child: _Child,
    turns: int,
    *,
    tail: int,
    traced: int,
    seed: int,
    progress: Progress = None,
    system_chars: int = 4096,
    user: tuple[int, int] = (200, 800),
    assistant: tuple[int, int] = (500, 3000),
    one_call: bool = False,
    asend: bool = False,
    per_request: bool = False,
) -> dict[str, Any]:
    """One history length: ``turns`` turns in all, the last ``tail`` timed and ``traced``
    more with tracemalloc on (these continue the same conversation). ``one_call``: srt's
    turn is ``send(append=[user message])`` instead of ``append``, then ``send``;
    ``asend``: ``append``, then ``asend`` on an event loop of this run's;
    ``per_request``: ``one_call`` on a new handle each turn (``Runtime.session``), the
    last one dropped, as a web app that opens the session per request does."""
    system, pairs = workloads.chat(
        turns + traced, seed=seed, system_chars=system_chars, user=user, assistant=assistant
    )
    warm = 2
    prefill = turns - tail - warm
    if prefill < 0:
        raise ValueError("turns must be at least tail + 2")
    kind = "-one" if one_call else "-async" if asend else "-req" if per_request else ""
    rt = Runtime(os.path.join(workdir, f"send-{turns}{kind}.db"))
    s = rt.session("send")
    history: list[dict[str, Any]] = [system]
    s.append(system)
    batch: list[dict[str, Any]] = []
    it = iter(pairs)
    for i in range(prefill):
        q, a = next(it)
        batch += (q, a)
        history += (q, a)
        if len(batch) >= 1000 or i == prefill - 1:
            s.append(*batch)
            batch = []
        if progress is not None and i % 500 == 0:
            progress(i, turns + traced)
    rest = list(it)
    child.ask({"script": [a["content"] for _, a in rest for _ in range(_CLIENTS)]})

    counting = CountingTransport()
    transport = Transport(pool=counting, timeouts=Timeouts(connect=600.0, idle=600.0))
    provider = OpenAI(api_key=KEY, base_url=f"{child.url}/v1", transport=transport)
    floor = _Floor(child.floor_port)
    key = s.cache_key
    if per_request:
        del s  # (each turn opens its own handle)
    loop = asyncio.new_event_loop() if asend else None
    pc = time.perf_counter_ns
    wall: dict[str, list[int]] = {c: [] for c in _NAMES}
    floor_send: list[int] = []
    floor_held: list[int] = []
    writes: dict[str, list[int]] = {"srt": [], "stateless": []}
    body_bytes = 0
    alloc_peak: list[int] = []
    alloc_kept: list[int] = []

    def stateless(q: dict[str, Any]) -> bytes:
        history.append(q)
        body = _dumps({"model": MODEL, "messages": history, "prompt_cache_key": key})
        raw = provider.transport.open(provider.request(MODEL, body, False)).read()
        msg = json.loads(raw)["choices"][0]["message"]
        history.append({"role": msg["role"], "content": msg["content"]})
        return body

    load_before = _load()
    for k, (q, _a) in enumerate(rest):
        timed = warm <= k < warm + tail
        trace = k >= warm + tail
        w0 = counting.writes.calls
        if trace:
            tracemalloc.start()
            tracemalloc.reset_peak()
            cur0 = tracemalloc.get_traced_memory()[0]
        t0 = pc()
        if per_request:
            rt.session("send").send(provider, model=MODEL, append=[q])
        elif one_call:
            s.send(provider, model=MODEL, append=[q])
        elif loop is not None:
            s.append(q)
            loop.run_until_complete(s.asend(provider, model=MODEL))
        else:
            s.append(q)
            s.send(provider, model=MODEL)
        t1 = pc()
        if trace:
            cur1, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            alloc_peak.append(peak - cur0)
            alloc_kept.append(cur1 - cur0)
        w1 = counting.writes.calls
        t2 = pc()
        body = stateless(q)
        t3 = pc()
        w2 = counting.writes.calls
        body_bytes = len(body)
        t4 = pc()
        provider.transport.open(provider.request(MODEL, body, False)).read()
        t5 = pc()
        if timed:
            sent, held = floor.send(body)
            floor_send.append(sent)
            floor_held.append(held)
            wall["srt"].append(t1 - t0)
            wall["stateless"].append(t3 - t2)
            wall["ready"].append(t5 - t4)
            writes["srt"].append(w1 - w0)
            writes["stateless"].append(w2 - w1)
        del body
        if progress is not None:
            progress(prefill + k + 1, turns + traced)
    load_after = _load()
    taken = child.ask({"take": True})
    server = taken["times"]
    digests = taken["digests"]
    if len(server) != _CLIENTS * len(rest):
        raise RuntimeError(
            f"the server saw {len(server)} requests, expected {_CLIENTS * len(rest)}"
        )
    same = all(len(set(digests[_CLIENTS * k : _CLIENTS * (k + 1)])) == 1 for k in range(len(rest)))
    if not same:
        raise AssertionError("srt's body differs from the stateless client's")
    srv = {
        c: [server[_CLIENTS * k + i] for k in range(warm, warm + tail)]
        for i, c in enumerate(_NAMES)
    }
    client_us = {c: [(wall[c][j] - srv[c][j]) / 1000.0 for j in range(tail)] for c in _NAMES}
    floor_us = [x / 1000.0 for x in floor_held]
    ratios = [client_us["srt"][j] / floor_us[j] for j in range(tail)]
    floor.close()
    transport.close()
    if loop is not None:
        loop.run_until_complete(provider.aclose())
        loop.close()
    rt.close()

    def stats(xs: list[float]) -> dict[str, float]:
        return {"p50": _pct(xs, 0.5), "p99": _pct(xs, 0.99)}

    return {
        "turns": turns,
        "one_call": one_call,
        "asend": asend,
        "per_request": per_request,
        "tail": tail,
        "traced": traced,
        "body_bytes": body_bytes,
        "load": {"before": load_before, "after": load_after},
        "client_us": {c: stats(v) for c, v in client_us.items()},
        "wall_us": {c: stats([x / 1000.0 for x in v]) for c, v in wall.items()},
        "server_us": {c: stats([x / 1000.0 for x in v]) for c, v in srv.items()},
        "floor_us": stats(floor_us),
        "floor_sendall_us": stats([x / 1000.0 for x in floor_send]),
        "floor_ratio": {
            "p50_over_p50": _pct(client_us["srt"], 0.5) / _pct(floor_us, 0.5),
            "median_per_turn": statistics.median(ratios),
            "p99_over_p99": _pct(client_us["srt"], 0.99) / _pct(floor_us, 0.99),
        },
        "vs_stateless": _pct(client_us["stateless"], 0.5) / _pct(client_us["srt"], 0.5),
        # A client that already holds the finished body and only sends it through the
        # same transport: what any client pays each turn. Stateless over it is the most
        # any client could be ahead of the stateless one; srt over it is srt's own work.
        "stateless_over_ready": _pct(client_us["stateless"], 0.5) / _pct(client_us["ready"], 0.5),
        "srt_over_ready": _pct(client_us["srt"], 0.5) / _pct(client_us["ready"], 0.5),
        "ready_over_floor": _pct(client_us["ready"], 0.5) / _pct(floor_us, 0.5),
        "writes_per_turn": {c: stats([float(x) for x in v]) for c, v in writes.items()},
        "alloc_per_turn": {
            "peak": statistics.median(alloc_peak) if alloc_peak else float("nan"),
            "kept": statistics.median(alloc_kept) if alloc_kept else float("nan"),
            "peaks": alloc_peak,
        },
        "series_us": {
            "srt": client_us["srt"],
            "stateless": client_us["stateless"],
            "ready": client_us["ready"],
            "floor": floor_us,
        },
        "bodies_identical": same,
    }


def run_send(
    workdir: str,
    sizes: tuple[int, ...] = (1000, 10_000),
    *,
    tail: int = 20,
    traced: int = 5,
    seed: int = 1,
    progress: Progress = None,
    system_chars: int = 4096,
    user: tuple[int, int] = (200, 800),
    assistant: tuple[int, int] = (500, 3000),
) -> dict[str, Any]:
    child = _Child()
    try:
        per: dict[str, Any] = {}
        for n in sizes:
            per[str(n)] = run_size(
                workdir,
                child,
                n,
                tail=tail,
                traced=traced,
                seed=seed,
                progress=progress,
                system_chars=system_chars,
                user=user,
                assistant=assistant,
            )
        # The same turn as one call, as an asyncio turn, and as one call on a handle of
        # its own: each a run of its own at the first length, against the same floor and
        # stateless client.
        one, aio, req = (
            run_size(
                workdir,
                child,
                sizes[0],
                tail=tail,
                traced=0,
                seed=seed,
                system_chars=system_chars,
                user=user,
                assistant=assistant,
                one_call=kind == "one_call",
                asend=kind == "asend",
                per_request=kind == "per_request",
            )
            for kind in ("one_call", "asend", "per_request")
        )
    finally:
        child.close()
    out: dict[str, Any] = {
        "sizes": list(sizes),
        "by_turns": per,
        "one_call": one,
        "asend": aio,
        "per_request": req,
    }
    for n in sizes:
        out[f"floor_ratio_{n}"] = per[str(n)]["floor_ratio"]["p50_over_p50"]
        out[f"vs_stateless_{n}"] = per[str(n)]["vs_stateless"]
    if len(sizes) >= 2:
        a, b = per[str(sizes[0])], per[str(sizes[-1])]
        out["alloc_slope"] = _slope(
            a["alloc_per_turn"]["peak"], b["alloc_per_turn"]["peak"], sizes[0], sizes[-1]
        )
        out["client_slope"] = _slope(
            a["client_us"]["srt"]["p50"], b["client_us"]["srt"]["p50"], sizes[0], sizes[-1]
        )
    return out
