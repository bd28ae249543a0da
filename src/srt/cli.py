"""The ``srt`` command: look at and edit the sessions in an srt database.

Every subcommand is a thin layer over ``Runtime`` and ``Session``. An ``SrtError``
is printed as one line, ``srt: error: <message>``, with exit status 1; argparse
usage errors exit with status 2. Text from the database is printed with control
characters escaped, so a stored message cannot drive the terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import io
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ._version import __version__
from .errors import SrtError
from .message import canonicalize
from .runtime import Runtime, default_path
from .wire import FORMATS

__all__ = ["build_parser", "main"]

# C0 controls, DEL and C1 controls, as \xNN. C1 (U+0080..U+009F) is included
# because some terminals read U+009B as CSI, as they read ESC [.
_CONTROLS = [*range(0x20), *range(0x7F, 0xA0)]
_ESCAPE_LINE = {c: f"\\x{c:02x}" for c in _CONTROLS}
_ESCAPE_TEXT = {c: e for c, e in _ESCAPE_LINE.items() if c not in (0x09, 0x0A)}


class CommandError(Exception):
    """A command that failed outside srt's own error tree (reported like an SrtError)."""


def _line(text: str) -> str:
    """``text`` with every control character escaped, newlines and tabs included."""
    return text.translate(_ESCAPE_LINE)


def _text(text: str) -> str:
    """``text`` with control characters other than newline and tab escaped."""
    return text.translate(_ESCAPE_TEXT)


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


@contextlib.contextmanager
def _runtime(args: argparse.Namespace, *, create: bool = False) -> Iterator[Runtime]:
    """The runtime on ``--db``. Unless ``create``, a missing file is not created: the
    command then sees an empty database, so ``ls`` lists nothing and the rest report
    a missing session."""
    path = args.db
    if not create and path != ":memory:" and not os.path.exists(path):
        path = ":memory:"
    with Runtime(path) as rt:
        yield rt


# -- rendering -----------------------------------------------------------------


def _part(part: dict[str, Any]) -> str:
    kind = part.get("type")
    if kind == "text":
        return str(part["text"])
    return "[image]" if kind == "image_url" else f"[{kind}]"


def _render(message: dict[str, Any]) -> str:
    """One transcript block, ``role: text``, with control characters escaped."""
    content = message.get("content")
    if isinstance(content, list):
        content = "\n".join(_part(p) for p in content)
    lines = [] if content is None else [content]
    for call in message.get("tool_calls") or ():
        fn = call.get("function", {})
        lines.append(f"[tool call {fn.get('name')}({fn.get('arguments', '')})]")
    return _text(f"{message['role']}: " + "\n".join(lines))


def _minute(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts).isoformat(timespec="minutes")


# -- commands --------------------------------------------------------------------


def _db_path(args: argparse.Namespace) -> None:
    print(args.db if args.db == ":memory:" else os.path.abspath(args.db))


def _ls(args: argparse.Namespace) -> None:
    with _runtime(args) as rt:
        infos = rt.sessions()
    if args.json:
        _print_json([dataclasses.asdict(info) for info in infos])
        return
    if not infos:
        return
    rows = [("NAME", "MESSAGES", "UPDATED", "HEAD")]
    rows += [
        (_line(i.name), str(i.messages), _minute(i.updated), (i.head_prefix or "-")[:12])
        for i in infos
    ]
    widths = [max(len(row[k]) for row in rows) for k in range(4)]
    for row in rows:
        cells = [
            c.rjust(w) if k == 1 else c.ljust(w)
            for k, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())


def _show(args: argparse.Namespace) -> None:
    with _runtime(args) as rt:
        messages = rt.session(args.name, create=False).messages()
    if args.json:
        _print_json(messages)
    elif messages:
        print("\n\n".join(_render(m) for m in messages))


def _append(args: argparse.Namespace) -> None:
    # Bytes from stdin are passed as they are: srt checks the UTF-8 itself.
    content: str | bytes = sys.stdin.buffer.read() if args.text == "-" else args.text
    message = {"role": args.role, "content": content}
    canonicalize(message)  # refuse a bad message before any file or session is created
    with _runtime(args, create=True) as rt:
        session = rt.session(args.name)
        session.append(message, rebase=True)
        print(len(session))


