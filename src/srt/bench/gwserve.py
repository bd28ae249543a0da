"""The gateway bench's processes: ``srt serve`` as its own process (one worker or
several), found by its port, and the CPU time a process tree has used."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from .report import open_private

__all__ = ["KEY", "db_bytes", "gateway", "gateway_pid", "pid_of", "tree_cpu"]

KEY = "sk-bench-upstream-0123456789"
#: The pid of each running gateway (``srt serve``), by its base URL.
_PIDS: dict[str, int] = {}


def pid_of(url: str) -> int:
    """The pid of the ``srt serve`` process (uvicorn's supervisor with several workers)
    that ``gateway`` started for ``url``."""
    return _PIDS[url]


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and every live descendant
    (from /proc; Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parent[int(name)] = int(fields[1])
        cpu[int(name)] = (int(fields[11]) + int(fields[12])) / tick
    total = 0.0
    for p, c in cpu.items():
        q = p
        while q > 1 and q != pid:
            q = parent.get(q, 0)
        if q == pid:
            total += c
    return total


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def gateway(
    work: str, db: str, upstream: str, threads: int = 64, workers: int = 1
) -> Iterator[str]:
    port = _port()
    cfg = os.path.join(work, f"gw-{port}.toml")
    text = (
        f"[server]\nport = {port}\nopen = true\nthreads = {threads}\nworkers = {workers}\n"
        "requests_per_minute = 10000000\nmax_items = 100\n\n"
        f'[upstreams.chat]\nkind = "openai"\napi_key_env = "SRT_BENCH_KEY"\n'
        f'base_url = "{upstream}/v1"\n\n'
        f'[upstreams.claude]\nkind = "anthropic"\napi_key_env = "SRT_BENCH_KEY"\n'
        f'base_url = "{upstream}"\n\n'
        f'[upstreams.bedrock]\nkind = "bedrock"\napi_key_env = "SRT_BENCH_KEY"\n'
        f'base_url = "{upstream}"\nregion = "us-east-1"\n\n'
        '[[routes]]\nmodel = "claude-*"\nupstream = "claude"\n\n'
        '[[routes]]\nmodel = "bedrock/*"\nupstream = "bedrock"\n'
        'upstream_model = "anthropic.claude-3-7-sonnet"\n\n'
        '[[routes]]\nmodel = "*"\nupstream = "chat"\n'
    )
    with open_private(cfg) as f:  # 0600, whatever the umask
        f.write(text.encode("utf-8"))
    env = {**os.environ, "SRT_BENCH_KEY": KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "srt", "--db", db, "serve", "--config", cfg],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the gateway did not start") from None
                time.sleep(0.1)
        _PIDS[url + "/v1"] = proc.pid
        yield url + "/v1"
    finally:
        _PIDS.pop(url + "/v1", None)
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)


def gateway_pid(url: str) -> int:
    """The pid of the process listening on ``url``'s port (from /proc, Linux)."""
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    inode = None
    with open("/proc/net/tcp", encoding="ascii") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if int(cols[1].split(":")[1], 16) == port and cols[3] == "0A":
                inode = cols[9]
    if inode is None:
        return 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return int(pid)
        except OSError:
            continue
    return 0


def db_bytes(path: str) -> int:
    import apsw

    conn = apsw.Connection(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = conn.execute("PRAGMA page_count").get
        free = conn.execute("PRAGMA freelist_count").get
        size = conn.execute("PRAGMA page_size").get
        return int((pages - free) * size)
    finally:
        conn.close()
