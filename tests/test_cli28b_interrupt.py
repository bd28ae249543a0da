"""Ctrl-C while ``srt`` is still loading (``import srt``: the runtime, the store, the
Cython core) printed a ``KeyboardInterrupt`` traceback: the console script's wrapper
imported ``srt.cli`` outside any handler. Its entry point is now ``_srt_entry.main``,
outside the package, which catches the interrupt around the import and the call: nothing
printed, status 130, as the CLI ends an interrupted command.

Each test pauses the child inside one import (a ``sitecustomize`` on ``PYTHONPATH``
puts a finder first on ``sys.meta_path`` that, asked for module AT, writes a line to a
pipe and sleeps), waits for that line, then sends SIGINT: the interrupt lands at that
moment every time, with nothing timed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from support import cli_env

ROOT = Path(__file__).resolve().parent.parent

PAUSE = """\
import os, sys, time

class _Pause:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == os.environ["SRT_TEST_PAUSE_AT"]:
            fd = int(os.environ["SRT_TEST_PAUSE_FD"])
            os.write(fd, b"paused\\n")
            os.close(fd)
            time.sleep(900)  # (until the test's SIGINT; an orphan ends by itself)
        return None

sys.meta_path.insert(0, _Pause)
"""


def _console_script() -> list[str]:
    """The console script as pip writes its wrapper, from pyproject.toml's entry point
    (so the test needs no reinstall to see a change of it)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    m = re.search(r'^\[project\.scripts\]\nsrt = "([\w.]+):(\w+)"$', text, re.MULTILINE)
    assert m is not None, "pyproject.toml declares no srt console script"
    module, func = m.groups()
    return [sys.executable, "-c", f"import sys; from {module} import {func}; sys.exit({func}())"]


def _interrupted(tmp_path: Path, command: list[str], at: str) -> tuple[int, str, str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(PAUSE, encoding="utf-8")
    read, write = os.pipe()
    env = cli_env(
        tmp_path / "srt.db",
        SRT_TEST_PAUSE_AT=at,
        SRT_TEST_PAUSE_FD=str(write),
        PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
    )
    try:
        p = subprocess.Popen(
            command,
            env=env,
            pass_fds=(write,),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(write)
    with os.fdopen(read, "rb") as pipe:
        line = pipe.readline()  # (empty: the child ended without reaching AT)
    if line != b"paused\n":
        out, err = p.communicate(timeout=60)
        raise AssertionError(f"the child never imported {at}: {p.returncode} {out!r} {err!r}")
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    return p.returncode, out, err


# (the package's first import; one in the middle of srt/__init__; one in srt.cli's; one
# made by the command itself, after main started)
CONSOLE_MOMENTS = ["srt", "srt.runtime", "srt.cli._chat", "srt.store.sweeps"]


@pytest.mark.parametrize("at", CONSOLE_MOMENTS)
@pytest.mark.parametrize("command", ["gc", "vacuum"])
def test_ctrl_c_while_the_console_script_loads_is_quiet(
    tmp_path: Path, at: str, command: str
) -> None:
    if command == "vacuum" and at == "srt.store.sweeps":
        at = "srt.cli._maint"  # (vacuum imports no sweeps: its own command module)
    code, out, err = _interrupted(tmp_path, [*_console_script(), command], at)
    assert "Traceback" not in err, err
    assert (code, out, err) == (130, "", "")


# ``python -m srt`` imports the package before srt/__main__.py runs: from there on.
@pytest.mark.parametrize("at", ["srt.cli", "srt.cli._chat", "srt.store.sweeps"])
def test_ctrl_c_while_python_m_srt_loads_is_quiet(tmp_path: Path, at: str) -> None:
    code, out, err = _interrupted(tmp_path, [sys.executable, "-m", "srt", "gc"], at)
    assert "Traceback" not in err, err
    assert (code, out, err) == (130, "", "")


def test_the_entry_point_runs_the_command(tmp_path: Path) -> None:
    """The entry point passes the command's status and output through."""
    env = cli_env(tmp_path / "srt.db")
    r = subprocess.run(
        [*_console_script(), "append", "s", "--role", "user", "hello"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (r.returncode, r.stdout, r.stderr) == (0, "1\n", "")
    r = subprocess.run(
        [*_console_script(), "show", "nope"], env=env, capture_output=True, text=True, timeout=60
    )
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr.startswith("srt: error: "), r.stderr
