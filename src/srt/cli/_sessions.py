"""Session commands: db path, ls, show (and --tree), append, request, fork, rewind,
rename, delete, export and import."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from typing import Any

from ..entries import Entry
from ..errors import InvalidMessageError
from ..message import canonicalize
from ..runtime import Runtime
from ..session import Session
from ..store import SessionOverview, TreeNode
from ..wire.convert import to_canonical
from ._common import (
    CommandError,
    clip,
    escape_line,
    escape_text,
    is_url,
    latest_session,
    present,
    print_json,
    print_table,
    read_stdin,
    redact_url,
    refuse_empty,
    runtime,
    when,
    write_bytes,
)

#: The one set of format names of ``srt export``, ``srt import`` and ``srt request``: srt's
#: wire formats (a request body) and two of srt's own: ``jsonl``, one stored message a
#: line, byte for byte, and ``markdown``, a transcript for people (export only).
#: Wire format -> the stand-in model an export names when the ledger names none.
STAND_INS = {
    "openai.chat": "gpt-4o-mini",
    "openai.responses": "gpt-4o-mini",
    "azure.chat": "gpt-4o-mini",
    "azure.responses": "gpt-4o-mini",
    "anthropic.messages": "claude-sonnet-4-5",
    "bedrock.converse": "anthropic.claude-sonnet-4-5-20250929-v1:0",
}
EXPORTS = ("jsonl", "markdown", *sorted(STAND_INS))
IMPORTS = ("jsonl", *sorted(STAND_INS))
#: Formats whose files have the same shape (``srt import`` tells only shapes apart).
_CHAT = ("openai.chat", "azure.chat")
_RESPONSES = ("openai.responses", "azure.responses")
_BLOCKS = ("anthropic.messages", "bedrock.converse")

# -- rendering -------------------------------------------------------------------------


def _part(part: dict[str, Any]) -> str:
    kind = part.get("type")
    if kind == "text":
        return str(part["text"])
    return "[image]" if kind in ("image_url", "image") else f"[{kind}]"


def message_text(message: dict[str, Any]) -> str:
    """The text of a message as a transcript shows it (parts and tool calls in brackets)."""
    content = message.get("content")
    if isinstance(content, list):
        content = "\n".join(_part(p) for p in content)
    lines = [] if content is None or content == "" else [str(content)]
    for call in message.get("tool_calls") or ():
        fn = call.get("function", {})
        lines.append(f"[tool call {fn.get('name')}({fn.get('arguments', '')})]")
    return "\n".join(lines)


def render(message: dict[str, Any], status: str | None = None, replaced: int = 0) -> str:
    """One transcript block, ``role: text``, with control characters escaped; a partial
    reply's status and a compaction summary's span are marked after the role."""
    mark = f" [{status}]" if status else ""
    if replaced:
        mark += f" [summary of {replaced} message{'s' if replaced != 1 else ''}]"
    return escape_text(f"{message['role']}{mark}: " + message_text(message))


def render_entry(entry: Entry, with_replaced: bool = False) -> str:
    """An entry's block; with ``with_replaced``, the messages a summary replaced follow
    it, each line marked with ``│``."""
    block = render(entry.message, entry.status, len(entry.replaced))
    if not with_replaced or not entry.replaced:
        return block
    inner = "\n\n".join(render(m) for m in entry.replaced)
    return block + "\n" + "\n".join("  │ " + line for line in inner.splitlines())


def transcript(rt: Runtime, name: str) -> list[Entry]:
    """The messages of session ``name`` with their status, metadata and compactions."""
    return rt.session(name, create=False).entries()


def session_name(rt: Runtime, args: argparse.Namespace) -> str:
    """``NAME`` if given, else the session used last."""
    name: str | None = args.name
    return name if name is not None else latest_session(rt)


def markdown(name: str, blocks: list[tuple[dict[str, Any], str | None]]) -> str:
    """A transcript for people: a heading per message, its text as it stands."""
    out = [f"# {escape_line(name)}"]
    for message, status in blocks:
        head = str(message["role"])
        if message.get("tool_call_id"):
            head += f" (result of {message['tool_call_id']})"
        if status:
            head += f" [{status}]"
        out.append(f"## {escape_line(head)}")
        text = message_text(message)
        out.append(escape_text(text) if text else "*(no text)*")
    return "\n\n".join(out) + "\n"


# -- db, ls, show ------------------------------------------------------------------------


def db_path(args: argparse.Namespace) -> None:
    if is_url(args.db):
        print(redact_url(args.db))
        return
    print(args.db if args.db == ":memory:" else os.path.abspath(args.db))


def ls(args: argparse.Namespace) -> None:
    if not present(args.db):
        infos: list[SessionOverview] = []
    else:
        with runtime(args) as rt:
            infos = rt.store.overview()
    if args.json:
        print_json([dataclasses.asdict(info) for info in infos])
        return
    rows = [("NAME", "TURNS", "MESSAGES", "TOKENS", "BRANCHES", "LAST USE")]
    rows += [
        (
            escape_line(i.name),
            f"{i.turns:,}",
            f"{i.messages:,}",
            f"{i.tokens:,}",
            str(i.branches),
            when(i.updated),
        )
        for i in infos
    ]
    print_table(rows, right=(1, 2, 3, 4))


def show(args: argparse.Namespace) -> None:
    if args.tree:
        show_tree(args)
        return
    with runtime(args) as rt:
        name = session_name(rt, args)
        if args.json:
            print_json(rt.session(name, create=False).messages())
            return
        blocks = transcript(rt, name)
    if blocks:
        print("\n\n".join(render_entry(e, args.replaced) for e in blocks))


def _one_line(text: str) -> str:
    return escape_line(" ".join(text.split()))


def _label(node: TreeNode, room: int) -> str:
    status = f" [{node.status}]" if node.status else ""
    heads = f"  <- {', '.join(escape_line(h) for h in node.heads)}" if node.heads else ""
    head = f"{node.depth} {node.role}{status}: "
    text = _one_line(node.text) or "[no text]"
    space = max(room - len(head) - len(heads), 10)
    return head + clip(text, space) + heads


def draw_tree(top: TreeNode, width: int) -> list[str]:
    """The tree as lines: a linear run is a column, a branch point indents its branches
    with box-drawing lines, and long runs between branch points are elided."""
    lines: list[str] = []
    stack: list[tuple[TreeNode, str, str]] = [(top, "", "")]
    while stack:
        node, first, rest = stack.pop()
        run = [node]
        while len(node.children) == 1:
            node = node.children[0]
            run.append(node)
        keep = [
            i < 2 or i >= len(run) - 2 or bool(n.heads) or n.status is not None
            for i, n in enumerate(run)
        ]
        prefix = first
        i = 0
        while i < len(run):
            if keep[i]:
                lines.append(prefix + _label(run[i], width - len(prefix)))
                i += 1
            else:
                j = i
                while j < len(run) and not keep[j]:
                    j += 1
                if j - i < 3:  # eliding fewer lines would not shorten anything
                    lines.extend(prefix + _label(n, width - len(prefix)) for n in run[i:j])
                else:
                    lines.append(prefix + f"⋮ {j - i} more messages")
                i = j
            prefix = rest
        kids = node.children
        for k in range(len(kids) - 1, -1, -1):
            last = k == len(kids) - 1
            stack.append(
                (kids[k], rest + ("└─ " if last else "├─ "), rest + ("   " if last else "│  "))
            )
    return lines


def show_tree(args: argparse.Namespace) -> None:
    with runtime(args) as rt:
        name = session_name(rt, args)
        rt.session(name, create=False)  # a missing session is an error
        top = rt.store.tree(name) if rt.path != ":memory:" else None
    if top is None:
        print(f"{escape_line(name)} is empty")
        return
    import shutil  # (here: with bz2, lzma and fnmatch, a few ms of every command)

    width = shutil.get_terminal_size((80, 24)).columns
    print("\n".join(draw_tree(top, max(width, 40))))


# -- editing -----------------------------------------------------------------------------


def append(args: argparse.Namespace) -> None:
    # Bytes from stdin are passed as they are: srt checks the UTF-8 itself.
    content: str | bytes = read_stdin() if args.text == "-" else args.text
    message: dict[str, Any] = {"role": args.role, "content": content}
    if (args.role == "tool") != (args.tool_call_id is not None):
        raise CommandError("--role tool needs --tool-call-id, and only it takes one")
    if args.tool_call_id is not None:
        message["tool_call_id"] = args.tool_call_id
    canonicalize(message)  # refuse a bad message before any file or session is created
    if args.role != "tool":  # (a tool's empty result is a result: a call that printed nothing)
        refuse_empty(content, "the message")
    with runtime(args, create=True) as rt:
        session = rt.session(args.name)
        session.append(message, rebase=True)
        print(len(session))


def request(args: argparse.Namespace) -> None:
    with runtime(args) as rt:
        session = rt.session(args.name, create=False)
        body = session.request(args.format, model=args.model, cache=not args.no_cache_hints)
    write_bytes(body + b"\n")


def fork(args: argparse.Namespace) -> None:
    with runtime(args) as rt:
        child = rt.session(args.name, create=False).fork(args.new, args.at)
        print(len(child))


def rewind(args: argparse.Namespace) -> None:
    with runtime(args) as rt:
        session = rt.session(args.name, create=False)
        session.rewind(args.n)
        print(len(session))


def rename(args: argparse.Namespace) -> None:
    with runtime(args) as rt:
        rt.rename(args.old, args.new)


def delete(args: argparse.Namespace) -> None:
    with runtime(args) as rt:
        rt.delete(args.name)


# -- export and import -------------------------------------------------------------------


def _last_model(session: Session, fmt: str) -> str | None:
    for row in reversed(session.calls()):
        if row["format"] == fmt or row["format"].split(".")[0] == fmt.split(".")[0]:
            return str(row["model"])
    return None


def export_usage(args: argparse.Namespace) -> str | None:
    """What is wrong with ``srt export``'s options together (None: nothing)."""
    if args.model is not None and args.format in ("jsonl", "markdown"):
        return f"--model names the model of a request body, and --format {args.format} has none"
    return None


