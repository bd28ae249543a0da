"""Two gateway trees side by side: one upstream, two ``srt serve`` processes, two chains
grown turn by turn in alternation, so both trees are measured in the same minutes.

    python bench/gateway_pair.py --a /tmp/before/src            # A: that tree, B: this one
    python bench/gateway_pair.py --b /tmp/before/src --turns 1000 --json out.json

``--a``/``--b`` is a directory holding an ``srt`` package (a copy of another tree's
``src``, its built core included), put first on the gateway's ``PYTHONPATH``; empty is
the installed tree. ``python -m srt.bench --workload gateway`` run after run moves its
p50 by 0.3-0.5 ms with the load of a shared 2-core machine; here the two trees share
the load turn for turn, so a difference of about 0.1 ms in the gateway's CPU per turn
or its Server-Timing p50 keeps its sign over a few runs (swap ``--a`` and ``--b``
between them). Per tree: the overhead as the client sees it and as the gateway does
(``Server-Timing``), as in the bench's ``overhead`` part, and the gateway's CPU per
turn (its process tree, from /proc; Linux).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from typing import Any

import benchio  # (bench/ is the script's folder)
import httpx

from srt.bench.gateway import _Chain, _nodelay, _pct
from srt.bench.gwserve import KEY, gateway, pid_of, tree_cpu
from srt.bench.gwupstream import Upstream

WARMUP = 30


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", default="", help="A's tree (a directory holding srt)")
    ap.add_argument("--b", default="", help="B's tree (a directory holding srt)")
    ap.add_argument("--turns", type=int, default=1000, help="measured turns per chain")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    trees = {"A": args.a, "B": args.b}
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as work, contextlib.ExitStack() as stack:
        up = Upstream(KEY)
        stack.callback(up.close)
        urls: dict[str, str] = {}
        chains: dict[str, _Chain] = {}
        given = os.environ.get("PYTHONPATH")
        try:
            for k, tree in trees.items():
                os.environ["PYTHONPATH"] = tree  # the gateway's environment
                urls[k] = stack.enter_context(gateway(work, os.path.join(work, f"{k}.db"), up.url))
                client = httpx.Client(base_url=urls[k], timeout=120, transport=_nodelay())
                chains[k] = _Chain(stack.enter_context(client), up, "gpt-4o-mini")
        finally:
            if given is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = given
        for _ in range(WARMUP):
            for ch in chains.values():
                ch.turn()
        cpu0 = {k: tree_cpu(pid_of(u)) for k, u in urls.items()}
        for i in range(args.turns):
            for k in "AB" if i % 2 == 0 else "BA":
                chains[k].turn()
        load = os.getloadavg()[0]
        for k, ch in chains.items():
            over, inside = ch.overhead[WARMUP:], ch.inside[WARMUP:]
            out[k] = {
                "tree": trees[k] or "installed",
                "p50_ms": statistics.median(over),
                "p99_ms": _pct(over, 0.99),
                "inside_p50_ms": statistics.median(inside),
                "inside_p99_ms": _pct(inside, 0.99),
                "cpu_ms_per_turn": (tree_cpu(pid_of(urls[k])) - cpu0[k]) * 1000 / args.turns,
            }
        out["load"] = load
    for k in "AB":
        r = out[k]
        print(
            f"{k} ({r['tree']}): overhead p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.2f}; "
            f"Server-Timing p50 {r['inside_p50_ms']:.3f}, p99 {r['inside_p99_ms']:.2f}; "
            f"gateway CPU {r['cpu_ms_per_turn']:.3f} ms a turn (load {out['load']:.2f})"
        )
    if args.json:
        benchio.dump(args.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