def _request(args: argparse.Namespace) -> None:
    with _runtime(args) as rt:
        session = rt.session(args.name, create=False)
        body = session.request(args.format, model=args.model, cache=not args.no_cache_hints)
    sys.stdout.flush()
    out = sys.stdout.buffer
    out.write(body)
    out.write(b"\n")
    out.flush()


def _fork(args: argparse.Namespace) -> None:
    with _runtime(args) as rt:
        child = rt.session(args.name, create=False).fork(args.new, args.at)
        print(len(child))


def _rewind(args: argparse.Namespace) -> None:
    with _runtime(args) as rt:
        session = rt.session(args.name, create=False)
        session.rewind(args.n)
        print(len(session))


def _rename(args: argparse.Namespace) -> None:
    with _runtime(args) as rt:
        rt.rename(args.old, args.new)


def _delete(args: argparse.Namespace) -> None:
    with _runtime(args) as rt:
        rt.delete(args.name)


# -- the parser ------------------------------------------------------------------


def _path(value: str) -> str:
    if not value:
        raise argparse.ArgumentTypeError("the path must not be empty")
    return value


def _count(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    """The ``srt`` argument parser (also walked by the docs tests)."""
    parser = argparse.ArgumentParser(
        prog="srt",
        description="Look at and edit the sessions in an srt database.",
        epilog="Use '--' before a session name or text that begins with '-'.",
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        type=_path,
        help="the database file (default: $SRT_DB, else srt.db in the user data directory)",
    )
    parser.add_argument(
        "--version", action="version", version=f"srt {__version__}", help="print the version"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, summary: str, run: Callable[[argparse.Namespace], None]
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary.capitalize() + ".")
        sub.set_defaults(run=run)
        return sub

    db = commands.add_parser("db", help="about the database file", description="The database.")
    db_commands = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    p = db_commands.add_parser(
        "path", help="print the database path that would be used", description="Print the path."
    )
    p.set_defaults(run=_db_path)

    p = command("ls", "list the sessions", _ls)
    p.add_argument("--json", action="store_true", help="print a JSON list of sessions")

    p = command("show", "print a session's transcript", _show)
    p.add_argument("name", metavar="NAME", help="the session")
    p.add_argument("--json", action="store_true", help="print the messages as a JSON list")

    p = command("append", "append one message to a session, creating it if missing", _append)
    p.add_argument("name", metavar="NAME", help="the session")
    p.add_argument(
        "--role",
        required=True,
        help="the message role: system, developer, user, assistant or tool",
    )
    p.add_argument("text", metavar="TEXT", help="the message text, or '-' to read it from stdin")

    p = command("request", "print the exact request body for the session's next call", _request)
    p.add_argument("name", metavar="NAME", help="the session")
    p.add_argument("--model", required=True, help="the model named in the request")
    p.add_argument(
        "--format",
        default="openai.chat",
        choices=sorted(FORMATS),
        help="the wire format (default: %(default)s)",
    )
    p.add_argument(
        "--no-cache-hints",
        action="store_true",
        help="leave out the cache planner's hints (prompt_cache_key, cache breakpoints)",
    )

    p = command("fork", "start a new session that shares a session's messages", _fork)
    p.add_argument("name", metavar="NAME", help="the session to fork")
    p.add_argument("new", metavar="NEW", help="the name of the new session")
    p.add_argument(
        "--at",
        type=int,
        metavar="N",
        help="keep the first N messages; negative counts from the end (default: all)",
    )

    p = command("rewind", "drop the last messages of a session", _rewind)
    p.add_argument("name", metavar="NAME", help="the session")
    p.add_argument(
        "n", metavar="N", nargs="?", type=_count, default=1, help="how many (default: 1)"
    )

    p = command("rename", "rename a session", _rename)
    p.add_argument("old", metavar="OLD", help="the session")
    p.add_argument("new", metavar="NEW", help="its new name")

    p = command("delete", "delete a session (messages shared with forks stay)", _delete)
    p.add_argument("name", metavar="NAME", help="the session")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``srt`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    if args.db is None:
        args.db = default_path()
    if isinstance(sys.stdout, io.TextIOWrapper):
        # Never fail on a terminal that cannot show a character of a message.
        sys.stdout.reconfigure(errors="backslashreplace")
    run: Callable[[argparse.Namespace], None] = args.run
    try:
        run(args)
    except (SrtError, CommandError) as exc:
        print(f"srt: error: {_line(str(exc))}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (``srt show x | head``): no traceback at exit either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