def export(args: argparse.Namespace) -> None:
    with runtime(args) as rt:
        session = rt.session(args.name, create=False)
        if args.format == "markdown":
            blocks = [
                (e.message, e.status)
                for e in transcript(rt, args.name)
                if e.status is None or args.include_partial
            ]
            write_bytes(markdown(args.name, blocks).encode("utf-8"))
            return
        if args.format == "jsonl":
            data = b"".join(
                body + b"\n"
                for body, entry in zip(
                    session.messages_bytes(), transcript(rt, args.name), strict=True
                )
                if entry.status is None or args.include_partial
            )
            write_bytes(data)
            return
        fmt = args.format
        model = args.model or _last_model(session, fmt) or STAND_INS[fmt]
        body = session.request(fmt, model=model, cache=False, include_partial=args.include_partial)
    write_bytes(body + b"\n")


def _system_blocks(system: Any) -> list[dict[str, Any]]:
    if system is None:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if isinstance(system, list):
        out = []
        for block in system:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                out.append({"role": "system", "content": block["text"]})
            elif not (isinstance(block, dict) and "cachePoint" in block):
                raise CommandError("a system block without text cannot be imported")
        return out
    raise CommandError("the system prompt must be a string or a list of text blocks")


def _plain_text(message: dict[str, Any]) -> dict[str, Any]:
    """A message read from the Anthropic shape, where a single text block and a string
    mean the same: back to the string srt stores (and no empty text beside tool calls)."""
    content = message.get("content")
    if (
        isinstance(content, list)
        and len(content) == 1
        and isinstance(content[0], dict)
        and set(content[0]) == {"type", "text"}
        and content[0]["type"] == "text"
    ):
        message = {**message, "content": content[0]["text"]}
    if message.get("tool_calls") and message.get("content") == "":
        message = {**message, "content": None}
    return message


