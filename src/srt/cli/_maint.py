"""``srt search``, ``srt gc``, ``srt verify`` and ``srt vacuum``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import unicodedata

from ..runtime import Runtime
from ..store import Hit
from ..store.keyfile import read_key_file
from ._common import (
    CommandError,
    cli_key,
    escape_line,
    file_of,
    is_url,
    open_db,
    present,
    print_json,
    redact_url,
    tty,
)
from ._copy_counts import Counted

__all__ = [
    "backup",
    "copy",
    "gc",
    "rekey",
    "search",
    "search_usage",
    "snippet",
    "vacuum",
    "verify",
]


def _fold(text: str) -> str:
    """Lower case without diacritics, one character per character of ``text``."""
    out = []
    for ch in text:
        base = unicodedata.normalize("NFD", ch)[:1] or ch
        out.append(base.lower()[:1] or ch)
    return "".join(out)


def snippet(text: str, query: str, width: int) -> str:
    """One line of ``text`` around the first word of ``query`` found in it."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    folded = _fold(flat)
    found = [folded.find(_fold(w.strip('"*'))) for w in query.split() if w.strip('"*')]
    at = min((i for i in found if i >= 0), default=0)
    start = max(0, min(at - width // 3, len(flat) - width))
    piece = flat[start : start + width]
    if start > 0:
        piece = "…" + piece[1:]
    if start + width < len(flat):
        piece = piece[:-1] + "…"
    return piece


def _announce(count: int) -> None:
    """Said on stderr once per file: the first search builds the index."""
    print(f"building the search index over {_n(count, 'message')}…", file=sys.stderr, flush=True)


#: ``srt search``'s hits by default (``--limit``).
SEARCH_LIMIT = 20


def search_usage(args: argparse.Namespace) -> str | None:
    """A usage error in ``srt search``'s arguments, or None."""
    if args.drop_index and args.text:
        return "--drop-index takes no TEXT"
    if args.drop_index and (args.limit is not None or args.fts or args.json):
        return "--drop-index takes no --limit, --fts or --json (it finds nothing)"
    if not args.drop_index and not args.text:
        return "the following arguments are required: TEXT"
    return None


def search(args: argparse.Namespace) -> None:
    if args.drop_index:
        with open_db(args) as rt:
            dropped = rt.store.drop_search_index()
        print(
            "dropped the search index; srt vacuum returns its pages to the disk"
            if dropped
            else "the database has no search index"
        )
        return
    if not present(args.db):
        hits: list[Hit] = []
    else:
        limit = SEARCH_LIMIT if args.limit is None else args.limit
        with Runtime(args.db, key=cli_key(args)) as rt:
            hits = rt.store.search(args.text, limit=limit, syntax=args.fts, announce=_announce)
    if args.json:
        print_json([dataclasses.asdict(h) for h in hits])
        return
    import shutil  # (here: with bz2, lzma and fnmatch, a few ms of every command)

    width = shutil.get_terminal_size((80, 24)).columns
    for h in hits:
        where = ", ".join(f"{escape_line(name)}:{pos}" for name, pos in h.places)
        head = f"{where}  {h.role}: "
        room = max(width - len(head), 20)
        print(head + escape_line(snippet(h.text, args.text, room)))


def _size(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{n:,} bytes" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def gc(args: argparse.Namespace) -> None:
    from ..store.sweeps import declared  # (loaded by Runtime.gc: not by every command)
    from . import _scratch  # noqa: F401 (declares the sweep of killed imports' scratch sessions)

    with open_db(args) as rt:
        if args.history_retention is not None and not args.dry_run:
            rt.set_history_retention(args.history_retention)
        r = rt.gc(secure_delete=not args.no_secure_delete, dry_run=args.dry_run)
    if args.json:
        dead = [p.hex() for p in r.dead_prefixes]
        out = {**dataclasses.asdict(r), "dead_prefixes": dead, "swept": dict(r.swept)}
        print_json({**out, "bytes_freed": r.bytes_freed})
        return
    verb = "would remove" if r.dry_run else "removed"
    print(
        f"{verb} {_n(r.nodes, 'node')} and {_n(r.messages, 'message')} "
        f"({_size(r.message_bytes)} of message bodies) that no session reaches"
    )
    if r.ledger_rows:
        print(f"kept {_n(r.ledger_rows, 'ledger row')} of those nodes (their node is now empty)")
    if r.orphan_objects:
        print(f"{verb} {_n(r.orphan_objects, 'record')} {_ORPHANS}")
    for kind, count in r.swept:
        sweep = declared(kind)
        if count and sweep is not None:  # (declared: Runtime.gc ran it)
            print(f"{verb} {_n(count, sweep.noun)} {sweep.why}")
    if r.state_files:
        print(
            f"{verb} {_n(r.state_files, 'saved KV state')} of the local provider "
            f"({_size(r.state_bytes)}) for conversations no session reaches"
        )
    if r.dry_run:
        print("dry run: nothing was changed")
        return
    if not r.page_size:  # an engine without SQLite's pages and WAL (PostgreSQL)
        if r.messages:
            print(
                "the removed rows' space is reused by later writes; their bytes stay in the "
                "table files until srt vacuum rewrites them"
            )
        return
    if r.pages_freed:
        print(
            f"freed {r.pages_freed:,} pages ({_size(r.bytes_freed)}); the file has "
            f"{r.free_pages:,} free pages ({_size(r.free_bytes)}), which srt vacuum "
            "returns to the disk"
        )
    elif r.messages:
        print("freed no whole page: the space inside the pages is reused by later writes")
    if r.secure_delete and r.messages:
        print("secure delete: the removed text was overwritten with zeros")
    if not r.checkpointed:
        print("the WAL is still in use by a reader: old text may stay in -wal until it ends")


#: What ``GcReport.orphan_objects`` and ``VerifyReport.orphan_objects`` count.
_ORPHANS = "left under the id of a deleted session (earlier heads, started tool calls)"


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def verify(args: argparse.Namespace) -> int:
    with open_db(args) as rt:
        r = rt.store.verify()
        # The ledger is rebuilt only over a sound store: replaying damaged chains
        # would only repeat the store's faults.
        ledger = rt.verify_ledger() if r.ok else None
    checked = ", ".join(
        [
            _n(r.messages, "message"),
            _n(r.nodes, "node"),
            _n(r.sessions, "session"),
            _n(r.calls, "ledger row"),
        ]
    )
    ok = r.ok and ledger is not None and ledger.ok
    if args.json:
        print_json(
            {
                **dataclasses.asdict(r),
                "ledger": dataclasses.asdict(ledger) if ledger is not None else None,
                "ok": ok,
            }
        )
        return 0 if ok else 1
    rebuilt = ""
    if ledger is not None and ledger.checked:
        rows = f" ({ledger.checked:,} of {r.calls:,})" if ledger.unchecked else ""
        rebuilt = (
            f", and every ledger row with a stored reply{rows} rebuilds to its recorded body hash"
        )
    if ok:
        print(f"ok: {checked}; every hash, chain and reference checks out{rebuilt}")
    if r.orphan_objects:  # (not a fault)
        print(f"garbage: {_n(r.orphan_objects, 'record')} {_ORPHANS}, which srt gc removes")
    if ok:
        return 0
    faults = list(r.faults) + list(ledger.faults if ledger is not None else ())
    for fault in faults:
        print(f"FAULT {escape_line(str(fault))}")
    total = len(faults) + r.more_faults + (ledger.more_faults if ledger is not None else 0)
    print(f"{_n(total, 'fault')} in {checked}")
    return 1


def vacuum(args: argparse.Namespace) -> None:
    with open_db(args) as rt:
        r = rt.store.vacuum()
    print(f"{_size(r.bytes_before)} before, {_size(r.bytes_after)} after")


def backup(args: argparse.Namespace) -> None:
    with open_db(args) as rt:
        r = rt.backup(args.dest)
    print(
        f"{'encrypted ' if r.encrypted else ''}backup of {_n(r.pages, 'page')} "
        f"({_size(r.bytes)}) written to {escape_line(r.path)}; integrity_check ok"
    )


def rekey(args: argparse.Namespace) -> None:
    new = None if args.decrypt else read_key_file(args.new_key_file, args.db)
    with open_db(args) as rt:
        rt.rekey(new)
    print(
        "the database is now "
        + ("plain (not encrypted)" if new is None else "encrypted under the new key")
    )


def _file_key(args: argparse.Namespace, store: str) -> str | bytes | None:
    """``--key-file``'s key for ``srt copy``'s ``store`` if it is a file (a server's
    store has no file to encrypt)."""
    if args.key_file is None or is_url(store):
        return None
    return read_key_file(args.key_file, store)


def _same_store(src: str, dest: str) -> bool:
    """Whether ``srt copy``'s SRC and DEST name one store: one file (by its inode, so a
    link or another spelling of the path is seen), or the same server URL."""
    if is_url(src) or is_url(dest):
        return src == dest
    return dest != ":memory:" and os.path.exists(dest) and os.path.samefile(src, dest)


def _source(args: argparse.Namespace) -> Runtime:
    """``srt copy``'s SRC, opened without creating anything: a server's schema that holds
    no srt store (a mistyped ``?schema=``) is refused, never created and copied empty."""
    if not is_url(args.src):
        return Runtime(args.src, key=_file_key(args, args.src))
    from ..store import open_store

    return Runtime(store=open_store(args.src, create=False))


def copy(args: argparse.Namespace) -> None:
    """``srt copy SRC DEST``: every session, object and ledger row, checked by hashes."""
    args.src, args.dest = file_of(args.src), file_of(args.dest)
    if not present(args.src):
        raise CommandError(f"no database at {redact_url(args.src)}")
    if _same_store(args.src, args.dest):
        raise CommandError(
            f"{redact_url(args.src)} is both the source and the destination: "
            "copy a store into another one"
        )
    from ..store.copy import copy_store  # (here: it brings secrets and hmac)

    with (
        _source(args) as src,
        Runtime(args.dest, key=_file_key(args, args.dest)) as dest,
    ):
        counted = Counted(dest.store)
        report = copy_store(
            src.store,
            counted.store,
            progress=(lambda line: print(line, file=sys.stderr, flush=True))
            if tty(sys.stderr)
            else None,
        )
    figures = {
        "sessions_copied": report.sessions_copied,
        "sessions_present": report.sessions_present,
        "messages_stored": counted.messages,
        "messages_sent": report.messages_sent,
        "objects_copied": counted.objects,
        "objects_present": counted.objects_present,
        "calls_copied": report.calls_copied,
        "calls_present": report.calls_present,
        "verified": report.verified,
    }
    if args.json:
        print_json(figures)
        return
    print(
        f"copied {_n(report.sessions_copied, 'session')} "
        f"({_n(counted.messages, 'new message')} stored), "
        f"{_n(counted.objects, 'new or changed object')}, "
        f"{_n(report.calls_copied, 'ledger row')}; "
        f"already there: {_n(report.sessions_present, 'session')}, "
        f"{_n(counted.objects_present, 'object')}, "
        f"{_n(report.calls_present, 'ledger row')}; verified by hashes"
    )
