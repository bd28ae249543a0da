"""The ``srt`` command: chat with a model, and look after the sessions in an srt database.

Every subcommand is a thin layer over ``Runtime``, ``Session`` and the
store's maintenance operations (``rt.store``). An ``SrtError`` is printed as one line,
``srt: error: <message>``, with exit status 1; argparse usage errors exit with
status 2; output that cannot be written is ``srt: write error: <reason>`` (``_output``).
Text from the database is printed with control characters escaped, so
a stored message cannot drive the terminal. The reference is ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

from .._version import __version__
from ..errors import SrtError
from ..runtime import default_path
from ..wire import NAMES
from . import _chat, _import_keys, _imports, _log, _maint, _output, _serve, _sessions, _stats
from ._common import CommandError, escape_line, file_of, nonempty
from ._providers import add_provider_options

__all__ = ["build_parser", "main"]

Run = Callable[[argparse.Namespace], "int | None"]


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


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {n}")
    return n


def _conversation_options(p: argparse.ArgumentParser, what: str) -> None:
    add_provider_options(p)
    p.add_argument(
        "--system",
        metavar="TEXT",
        type=nonempty,
        help=f"the system prompt of a new session (for {what})",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--session",
        metavar="NAME",
        type=nonempty,
        help="use session NAME, creating it if missing (default: a new session "
        f"named {what}-DATE-TIME)",
    )
    which.add_argument(
        "-c",
        "--continue",
        dest="cont",
        action="store_true",
        help="continue the session used last",
    )


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose help and version text fail as other output does: argparse
    drops the OSError of writing them (``srt --help > /dev/full`` exited 0)."""

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        stream = file or sys.stderr
        if message and stream is not None:
            stream.write(message)


