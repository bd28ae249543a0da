"""The bench's picture: per-turn build time against N, and tokens the provider billed.

matplotlib is optional (the ``bench`` extra). ``available()`` says whether it is
installed; ``write()`` returns ``None`` when it is not, and the caller says so.
"""

from __future__ import annotations

import importlib.util
from typing import Any

INSTALL = "pip install 'stateful-runtime[bench]'  (or: pip install matplotlib)"
_LABELS = {
    "srt": "srt (frozen fragments)",
    "naive": "naive SQLite store + json.dumps",
    "dumps": "stateless json.dumps",
    "orjson": "stateless orjson.dumps",
}


def _median(ys: list[float], width: int) -> list[float]:
    """A running median over ``width`` points (the raw series is drawn faintly beside it)."""
    import statistics

    h = width // 2
    return [statistics.median(ys[max(0, i - h) : i + h + 1]) for i in range(len(ys))]


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def write(path: str, results: dict[str, Any], title: str = "") -> str | None:
    """Draw what ``results`` holds to a PNG at ``path``; ``None`` without matplotlib."""
    if not available():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    replays = [
        (name, rules, results[name][rules])
        for name in ("sharegpt", "mtbench")
        if name in results
        for rules in ("openai", "anthropic")
        if rules in results[name]
    ]
    panels = 1 + (1 if replays else 0) + (1 if "window" in results else 0)
    fig, axes = plt.subplots(1, panels, figsize=(6.2 * panels, 4.4), squeeze=False)
    ax = axes[0][0]
    chat = results.get("chat")
    if chat is not None:
        series: dict[str, list[float]] = chat["series"]
        for n, key in enumerate(("naive", "dumps", "orjson", "srt")):
            ys = series.get(key)
            if ys:
                turn = list(range(1, len(ys) + 1))
                ax.plot(turn, ys, color=f"C{n}", lw=0.5, alpha=0.35)
                ax.plot(turn, _median(ys, 15), color=f"C{n}", lw=1.6, label=_LABELS[key])
        ax.set_yscale("log")
        ax.set_xlabel("turn N (messages = 2N + 1)")
        ax.set_ylabel("next-request build time (µs, log; running median)")
        ax.set_title(f"chat: build the next request at turn N (seed {chat.get('seed', 1)})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    k = 1
    if replays:
        ax = axes[0][k]
        k += 1
        kinds = ["stateless", "careful", "srt"]
        labels = []
        width = 0.8 / len(kinds)
        for j, kind in enumerate(kinds):
            vals = [
                r["clients"][kind]["uncached_tokens"] / 1e6 if kind in r["clients"] else 0.0
                for _, _, r in replays
            ]
            xs = [i + j * width for i in range(len(replays))]
            ax.bar(xs, vals, width, label=kind)
        labels = [f"{n}\n{rules}" for n, rules, _ in replays]
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(replays))], labels)
        ax.set_ylabel("uncached input tokens (millions)")
        ax.set_title("replay: input tokens the provider did not serve from cache")
        ax.legend(fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    if "window" in results:
        ax = axes[0][k]
        w = results["window"]
        names = [key for key in w if "." in key]
        vals = [100 * w[key]["cached_share"] for key in names]
        ax.bar(range(len(names)), vals, color=["C2" if "aware" in n else "C3" for n in names])
        ax.set_xticks(range(len(names)), [n.replace(".", "\n") for n in names], fontsize=8)
        ax.set_ylabel("input tokens served from cache (%)")
        ax.set_title(f"window: {w['turns']} turns through {w['budget']:,} tokens")
        ax.set_ylim(0, 100)
        ax.grid(True, axis="y", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    from .report import open_private

    with open_private(path) as f:  # 0600: savefig(path) would follow the umask
        fig.savefig(f, format="png", dpi=80)
    plt.close(fig)
    return path