def _auto_detail(message: dict[str, Any]) -> dict[str, Any]:
    """An image read from the Responses shape, where ``detail: auto`` is the default."""
    content = message.get("content")
    if not isinstance(content, list):
        return message
    parts = []
    for part in content:
        url = part.get("image_url") if isinstance(part, dict) else None
        if isinstance(url, dict) and url.get("detail") == "auto":
            part = {**part, "image_url": {k: v for k, v in url.items() if k != "detail"}}
        parts.append(part)
    return {**message, "content": parts}


def _as_dicts(messages: list[Any]) -> list[dict[str, Any]]:
    return [m.to_dict() if hasattr(m, "to_dict") else dict(m) for m in messages]


def parse_import(data: bytes, fmt: str | None = None) -> list[dict[str, Any]]:
    """Canonical messages from an export in any of the ``srt export`` formats but
    markdown (or a bare JSON list of messages), recognised from its shape; with ``fmt``,
    the shape must be that format's. Empty input, or input without a message, is refused."""
    if not data.strip():
        raise CommandError("the input is empty: there is nothing to import")
    shape, messages = _parse(data)
    if fmt is not None and fmt not in shape:
        raise CommandError(f"the input is not {fmt}: its shape is {' or '.join(shape)}")
    if not messages:
        raise CommandError("the input holds no message: there is nothing to import")
    return messages


