"""Start-up: the wall time of fresh interpreters that import srt, and where it goes.

    python bench/import_time.py                           # this tree only
    python bench/import_time.py --old-ref main --reps 31  # main's src against this tree
    python bench/import_time.py --old /tmp/old/src --json out.json

Four commands, each a new interpreter (``sys.executable``, bytecode cached by a warm-up
run), ``PYTHONPATH`` set to the side's ``src``:

- ``import``: ``python -c "import srt"``
- ``help``: ``python -m srt --help``
- ``ls``: ``srt --db DB ls`` (the console script's own code: ``from srt.cli import main``)
  on a small database (3 sessions of 4 messages, made by that side)
- ``request``: ``import srt; srt.Runtime(DB).session("x").request("openai.chat", model="m")``

With an old side (``--old SRC``, a ``src`` folder holding a built ``_core``, or
``--old-ref REF``, which extracts REF's ``src`` with ``git archive`` and copies this tree's
built ``_core`` into it when REF's core sources are this tree's), the sides run
alternately, command by command, ``--reps`` rounds (the machine may be shared and
loaded; only alternation and medians compare the two). It prints each command's median
and quartiles per side, the ratio, and then, from ``--profile-reps`` runs of each command
under ``-X importtime`` (alternating too), the modules with the largest median self time
(``--top``) on each side.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import benchio
from benchio import dump, parser

HERE = Path(__file__).resolve().parents[1]
CORE_SOURCES = ("src/srt/_core.pyx", "src/srt/_core_*.pxi", "src/srt/*.h")
SESSIONS = ("x", "y", "z")

MAKE_DB = """
import sys, srt
with srt.Runtime(sys.argv[1]) as rt:
    for name in sys.argv[2:]:
        s = rt.session(name, create=True)
        s.append(
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hello " + name},
            {"role": "assistant", "content": "hi"},
            {"role": "user", "content": "how are you?"},
        )
"""

REQUEST = "import sys, srt; srt.Runtime(sys.argv[1]).session('x').request('openai.chat', model='m')"
CLI = "import sys; from srt.cli import main; sys.exit(main())"


def commands(db: str) -> dict[str, list[str]]:
    """The command lines timed, by name (the interpreter added in front)."""
    return {
        "import": ["-c", "import srt"],
        "help": ["-m", "srt", "--help"],
        "ls": ["-c", CLI, "--db", db, "ls"],
        "request": ["-c", REQUEST, db],
    }


def env_for(src: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = src
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def run(src: str, argv: list[str], importtime: bool = False) -> tuple[float, str]:
    """One fresh interpreter: its wall time (s) and its stderr."""
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), *argv]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env_for(src), capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({src}):\n{done.stderr[-2000:]}")
    return wall, done.stderr


def which_srt(src: str) -> str:
    """Where ``import srt`` finds the package on this side (a check that PYTHONPATH won)."""
    _, _ = run(src, ["-c", "import srt"])
    done = subprocess.run(
        [sys.executable, "-c", "import srt, srt._core; print(srt.__file__)"],
        env=env_for(src),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def extract(ref: str, into: Path) -> str:
    """REF's ``src`` under ``into``, with this tree's built ``_core`` (REF's core sources
    must be this tree's: otherwise build REF's and pass ``--old``)."""
    same = subprocess.run(
        ["git", "-C", str(HERE), "diff", "--quiet", ref, "--", *CORE_SOURCES], check=False
    )
    if same.returncode != 0:
        raise SystemExit(f"{ref}'s _core sources differ from this tree's: build it, use --old")
    archive = into / "src.tar"
    with benchio.open_private(str(archive)) as f:
        subprocess.run(["git", "-C", str(HERE), "archive", ref, "src"], stdout=f, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    archive.unlink()
    built = sorted((HERE / "src" / "srt").glob("_core.*.so")) + sorted(
        (HERE / "src" / "srt").glob("_core.*.pyd")
    )
    if not built:
        raise SystemExit("this tree's _core is not built: python setup.py build_ext --inplace")
    for path in built:
        shutil.copy2(path, into / "src" / "srt" / path.name)
    return str(into / "src")


_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")


def self_times(stderr: str) -> dict[str, int]:
    """Each module's self time (µs) from ``-X importtime`` output."""
    out: dict[str, int] = {}
    for line in stderr.splitlines():
        m = _LINE.match(line)
        if m:
            out[m.group(4)] = int(m.group(1))
    return out


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    if len(xs) < 2:
        return xs[0], xs[0], xs[0]
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q1, q2, q3


