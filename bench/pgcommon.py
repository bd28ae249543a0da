"""Shared parts of the PostgreSQL benches (``pg_scale.py``, ``pg_faults.py``): a server,
turn payloads derived from their ids, and the check that every acknowledged turn is
stored exactly once in an intact chain."""

from __future__ import annotations

import hashlib
import os
import platform
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import benchio  # (bench/ is the scripts' folder)

import srt
from srt.bench import workloads
from srt.testing.pgserver import PgServer

__all__ = [
    "PgServer",
    "TurnCheck",
    "check_turns",
    "environment",
    "new_database",
    "pct",
    "spawn",
    "turn",
]

_TID = re.compile(r"^turn (\S+) ")


def turn(tid: str, size: int = 2048) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (user, assistant) messages of turn ``tid``: about ``size`` characters in all,
    derived from ``tid`` alone, so a checker can recompute and compare them."""
    rng = random.Random(hashlib.sha256(tid.encode()).digest())
    cut = rng.randint(size // 8, size // 3)
    return (
        {"role": "user", "content": f"turn {tid} " + workloads.text(rng, cut)},
        {"role": "assistant", "content": f"turn {tid} " + workloads.text(rng, size - cut)},
    )


def pct(xs: list[float], q: float) -> float:
    ys = sorted(xs)
    return ys[min(len(ys) - 1, int(q * len(ys)))] if ys else float("nan")


@dataclass
class TurnCheck:
    """What the store holds against what callers were told."""

    sessions: int = 0
    turns_stored: int = 0
    acked: int = 0
    lost: list[str] = field(default_factory=list)  # acknowledged, not stored
    duplicated: list[str] = field(default_factory=list)  # stored more than once
    damaged: list[str] = field(default_factory=list)  # stored turn whose bytes differ
    halves: list[str] = field(default_factory=list)  # a user message without its reply
    out_of_order: list[str] = field(default_factory=list)  # a thread's turns reordered
    verify_faults: int = 0

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.damaged
            or self.halves
            or self.out_of_order
            or self.verify_faults
        )

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "sessions": self.sessions,
            "turns_stored": self.turns_stored,
            "acked": self.acked,
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "damaged": len(self.damaged),
            "halves": len(self.halves),
            "out_of_order": len(self.out_of_order),
            "verify_faults": self.verify_faults,
            "examples": (self.lost + self.duplicated + self.damaged + self.halves)[:5],
        }


def check_turns(url: str, acked: Iterable[str], size: int = 2048) -> TurnCheck:
    """Read every session (each chain checked by the store's hash check), and compare
    its turns with ``acked``; then run ``verify`` on the whole store."""
    out = TurnCheck()
    seen: Counter[str] = Counter()
    with srt.Runtime(url) as rt:
        for info in rt.sessions():
            out.sessions += 1
            msgs = rt.session(info.name, create=False).messages()
            last: dict[str, int] = {}
            i = 0
            while i < len(msgs):
                m = msgs[i]
                content = m.get("content")
                found = _TID.match(content) if isinstance(content, str) else None
                if found is None:
                    i += 1
                    continue
                tid = found.group(1)
                user, reply = turn(tid, size)
                nxt = msgs[i + 1] if i + 1 < len(msgs) else None
                if m.get("role") != "user" or nxt is None or nxt.get("content") != reply["content"]:
                    out.halves.append(tid)
                    i += 1
                    continue
                if content != user["content"]:
                    out.damaged.append(tid)
                seen[tid] += 1
                out.turns_stored += 1
                writer, _, n = tid.rpartition(".")
                if int(n) < last.get(writer, -1):
                    out.out_of_order.append(tid)
                last[writer] = int(n)
                i += 2
        report = rt.store.verify()
        out.verify_faults = len(report.faults) + report.more_faults
    acked_set = set()
    for tid in acked:
        acked_set.add(tid)
        if seen[tid] == 0:
            out.lost.append(tid)
    out.acked = len(acked_set)
    out.duplicated = [t for t, n in seen.items() if n > 1]
    return out


def environment(url: str | None = None) -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "srt": srt.__version__,
        "cpus": os.cpu_count(),
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }
    for dist in ("psycopg", "psycopg-pool", "apsw"):
        try:
            env[dist] = version(dist)
        except PackageNotFoundError:
            env[dist] = "not installed"
    if url is not None:
        import psycopg

        with psycopg.connect(url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            env["postgresql"] = str(row[0]) if row else "?"
            for name in ("fsync", "synchronous_commit", "shared_buffers"):
                row = conn.execute(f"SHOW {name}").fetchone()
                env[name] = str(row[0]) if row else "?"
    return env


def spawn(*args: str) -> subprocess.Popen[str]:
    """This script's interpreter running ``args`` with the bench folder importable."""
    env = dict(os.environ)
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = os.pathsep.join([here, *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
        env=env,
    )


def new_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead, which is (re)created empty."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')  # a name of our own, not input
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def dump(path: str | None, data: dict[str, Any]) -> None:
    benchio.dump(path, data)  # 0600, whatever the umask