def _parse(data: bytes) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    """The formats the input's shape fits, and its messages."""
    try:
        # A byte order mark (Windows editors and PowerShell write one) is not text.
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise CommandError(f"the file is not UTF-8 (byte {exc.start})") from None
    try:
        doc = json.loads(text)
    except RecursionError:
        raise CommandError("the file's JSON is nested too deeply") from None
    except ValueError:
        return ("jsonl",), _json_lines(text)
    if isinstance(doc, list):
        return ("jsonl",), _as_dicts(to_canonical(doc))
    if not isinstance(doc, dict):
        raise CommandError("expected a JSON object, a JSON list or JSON lines")
    if "role" in doc:  # JSON lines with a single message
        return ("jsonl",), _as_dicts(to_canonical(doc))
    if isinstance(doc.get("input"), (list, str)):  # OpenAI Responses
        given = doc["input"]
        items = [{"role": "user", "content": given}] if isinstance(given, str) else given
        out = _system_blocks(doc.get("instructions"))
        return _RESPONSES, out + [_auto_detail(m) for m in _as_dicts(to_canonical(items))]
    if isinstance(doc.get("messages"), list):
        messages = doc["messages"]
        shape = _message_shape(doc)
        if shape == _BLOCKS:  # Anthropic Messages, Bedrock Converse
            out = _system_blocks(doc.get("system"))
            for m in messages:
                out += [_plain_text(c) for c in _as_dicts(to_canonical(m))]
            return shape, out
        return shape, [c for m in messages for c in _as_dicts(to_canonical(m))]
    raise CommandError("no messages found: expected 'messages', 'input' or one message a line")


def _json_lines(text: str) -> list[dict[str, Any]]:
    """The messages of JSON lines, each line numbered in an error. Lines end at ``\\n``
    only: ``str.splitlines`` also ends them at U+2028, U+2029 and U+0085, which JSON
    keeps unescaped inside a string (so ``srt export`` writes them as they are)."""
    out: list[dict[str, Any]] = []
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip():
            out += json_line(number, line)
    return out


def json_line(number: int, line: str) -> list[dict[str, Any]]:
    """The messages of line ``number`` of JSON lines (a message or a list of them), in
    canonical form; an error names the line."""
    try:
        item = json.loads(line)
    except RecursionError:
        raise CommandError(f"line {number}: the JSON is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"the file is neither JSON nor JSON lines: line {number}: {exc.msg} "
            f"(column {exc.colno})"
        ) from None
    except ValueError:  # an integer of more digits than Python converts (4300)
        raise CommandError(f"line {number}: a number has too many digits") from None
    if not isinstance(item, (dict, list)):
        raise CommandError(
            f"line {number}: expected a message (a JSON object), got {_json_kind(item)}"
        )
    try:
        return _as_dicts(to_canonical(item))
    except InvalidMessageError as exc:
        raise InvalidMessageError(f"line {number}: {exc}") from None


def _json_kind(value: Any) -> str:
    """How JSON names a value's type (for an error message)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a string" if isinstance(value, str) else "a number"


def _message_shape(doc: dict[str, Any]) -> tuple[str, ...]:
    """Which formats a body with ``messages`` fits: a top-level ``system``, or blocks of
    Anthropic's or Bedrock's own kinds, mean the blocks formats; a system, developer or
    tool message, or tool calls, mean Chat; plain user and assistant text fits both."""
    if "system" in doc:
        return _BLOCKS
    for m in doc["messages"]:
        kind = _message_kind(m)
        if kind is not None:
            return kind
    return (*_CHAT, *_BLOCKS)


def _message_kind(m: Any) -> tuple[str, ...] | None:
    """The formats one message of ``messages`` says the body is (None: it says nothing)."""
    if not isinstance(m, dict):
        return None
    if m.get("role") in ("system", "developer", "tool") or m.get("tool_calls"):
        return _CHAT
    content = m.get("content")
    for block in content if isinstance(content, list) else ():
        if isinstance(block, dict) and (
            "type" not in block or block["type"] in ("tool_use", "tool_result", "image")
        ):
            return _BLOCKS
    return None
