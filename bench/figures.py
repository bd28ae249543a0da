"""Print the Markdown tables of docs/bench.md from saved bench results.

    python bench/figures.py bench/results/bench.json [bench/results/peers.json]

The figures in docs/bench.md are pasted from this script's output, so every number
there traces back to a saved ``--json`` file and the command recorded in it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def targets(doc: dict[str, Any]) -> list[str]:
    out = ["| target | measured | bound | |", "|---|---|---|---|"]
    for t in doc["targets"]:
        v, b = t["value"], t["bound"]
        share = b < 1.0 or t["key"].endswith(("eff", "fewer20", "nocache"))
        fv, fb = (_pct(v), _pct(b)) if share else (f"{v:.2f}", f"{b:g}")
        out.append(
            f"| {t['label']} | {fv} | {t['op']} {fb} | {'met' if t['met'] else '**missed**'} |"
        )
    return out


def replay(name: str, r: dict[str, Any]) -> list[str]:
    out = []
    for rules in ("openai", "anthropic"):
        if rules not in r:
            continue
        x = r[rules]
        out += [
            f"{name}, {rules} rules:",
            "",
            "| client | input tokens | cached | uncached | cache writes | billed input $ "
            "| wire bytes/turn |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for kind, c in x["clients"].items():
            out.append(
                f"| {kind} | {c['input_tokens']:,} | {c['cached_tokens']:,} | "
                f"{c['uncached_tokens']:,} | {c['written_tokens']:,} | "
                f"{c['billed_input_usd']:.2f} | {c['wire_bytes_per_turn']:,.0f} |"
            )
        if "baselines" in x:
            out += [
                "",
                "| srt's input $ against | baseline input $ | saved | share |",
                "|---|---:|---:|---:|",
            ]
            for b in x["baselines"].values():
                modelled = b.get("modelled_input_usd")
                what = b["label"] + (
                    f" (srt.savings models {modelled:.2f})" if modelled is not None else ""
                )
                out.append(
                    f"| {what} | {b['input_usd']:.2f} | {b['saved_usd']:.2f} | "
                    f"{_pct(b['saved_share'])} |"
                )
        out += [
            "",
            f"srt reuse efficiency {_pct(x['reuse_efficiency'])} of {x['max_cacheable']:,} "
            f"cacheable tokens (plus {x.get('cached_beyond_own_prefix', 0):,} cached beyond "
            "its own prefix). srt's uncached input tokens against each client:",
            "",
            "| against | all | ≥ 20 messages | (own-prefix bound) | ≥ 10 messages, median |",
            "|---|---:|---:|---:|---:|",
        ]
        for kind in x["clients"]:
            if kind == "srt":
                continue
            a0, a, b = (x[f"fewer_uncached_vs_{kind}_ge{m}"] for m in (0, 20, 10))
            ge20 = f"{_pct(a['aggregate'])} fewer (n = {a['n']})" if a["n"] else "—"
            no_cache = not x["clients"][kind]["cached_tokens"]
            bound = _pct(a["bound"]) if a["n"] and no_cache else ""
            ge10 = f"{_pct(b['median'])} fewer (n = {b['n']})" if b["n"] else "—"
            out.append(f"| {kind} | {_pct(a0['aggregate'])} fewer | {ge20} | {bound} | {ge10} |")
        out.append("")
    return out


def main(argv: list[str]) -> int:
    doc = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    print("command: python -m srt.bench " + " ".join(doc.get("argv") or []))
    print("environment: " + "; ".join(f"{k} {v}" for k, v in doc["environment"].items()))
    print()
    print("\n".join(targets(doc)))
    print()
    res = doc["results"]
    for name in ("sharegpt", "mtbench"):
        if name in res:
            print("\n".join(replay(name, res[name])))
    if len(argv) > 1:
        peers = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
        print(f"peers: {peers['turns']} turns, last {peers['tail']} timed; {peers['environment']}")
        print("| client | append p50 (µs) | build p50 (µs) | build p99 (µs) | database | × text |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, r in peers["results"].items():
            if not r["installed"]:
                print(f"| {name} | not installed | | | | |")
                continue
            print(
                f"| {name} | {r['append_us']['p50']:,.0f} | {r['build_us']['p50']:,.0f} | "
                f"{r['build_us']['p99']:,.0f} | {r['db_bytes'] / 1e6:.2f} MB | "
                f"{r['db_vs_text']:.2f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
