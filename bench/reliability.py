"""Run srt's reliability suite and collect the figures every test prints.

    python bench/reliability.py                 # the CI form
    python bench/reliability.py --soak          # SRT_SOAK=1: the long forms
    python bench/reliability.py -k crash        # a subset (passed to pytest -k)

Runs ``pytest tests/test_rel_*.py`` with ``SRT_REL_FIGURES`` pointing at a fresh
directory, then merges the per-test JSON files into one document (``--out``,
default ``bench/results/reliability-{ci,soak}.json``) with the environment and the
wall time, and prints one line per test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def environment() -> dict[str, str]:
    import apsw

    import srt

    return {
        "python": platform.python_version(),
        "srt": srt.__version__,
        "apsw": apsw.apsw_version(),
        "sqlite": apsw.sqlite_lib_version(),
        "machine": platform.machine(),
        "cpus": str(os.cpu_count()),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--soak", action="store_true", help="run the long forms (SRT_SOAK=1)")
    ap.add_argument("-k", default=None, help="pytest -k expression")
    ap.add_argument("--out", default=None, help="where to write the merged JSON")
    args = ap.parse_args(argv)

    figures_dir = Path(tempfile.mkdtemp(prefix="srt-rel-figures-"))
    basetemp = Path(tempfile.mkdtemp(prefix="srt-rel-tmp-"))
    env = dict(os.environ, SRT_REL_FIGURES=str(figures_dir))
    if args.soak:
        env["SRT_SOAK"] = "1"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=0"]
    cmd += [f"--basetemp={basetemp}"]
    cmd += sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_rel_*.py"))
    if args.k:
        cmd += ["-k", args.k]
    print(" ".join(cmd), flush=True)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, check=False)
    wall = time.monotonic() - t0

    results = {p.stem: json.loads(p.read_text()) for p in sorted(figures_dir.glob("*.json"))}
    doc = {
        "form": "soak" if args.soak else "ci",
        "pytest_exit_code": proc.returncode,
        "wall_seconds": round(wall, 1),
        "environment": environment(),
        "results": results,
    }
    out = (
        Path(args.out)
        if args.out
        else ROOT / "bench" / "results" / f"reliability-{doc['form']}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"\n{doc['form']} form: {wall:.1f} s, pytest exit {proc.returncode}; figures in {out}")
    for name, fig in results.items():
        shown = {k: v for k, v in fig.items() if k not in ("test", "soak", "problems", "failures")}
        print(f"  {name}: {json.dumps(shown, sort_keys=True)[:300]}")
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