def build_parser() -> argparse.ArgumentParser:
    """The ``srt`` argument parser (also walked by the docs tests)."""
    parser = _Parser(
        prog="srt",
        description="Chat with a model, and look after the sessions in an srt database.",
        epilog="Use '--' before a session name or text that begins with '-'. "
        "The reference is docs/cli.md.",
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        type=_path,
        help="the database file (default: $SRT_DB, else srt.db in the user data directory)",
    )
    parser.add_argument(
        "--key-file",
        metavar="PATH",
        type=_path,
        help="the database's encryption key (the encryption extra): a file readable by you "
        "only, kept outside the database's directory",
    )
    parser.add_argument(
        "--version", action="version", version=f"srt {__version__}", help="print the version"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, summary: str, run: Run) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary.capitalize() + ".")
        sub.set_defaults(run=run, subparser=sub)
        return sub

    p = command("chat", "chat with a model, streaming, in a stored session", _chat.chat)
    _conversation_options(p, "chat")
    p.add_argument(
        "--tool",
        metavar="MODULE:FUNCTION",
        action="append",
        help="a Python function the model may call (repeatable), from a module importable "
        "here; its schema comes from its signature and docstring. Each call is shown "
        "and runs only if you answer y",
    )
    p.add_argument(
        "--yes",
        action="store_true",
        help="run the model's tool calls without asking (each is still shown)",
    )

    p = command("prompt", "ask one question and print the streamed reply", _chat.prompt)
    p.add_argument(
        "text", metavar="TEXT", nargs="?", help="the prompt, or '-' (or nothing) to read stdin"
    )
    _conversation_options(p, "prompt")

    db = commands.add_parser("db", help="about the database file", description="The database.")
    db_commands = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    p = db_commands.add_parser(
        "path", help="print the database path that would be used", description="Print the path."
    )
    p.set_defaults(run=_sessions.db_path)

    p = command("ls", "list the sessions", _sessions.ls)
    p.add_argument("--json", action="store_true", help="print a JSON list of sessions")

    p = command("show", "print a session's transcript or its branch tree", _sessions.show)
    p.add_argument(
        "name", metavar="NAME", nargs="?", help="the session (default: the one used last)"
    )
    how = p.add_mutually_exclusive_group()
    how.add_argument("--json", action="store_true", help="print the messages as a JSON list")
    how.add_argument(
        "--tree",
        action="store_true",
        help="draw the tree of every session sharing this conversation's first message",
    )
    how.add_argument(  # (a transcript's: --json gives the messages as stored)
        "--replaced",
        action="store_true",
        help="under each compaction summary, the messages it replaced",
    )

    p = command(
        "append", "append one message to a session, creating it if missing", _sessions.append
    )
    p.add_argument("name", metavar="NAME", help="the session")
    p.add_argument(
        "--role",
        required=True,
        help="the message role: system, developer, user, assistant or tool",
    )
    p.add_argument(
        "--tool-call-id",
        metavar="ID",
        type=nonempty,
        help="for --role tool: the id of the tool call this message answers",
    )
    p.add_argument("text", metavar="TEXT", help="the message text, or '-' to read it from stdin")

    p = command(
        "request", "print the exact request body for the session's next call", _sessions.request
    )
    p.add_argument("name", metavar="NAME", help="the session")
    p.add_argument("--model", required=True, type=nonempty, help="the model named in the request")
    p.add_argument(
        "--format",
        default="openai.chat",
        choices=sorted(NAMES),
        help="the wire format (default: %(default)s)",
    )
    p.add_argument(
        "--no-cache-hints",
        action="store_true",
        help="leave out the cache planner's hints (prompt_cache_key, cache breakpoints)",
    )

    p = command("fork", "start a new session that shares a session's messages", _sessions.fork)
    p.add_argument("name", metavar="NAME", help="the session to fork")
    p.add_argument("new", metavar="NEW", help="the name of the new session")
    p.add_argument(
        "--at",
        type=int,
        metavar="N",
        help="keep the first N messages; negative counts from the end (default: all)",
    )

    p = command("rewind", "drop the last messages of a session", _sessions.rewind)
    p.add_argument("name", metavar="NAME", help="the session")
    p.add_argument(
        "n", metavar="N", nargs="?", type=_count, default=1, help="how many (default: 1)"
    )

    p = command("rename", "rename a session", _sessions.rename)
    p.add_argument("old", metavar="OLD", help="the session")
    p.add_argument("new", metavar="NEW", help="its new name")

    p = command("delete", "delete a session (messages shared with forks stay)", _sessions.delete)
    p.add_argument("name", metavar="NAME", help="the session")

    p = command("export", "print a session as a request body or as JSON lines", _sessions.export)
    p.add_argument("name", metavar="NAME", help="the session")
    p.add_argument(
        "--format",
        default="jsonl",
        choices=_sessions.EXPORTS,
        help="jsonl (one stored message a line, byte for byte; the default), markdown "
        "(a transcript for people), or a wire format: the request body, as "
        "'srt request' prints it without cache hints",
    )
    p.add_argument(
        "--model",
        type=nonempty,
        help="the model named in the body (default: the session's last model in the "
        "ledger, else gpt-4o-mini, claude-sonnet-4-5 or, for bedrock.converse, "
        "anthropic.claude-sonnet-4-5-20250929-v1:0)",
    )
    p.add_argument(
        "--include-partial",
        action="store_true",
        help="include partial (cancelled, incomplete) replies, which are left out by default",
    )
    p.set_defaults(check=_sessions.export_usage)

    p = command(
        "import",
        "create a session from a file made by srt export, or import another tool's store",
        _imports.import_,
    )
    p.add_argument("file", metavar="FILE", help="the file, or '-' to read stdin")
    p.add_argument(
        "--format",
        choices=_sessions.IMPORTS,
        help="the file's format, as srt export names it (default: recognised from its shape)",
    )
    p.add_argument(
        "--name",
        type=nonempty,
        help="the new session's name (default: the file name without its extension)",
    )
    p.add_argument(
        "--extra-keys",
        choices=_import_keys.MODES,
        help="what to do with a message's top-level keys that are not a message's (id, "
        "created_at, model...): refuse the file (the default), move them into the "
        "message's metadata, or drop them",
    )
    p.add_argument(
        "--from",
        dest="source",
        choices=_imports.SOURCES,
        help="import FILE, a store of another tool: llm-logs (llm's logs.db), "
        "agents-sqlite (an Agents SDK SQLiteSession file) or langgraph (a SqliteSaver file)",
    )

    p = command("search", "full-text search over the messages of every session", _maint.search)
    p.add_argument("text", metavar="TEXT", nargs="*", help="the words to find (all of them)")
    p.add_argument(
        "--limit",
        type=_positive,
        metavar="N",
        help=f"show at most this many (default: {_maint.SEARCH_LIMIT})",
    )
    p.add_argument(
        "--fts",
        action="store_true",
        help='read TEXT as an SQLite FTS5 query (OR, NOT, NEAR, "phrases", prefix*)',
    )
    p.add_argument("--json", action="store_true", help="print the hits as JSON")
    p.add_argument(
        "--drop-index",
        action="store_true",
        help="remove the search index (the first search built it) and its triggers; "
        "the next search builds it again",
    )
    p.set_defaults(check=_maint.search_usage)

    p = command(
        "stats", "requests, tokens, cache hits, cost and savings, from the ledger", _stats.stats
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "name",
        metavar="NAME",
        nargs="?",
        type=nonempty,
        help="the session (default: the one used last)",
    )
    which.add_argument("--all", action="store_true", help="every session's requests")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    which.add_argument(
        "--tenant",
        metavar="TENANT",
        type=nonempty,
        help="the requests of one gateway tenant (srt serve)",
    )

    p = command(
        "log",
        "list a session's earlier heads (left by rewind, edit, ...), or restore one",
        _log.log,
    )
    p.add_argument(
        "name", metavar="NAME", nargs="?", help="the session (default: the one used last)"
    )
    p.add_argument(
        "--restore", metavar="KEY", type=nonempty, help="make the earlier head KEY the head again"
    )
    p.add_argument("--json", action="store_true", help="print the earlier heads as JSON")
    p.set_defaults(check=_log.log_usage)

    p = command("gc", "delete the messages and nodes that no session reaches", _maint.gc)
    p.add_argument(
        "--history-retention",
        type=_log.duration,
        metavar="DURATION",
        help="keep earlier heads this long after they were left (e.g. 7d, 12h, 0; at most "
        "100 years), from now on and for the heads already recorded (default: the "
        "database's setting, 7d)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="count what would be removed; change nothing"
    )
    p.add_argument(
        "--no-secure-delete",
        action="store_true",
        help="do not overwrite freed space with zeros (faster; deleted text may stay in the file)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = command("verify", "check every hash, chain and reference in the database", _maint.verify)
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    command("vacuum", "rebuild the database file without its free space", _maint.vacuum)

    p = command("serve", "run the OpenAI Responses/Conversations gateway", _serve.serve)
    _serve.add_serve(p)
    p = command(
        "copy",
        "copy every session, the ledger and objects into another store (SQLite or PostgreSQL)",
        _maint.copy,
    )
    p.add_argument("src", metavar="SRC", type=_path, help="the store to read: a file or a URL")
    p.add_argument(
        "dest", metavar="DEST", type=_path, help="the store to fill: a file or a URL (created)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = command("backup", "copy the database to a new file while it stays in use", _maint.backup)
    p.add_argument("dest", metavar="DEST", type=_path, help="the new file (never overwritten)")

    p = command("rekey", "encrypt the database under a new key, or decrypt it", _maint.rekey)
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--new-key-file", metavar="PATH", type=_path, help="the new key (as for --key-file)"
    )
    how.add_argument("--decrypt", action="store_true", help="store the database unencrypted")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``srt`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    _output.guard_stdout()
    try:
        args = build_parser().parse_args(argv)
    except OSError as exc:  # printing --help or --version
        return _output.write_failed(exc)
    except SystemExit as exc:
        if exc.code == 0:  # --help, --version: printed, and maybe written only now
            try:
                sys.stdout.flush()
            except OSError as error:
                return _output.write_failed(error)
        raise
    check: Callable[[argparse.Namespace], str | None] | None = getattr(args, "check", None)
    problem = check(args) if check is not None else None
    if problem:
        args.subparser.error(problem)  # exits with status 2, like argparse's own errors
    if args.db is None:
        args.db = default_path()
    if hasattr(args, "text") and isinstance(args.text, list):
        args.text = " ".join(args.text)
    if isinstance(sys.stdout, io.TextIOWrapper):
        # Never fail on a terminal that cannot show a character of a message.
        sys.stdout.reconfigure(errors="backslashreplace")
    run: Run = args.run
    try:
        args.db = file_of(args.db)  # (a ``sqlite:`` URL: the file it names)
        status = run(args) or 0
        sys.stdout.flush()  # here, where a full disk is reported, not at exit
        return status
    except (SrtError, CommandError) as exc:
        print(f"srt: error: {escape_line(str(exc))}", file=sys.stderr)
        return 1
    except OSError as exc:
        # The commands turn every file they open into an SrtError or CommandError that
        # names it: what is left is writing the output (a full disk, a closed stdout, a
        # reader gone away: ``srt show x | head``).
        return _output.write_failed(exc)
    except KeyboardInterrupt:
        return 130
