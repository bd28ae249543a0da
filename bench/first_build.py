"""The first build of a loaded session in each wire format, at 1,000 turns (the ``chat``
workload, seed 1): what a session loaded cold (a new process, a gateway after a restart,
a handle the memory budget evicted) pays on its first request in a format.

    python bench/first_build.py                # 5 rounds, medians per format
    python bench/first_build.py --rounds 7 --json out.json

Each sample is a new ``Runtime`` on the same file: the session is loaded (its message
bytes read) before the clock starts, then one ``request`` in one format is timed, with
the default options (cache marks where the format has them). The formats are taken in
turn within each round, so the ratios to ``openai.chat`` (whose fragments are the
canonical bodies themselves) come from the same stretch of machine load. Each format
with ``text_frags`` is also timed as ``render:<name>``: the same format with them turned
off, so every message goes through ``render`` (the path before them), in the same rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import benchio  # (bench/ is the script's folder)

import srt
from srt.bench import workloads
from srt.wire import FORMATS as REGISTRY
from srt.wire.base import WireFormat

FORMATS = (
    "openai.chat",
    "openai.responses",
    "azure.responses",
    "anthropic.messages",
    "bedrock.converse",
)
MODELS = {"anthropic": "claude-sonnet-4-5", "bedrock": "anthropic.claude-sonnet-4-5"}


def _model(name: str) -> str:
    return MODELS.get(name.split(":")[-1].split(".")[0], "gpt-4.1-mini")


class _Rendering:
    def text_frags(self) -> None:
        return None


def _render_twin(name: str) -> WireFormat:
    """``name``'s format with ``text_frags`` off, registered as ``render:<name>``."""
    fmt = REGISTRY[name]
    twin: WireFormat = type("Render", (_Rendering, type(fmt)), {"name": "render:" + name})()
    REGISTRY[twin.name] = twin
    return twin


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--turns", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    names = list(FORMATS)
    for name in FORMATS:
        # (a tree from before text_frags has no such method: nothing to turn off)
        if getattr(REGISTRY[name], "text_frags", lambda: None)() is not None:
            names.append(_render_twin(name).name)
    first: dict[str, list[float]] = {f: [] for f in names}
    second: dict[str, list[float]] = {f: [] for f in names}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "first.db")
        rt = srt.Runtime(path)
        s = rt.session("first")
        system, pairs = workloads.chat(args.turns, seed=1)
        s.append(system)
        for user, reply in pairs:
            s.append(user, reply)
        s.append({"role": "user", "content": "one more question"})
        rt.close()
        for _ in range(args.rounds):
            for name in names:
                rt = srt.Runtime(path)
                s = rt.session("first")
                n = len(s.messages_bytes())  # loaded: only the build is timed
                t0 = time.perf_counter()
                s.request(name, model=_model(name))
                t1 = time.perf_counter()
                s.request(name, model=_model(name))
                t2 = time.perf_counter()
                first[name].append((t1 - t0) * 1e3)
                second[name].append((t2 - t1) * 1e3)
                rt.close()
    base = statistics.median(first["openai.chat"])
    out = {
        "turns": args.turns,
        "messages": n,
        "rounds": args.rounds,
        "load": os.getloadavg(),
        "first_ms": {f: statistics.median(v) for f, v in first.items()},
        "first_ms_all": first,
        "second_ms": {f: statistics.median(v) for f, v in second.items()},
        "first_vs_chat": {f: statistics.median(v) / base for f, v in first.items()},
    }
    print(f"{n} messages, load {out['load'][0]:.2f}; median of {args.rounds} rounds:")
    for f in names:
        print(
            f"  {f:27} first {out['first_ms'][f]:7.2f} ms "
            f"({out['first_vs_chat'][f]:5.2f}x openai.chat)  second {out['second_ms'][f]:6.3f} ms"
        )
    if args.json:
        benchio.dump(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
