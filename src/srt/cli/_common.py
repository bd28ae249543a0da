"""What every ``srt`` command shares: escaping, the runtime, tables and numbers."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from ..runtime import Runtime
from ..store import redact_url, scheme_of, sqlite_path
from ..store.keyfile import read_key_file

__all__ = [
    "CommandError",
    "cli_key",
    "clip",
    "escape_line",
    "escape_text",
    "existing_db",
    "file_of",
    "is_url",
    "latest_session",
    "nonempty",
    "open_db",
    "present",
    "print_json",
    "print_table",
    "read_stdin",
    "redact_url",
    "refuse_empty",
    "runtime",
    "when",
    "write_bytes",
]

# C0 controls, DEL and C1 controls, as \xNN. C1 (U+0080..U+009F) is included
# because some terminals read U+009B as CSI, as they read ESC [.
_CONTROLS = [*range(0x20), *range(0x7F, 0xA0)]
_ESCAPE_LINE = {c: f"\\x{c:02x}" for c in _CONTROLS}
_ESCAPE_TEXT = {c: e for c, e in _ESCAPE_LINE.items() if c not in (0x09, 0x0A)}


class CommandError(Exception):
    """A command that failed outside srt's own error tree (reported like an SrtError)."""


def nonempty(value: str) -> str:
    """An option's value that must not be empty (argparse type): ``--session ""`` would
    otherwise quietly mean no option at all."""
    if not value:
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def refuse_empty(text: str | bytes, what: str) -> None:
    """``CommandError`` "<what> is empty" if ``text`` is empty or only white space (a
    message no provider takes: ``srt prompt ""``, ``srt append NAME --role user ""``)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not text.strip():
        raise CommandError(f"{what} is empty")


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, its last one "…" when anything was cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def escape_line(text: str) -> str:
    """``text`` with every control character escaped, newlines and tabs included."""
    return text.translate(_ESCAPE_LINE)


def escape_text(text: str) -> str:
    """``text`` with control characters other than newline and tab escaped."""
    return text.translate(_ESCAPE_TEXT)


def print_json(value: Any) -> None:
    """``value`` as JSON on stdout. JSON has no ``Infinity`` or ``NaN``: a figure that is
    not a finite number is a ``CommandError`` and nothing is printed."""
    try:
        text = json.dumps(value, ensure_ascii=False, indent=2, allow_nan=False)
    except ValueError as exc:
        raise CommandError(f"cannot print this as JSON: {exc}") from None
    print(text)


def when(ts: float) -> str:
    """A local time to the minute: ``2025-05-01 14:03`` (``never`` past what a date can
    show, as a retention set to a huge number through the API gives)."""
    try:
        return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, OSError, ValueError):
        return "never" if ts > 0 else "-"


def print_table(rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> None:
    """Rows of cells in aligned columns (the first row is the header); ``right``
    lists the columns aligned to the right."""
    if len(rows) < 2:
        return
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    for row in rows:
        cells = [
            c.rjust(w) if k in right else c.ljust(w)
            for k, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())


def is_url(db: str) -> bool:
    """Whether ``--db`` names a database server (``postgresql://...``), not a file."""
    return scheme_of(db) != "sqlite"


def file_of(db: str) -> str:
    """What ``--db`` (or ``srt copy``'s SRC or DEST) names: a server's URL as it is, else
    a file path, the one a ``sqlite:`` URL names (which ``Runtime`` opens too)."""
    return db if is_url(db) else sqlite_path(db)


def present(db: str) -> bool:
    """Whether ``--db`` names a store that may hold data: an existing file, or a server
    (whose schema the engine creates on first use)."""
    return is_url(db) or (db != ":memory:" and os.path.exists(db))


@contextlib.contextmanager
def runtime(args: argparse.Namespace, *, create: bool = False) -> Iterator[Runtime]:
    """The runtime on ``--db``. Unless ``create``, a missing file is not created: the
    command then sees an empty database, so ``ls`` lists nothing and the rest report
    a missing session."""
    path = args.db
    if not create and path != ":memory:" and not present(path):
        path = ":memory:"
    with Runtime(path, key=cli_key(args) if path != ":memory:" else None) as rt:
        yield rt


def latest_session(rt: Runtime) -> str:
    """The name of the session used last (as ``-c`` continues it)."""
    infos = rt.sessions()
    if not infos:
        raise CommandError("there are no sessions yet")
    return max(infos, key=lambda i: i.updated).name


def cli_key(args: argparse.Namespace) -> str | bytes | None:
    """The encryption key from ``--key-file``, if given (``keys.read_key_file``)."""
    key_file: str | None = getattr(args, "key_file", None)
    return read_key_file(key_file, args.db) if key_file is not None else None


def open_db(args: argparse.Namespace) -> Runtime:
    """The runtime on ``--db`` (with ``--key-file``), for a command that needs the file."""
    return Runtime(existing_db(args), key=cli_key(args))


def existing_db(args: argparse.Namespace) -> str:
    """``--db`` for a command that needs the file to exist (gc, verify, vacuum)."""
    path: str = args.db
    if not present(path):
        raise CommandError(f"no database at {os.path.abspath(path)}")
    return path


def read_stdin() -> bytes:
    """All of stdin, as bytes (``-`` for a file or a text)."""
    stream = sys.stdin
    if stream is None:
        raise CommandError("cannot read stdin: it is closed")
    try:
        buffer = getattr(stream, "buffer", None)
        if buffer is None:  # a text stream without bytes below it
            return str(stream.read()).encode("utf-8", "surrogatepass")
        return bytes(buffer.read())
    except OSError as exc:
        raise CommandError(f"cannot read stdin: {exc.strerror or exc}") from None


def write_bytes(data: bytes) -> None:
    """Write ``data`` to stdout as it is (after any text printed before it)."""
    sys.stdout.flush()
    out = sys.stdout.buffer
    out.write(data)
    out.flush()


def tty(stream: Any = None) -> bool:
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
