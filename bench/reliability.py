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
from typing import Any

import benchio  # (bench/ is the script's folder)

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


def _fig(results: dict[str, Any], name: str, *keys: str) -> Any:
    value: Any = results.get(name, {})
    for k in keys:
        value = value.get(k, {}) if isinstance(value, dict) else {}
    return value if value != {} else "-"


def markdown(doc: dict[str, Any]) -> str:
    """The headline figures of one merged result document as a Markdown table."""
    r = doc["results"]
    rows = []
    for name in (
        "crash_checkpoints",
        "crash_random_kills",
        "crash_io_points",
        "crash_migration",
        "crash_gc",
    ):
        if name in r:
            f = r[name]
            rows.append(
                (
                    name,
                    f"{f['kills']} kills, {f['acknowledged_turns']} acknowledged turns: "
                    f"{f['acknowledged_turns_lost']} lost, {f['half_written_turns']} half-written, "
                    f"integrity ok {f['integrity_ok']}x / not ok {f['integrity_not_ok']}x, "
                    f"chain problems {f['chain_problems']}, mode problems "
                    f"{f['file_mode_problems']}",
                )
            )
    if "crash_mid_stream" in r:
        f = r["crash_mid_stream"]
        rows.append(
            (
                "crash_mid_stream",
                f"{f['kills']} kills ({f['kill_landed']}): {f['acknowledged_turns_lost']} lost, "
                f"{f['half_written_turns']} half-written, integrity not ok "
                f"{f['integrity_not_ok']}x",
            )
        )
    if "concurrency_load" in r:
        f = r["concurrency_load"]
        rows.append(
            (
                "concurrency_load",
                f"{f['commits']} commits in {f['seconds']:.0f} s = {f['commits_per_s']}/s; "
                f"append p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms (shared p99 "
                f"{f['shared_p99_ms']}, own p99 {f['own_p99_ms']}); errors to callers "
                f"{f['errors_reaching_caller']}, lost {f['lost_turns']}, half-written "
                f"{f['half_written_turns']}, order violations {f['order_violations']}, "
                f"integrity {f['integrity']}",
            )
        )
    for name, f in r.items():
        if name.startswith("properties_") and "examples" in f:
            rows.append((name, f"{f['examples']} examples, 0 failures, {f['seconds']} s"))
    for name in (
        "fuzz_core_hypothesis",
        "secrets_canary",
        "recovery_full_disk_cycle",
        "durability_power_cuts",
        "concurrency_rebase_deadline",
        "input_random_shapes",
        "backup_while_writing",
        "encryption_at_rest",
        "encryption_wrong_keys",
        "encryption_backup",
        "slots_private_and_collected",
        "limits_concurrent_creators",
    ):
        if name in r:
            shown = {k: v for k, v in r[name].items() if k not in ("test", "soak", "errors")}
            rows.append((name, json.dumps(shown, sort_keys=True)))
    lines = ["| test | figures |", "|---|---|"]
    lines += [f"| `{n}` | {text} |" for n, text in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--soak", action="store_true", help="run the long forms (SRT_SOAK=1)")
    ap.add_argument("-k", default=None, help="pytest -k expression")
    ap.add_argument("--out", default=None, help="where to write the merged JSON")
    ap.add_argument(
        "--markdown", metavar="JSON", default=None, help="print a saved result as Markdown"
    )
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0

    figures_dir = Path(tempfile.mkdtemp(prefix="srt-rel-figures-"))
    basetemp = Path(tempfile.mkdtemp(prefix="srt-rel-tmp-"))
    env = dict(os.environ, SRT_REL_FIGURES=str(figures_dir))
    if args.soak:
        env["SRT_SOAK"] = "1"
    # one worker (-n 0): the figures are timed with no other test beside them
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-n",
        "0",
        "-p",
        "no:cacheprovider",
        "--durations=0",
    ]
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
    out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    benchio.write_text(str(out), json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"\n{doc['form']} form: {wall:.1f} s, pytest exit {proc.returncode}; figures in {out}")
    for name, fig in results.items():
        shown = {k: v for k, v in fig.items() if k not in ("test", "soak", "problems", "failures")}
        print(f"  {name}: {json.dumps(shown, sort_keys=True)[:300]}")
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
