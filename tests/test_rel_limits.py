"""The session limit (issue 13, item 11): ``Runtime(max_sessions=N)``.

A store holding N sessions refuses one more, by name, fork or import, with a typed
``SessionLimitError`` before anything is written; creators in several processes at
once never pass the limit together (the count is taken inside the write
transaction). How listing and opening scale to 10,000 sessions x 100 turns is
measured by ``bench/limits.py``, not here (no timed assertion in a unit test).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import srt
from rel_support.common import child_env, emit
from support import snapshot


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def test_the_limit_refuses_one_more_session_and_writes_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "srt.db")
    with srt.Runtime(path, max_sessions=3) as rt:
        a = rt.session("a")
        a.append(user("hi"))
        rt.session("b")
        a.fork("a-fork")
        before = snapshot(path)
        with pytest.raises(srt.SessionLimitError, match="maximum is 3"):
            rt.session("c")
        with pytest.raises(srt.SessionLimitError):
            a.fork("a-fork-2")
        assert snapshot(path) == before
        assert rt.session("b").messages() == []  # an existing session still opens
        rt.delete("b")
        rt.session("c").append(user("now there is room"))
        assert [i.name for i in rt.sessions()] == ["a", "a-fork", "c"]
    with srt.Runtime(path) as unlimited:  # the limit is the runtime's, not the file's
        unlimited.session("d")
        assert len(unlimited.sessions()) == 4


def test_a_limit_of_zero_creates_nothing(tmp_path: Path) -> None:
    with srt.Runtime(str(tmp_path / "srt.db"), max_sessions=0) as rt:
        with pytest.raises(srt.SessionLimitError):
            rt.session("a")
        assert rt.sessions() == []


@pytest.mark.parametrize("value", [-1, "10", 1.5, True])
def test_a_bad_limit_is_a_config_error(tmp_path: Path, value: Any) -> None:
    with pytest.raises(srt.ConfigError, match="max_sessions"):
        srt.Runtime(str(tmp_path / "srt.db"), max_sessions=value)


_CREATOR = """
import json, sys, threading, time, srt
path, proc, limit, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
out = {"created": [], "refused": 0, "other": []}
lock = threading.Lock()
with srt.Runtime(path, max_sessions=limit) as rt:
    def run(t):
        time.sleep(max(0.0, start - time.time()))
        for i in range(10):
            try:
                rt.session(f"p{proc}-t{t}-{i}")
            except srt.SessionLimitError:
                with lock:
                    out["refused"] += 1
            except Exception as exc:
                with lock:
                    out["other"].append(repr(exc))
            else:
                with lock:
                    out["created"].append(f"p{proc}-t{t}-{i}")
    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
print(json.dumps(out))
"""


def test_concurrent_creators_never_pass_the_limit(
    tmp_path: Path, capsys: Any, tmp_path_factory: Any
) -> None:
    path = str(tmp_path / "srt.db")
    limit = 25
    srt.Runtime(path).close()
    start = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CREATOR, path, str(p), str(limit), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        for p in range(4)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    created = [n for r in results for n in r["created"]]
    with srt.Runtime(path) as rt:
        stored = sorted(i.name for i in rt.sessions())
    figures = {
        "processes": 4,
        "threads_per_process": 4,
        "attempts": 160,
        "limit": limit,
        "created": len(created),
        "refused": sum(r["refused"] for r in results),
        "other_errors": [e for r in results for e in r["other"]],
        "stored_sessions": len(stored),
    }
    emit("limits_concurrent_creators", figures, capsys, tmp_path_factory.getbasetemp())
    assert figures["other_errors"] == []
    assert sorted(created) == stored and len(stored) == limit
    assert figures["refused"] == 160 - limit