def main() -> int:
    ap = parser(__doc__)
    old = ap.add_mutually_exclusive_group()
    old.add_argument("--old", metavar="SRC", help="an old tree's src folder (built _core)")
    old.add_argument("--old-ref", metavar="REF", help="a git ref of this repository")
    ap.add_argument("--reps", type=int, default=21, help="timed rounds (default: 21)")
    ap.add_argument("--profile-reps", type=int, default=5, help="-X importtime runs (5)")
    ap.add_argument("--top", type=int, default=15, help="modules listed per side (15)")
    ap.add_argument("--only", action="append", help="time only this command (repeatable)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="srt-import-time-") as tmp:
        sides = {"new": str(HERE / "src")}
        if args.old_ref:
            sides = {"old": extract(args.old_ref, Path(tmp)), **sides}
        elif args.old:
            sides = {"old": args.old, **sides}
        dbs: dict[str, dict[str, list[str]]] = {}
        for side, src in sides.items():
            print(f"{side}: {which_srt(src)}")
            db = os.path.join(tmp, f"{side}.db")
            run(src, ["-c", MAKE_DB, db, *SESSIONS])
            dbs[side] = commands(db)
        names = [n for n in dbs["new"] if not args.only or n in args.only]
        for side, src in sides.items():  # warm the bytecode caches
            for name in names:
                run(src, dbs[side][name])

        walls: dict[str, dict[str, list[float]]] = {s: {n: [] for n in names} for s in sides}
        for _ in range(args.reps):
            for name in names:
                for side, src in sides.items():
                    walls[side][name].append(run(src, dbs[side][name])[0])
        profiles: dict[str, dict[str, dict[str, list[int]]]] = {s: {} for s in sides}
        for _ in range(args.profile_reps):
            for name in names:
                for side, src in sides.items():
                    _, err = run(src, dbs[side][name], importtime=True)
                    per = profiles[side].setdefault(name, {})
                    for module, us in self_times(err).items():
                        per.setdefault(module, []).append(us)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n{args.reps} alternating rounds, {len(sides)} side(s), load {load:.1f}")
    print("median wall time, ms (quartiles)")
    result: dict[str, Any] = {"reps": args.reps, "load": load, "commands": {}, "top": {}}
    for name in names:
        row = {}
        cells = []
        for side in sides:
            q1, q2, q3 = quartiles(walls[side][name])
            row[side] = {"median_ms": q2 * 1e3, "q1_ms": q1 * 1e3, "q3_ms": q3 * 1e3}
            cells.append(f"{side} {q2 * 1e3:7.1f} ({q1 * 1e3:.0f}–{q3 * 1e3:.0f})")
        if "old" in sides:
            ratio = row["new"]["median_ms"] / row["old"]["median_ms"]
            row["new_over_old"] = ratio
            cells.append(f"new/old {ratio:.2f}")
        result["commands"][name] = row
        print(f"  {name:8} " + "   ".join(cells))

    for side in sides:
        for name in names:
            medians = {m: statistics.median(v) for m, v in profiles[side][name].items()}
            total = sum(medians.values())
            top = sorted(medians.items(), key=lambda kv: -kv[1])[: args.top]
            result["top"].setdefault(side, {})[name] = {"total_us": total, "modules": top}
            print(f"\n{side}, {name}: -X importtime, sum of self times {total / 1e3:.1f} ms")
            for module, us in top:
                print(f"  {us / 1e3:6.1f} ms  {module}")
    dump(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
