"""What a canonical message leaves out of the original, as a small structural patch.

An adapter turns a framework's message (a Responses item, a LangChain message) into
srt's canonical message, which keeps only what a model sees. ``diff(base, original)``,
with ``base`` rebuilt from the canonical message alone, is what the canonical form lost
(ids, statuses, provider fields, key order); ``apply(base, patch)`` gives the original
back. Values compare strictly: ``1``, ``1.0`` and ``True`` differ, and so do a list and
a tuple. A patch is plain JSON-like data:

- ``None``: nothing to change;
- ``{"=": value}``: replace the whole value;
- ``{"k": {key: patch}, "d": [keys], "o": [keys]}``: a dict's changed or added keys,
  its removed keys, and its key order when the order differs;
- ``{"i": [[index, patch], ...]}``: a list of the same length, element by element.
"""

from __future__ import annotations

from typing import Any

__all__ = ["apply", "diff", "same"]

_SCALARS = (str, int, float, bool, type(None))


def same(a: Any, b: Any) -> bool:
    """Equal values of the same types all the way down (and the same dict key order)."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return list(a) == list(b) and all(same(v, b[k]) for k, v in a.items())
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def diff(base: Any, target: Any) -> Any:
    """A patch turning ``base`` into ``target`` (``None`` when they are the same)."""
    if same(base, target):
        return None
    if type(base) is dict and type(target) is dict:
        edits: dict[str, Any] = {}
        for key, value in target.items():
            if key in base:
                sub = diff(base[key], value)
                if sub is not None:
                    edits[key] = sub
            else:
                edits[key] = {"=": value}
        out: dict[str, Any] = {}
        if edits:
            out["k"] = edits
        gone = [k for k in base if k not in target]
        if gone:
            out["d"] = gone
        kept = [k for k in base if k in target] + [k for k in target if k not in base]
        if kept != list(target):
            out["o"] = list(target)
        if all(isinstance(k, str) for k in target) and all(isinstance(k, str) for k in gone):
            return out
        return {"=": target}
    if type(base) is list and type(target) is list and len(base) == len(target):
        items = [
            [i, sub]
            for i, (b, t) in enumerate(zip(base, target, strict=True))
            if (sub := diff(b, t)) is not None
        ]
        return {"i": items}
    return {"=": target}


def apply(base: Any, patch: Any) -> Any:
    """``base`` with ``patch`` applied (``base`` itself is left as it was)."""
    if patch is None:
        return base
    if "=" in patch:
        return patch["="]
    if "i" in patch:
        out_list = list(base)
        for index, sub in patch["i"]:
            out_list[index] = apply(base[index], sub)
        return out_list
    out = dict(base)
    for key in patch.get("d", ()):
        out.pop(key, None)
    for key, sub in patch.get("k", {}).items():
        out[key] = apply(base.get(key), sub)
    order = patch.get("o")
    if order is not None:
        out = {key: out[key] for key in order}
    return out
