"""The suite's own run on several workers (tests/conftest.py's hooks): a test marked
``exclusive`` overlaps no other test, and figure lines reach the end of the run's output
from whichever worker ran them. Checked on a small suite of its own, run by pytest in a
child process on two workers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rel_support.common import child_env

_SUITE = """
import os, time
import pytest
from rel_support.common import figures_line

def _span(name):
    start = time.monotonic()
    time.sleep(0.3)
    with open(os.environ["SPANS"], "a") as f:  # one write of one line
        f.write(f"{name} {start} {time.monotonic()}\\n")

@pytest.mark.exclusive
def test_x1(capsys):
    _span("x1")
    figures_line(capsys, "x1: {}")

@pytest.mark.exclusive
def test_x2():
    _span("x2")

@pytest.mark.parametrize("i", range(8))
def test_n(i):
    _span(f"n{i}")
"""

_INI = """[pytest]
markers =
    exclusive: runs alone
"""


def test_exclusive_tests_run_alone_and_figures_reach_the_summary(tmp_path: Path) -> None:
    (tmp_path / "test_small.py").write_text(_SUITE)
    (tmp_path / "pytest.ini").write_text(_INI)
    spans_file = tmp_path / "spans"
    env = {**child_env(), "SPANS": str(spans_file)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-n", "2", "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "10 passed" in proc.stdout, proc.stdout
    assert "srt figures" in proc.stdout and "[srt-figures] x1: {}" in proc.stdout, proc.stdout
    spans = {}
    for line in spans_file.read_text().splitlines():
        name, start, end = line.split()
        spans[name] = (float(start), float(end))
    assert len(spans) == 10

    def overlap(a: str, b: str) -> bool:
        return spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]

    for x in ("x1", "x2"):
        assert not [n for n in spans if n != x and overlap(x, n)], spans
    # and the other tests did run side by side: there were two workers
    normal = [n for n in spans if n.startswith("n")]
    assert any(overlap(a, b) for a in normal for b in normal if a < b), spans
