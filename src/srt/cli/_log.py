"""``srt log``: a session's earlier heads, and restoring one; durations for retention."""

from __future__ import annotations

import argparse
import json
import re

from ..history import HeadRecord
from ..runtime import Runtime
from ._common import clip, escape_line, latest_session, print_json, print_table, runtime, when

__all__ = ["duration", "log", "log_usage"]

#: The longest duration taken: 100 years (a date past year 9999 cannot be shown).
MAX_DURATION = 100 * 365.25 * 86400.0
#: The widest LAST MESSAGE shown, "…" last when the message is longer.
LAST_MESSAGE_WIDTH = 60
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``12h``, ``7d`` or ``2w`` as seconds (argparse type)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if m is None:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (a number of seconds, or with s, m, h, d or w)"
        )
    seconds = float(m[1]) * _UNITS[m[2] or "s"]
    if seconds > MAX_DURATION:
        raise argparse.ArgumentTypeError(f"{text!r} is longer than 100 years")
    return seconds


def _last_message(rt: Runtime, record: HeadRecord) -> str:
    if record.head is None:
        return "(empty)"
    tail = rt.store.tail(record.head, record.messages - 1)
    if not tail:
        return ""
    msg = json.loads(tail[-1][1])
    content = msg.get("content")
    if isinstance(content, list):
        content = " ".join(str(p.get("text", f"[{p.get('type')}]")) for p in content)
    text = " ".join(str(content or "").split()) or ("[tool calls]" if msg.get("tool_calls") else "")
    return f"{msg.get('role')}: {text}"


def log_usage(args: argparse.Namespace) -> str | None:
    """What is wrong with ``srt log``'s options together (None: nothing)."""
    if args.restore is not None and args.json:
        return "--json prints the earlier heads, and --restore prints none"
    return None


def log(args: argparse.Namespace) -> None:
    with runtime(args) as rt:
        name = args.name if args.name is not None else latest_session(rt)
        session = rt.session(name, create=False)
        if args.restore is not None:
            session.restore(args.restore)
            print(f"{escape_line(name)}: {len(session)} messages (restored {args.restore})")
            return
        records = session.history()
        if args.json:
            print_json([{**r.__dict__, "last_message": _last_message(rt, r)} for r in records])
            return
        rows = [("KEY", "LEFT AT", "BY", "MESSAGES", "KEPT UNTIL", "LAST MESSAGE")]
        for r in records:
            rows.append(
                (
                    r.key,
                    when(r.at),
                    r.action,
                    f"{r.messages:,}",
                    when(r.expires) if r.expires is not None else "-",
                    clip(escape_line(_last_message(rt, r)), LAST_MESSAGE_WIDTH),
                )
            )
        n = len(session)
        current = f"{escape_line(name)}: {n} message{'' if n == 1 else 's'} now"
    print(current + ("; earlier heads:" if records else "; no earlier heads recorded"))
    print_table(rows, right=(3,))
