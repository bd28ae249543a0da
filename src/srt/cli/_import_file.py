"""``srt import FILE``: a file made by ``srt export`` (or stdin) into a new session.

JSON lines (``jsonl``, what ``srt export`` writes by default) are read, checked and
appended a batch at a time (about ``BATCH_BYTES`` of input each), so memory holds one
batch, not the file. The input is JSON lines when its first lines say so, as the whole
file would: a first line that is a message or a list of them, or any JSON value
followed by another line. Anything else is one JSON document (a wire format's request
body, a JSON list), read whole by ``_sessions.parse_import`` up to ``WHOLE_BYTES``,
else streamed in two passes (``_import_doc``), as is a first line longer than
``BATCH_BYTES`` with nothing after it (a one-line document).

The batches go into a scratch session (``srt-import-<hex>-NAME``), renamed ``NAME`` in
one statement after the last line: a bad line, any other error or Ctrl-C deletes it
(the messages already written stay stored, unreachable, until ``srt gc``), and a
process killed mid-import leaves that scratch session, never part of a file under
``NAME``; a later import or ``srt gc`` deletes it once its owner is provably dead
(``_scratch``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from .. import _core
from .._chain import Prepared, prepare
from .._shared import MAX_NAME_CHARS, check_name
from ..errors import InvalidMessageError, SessionExistsError, SrtError
from ..message import DEFAULT_MAX_MESSAGE_BYTES
from ..runtime import Runtime
from ..store import NewNode
from . import _import_doc, _import_keys
from ._common import CommandError, escape_line, read_stdin, runtime
from ._scratch import SCRATCH, forget, reap, record
from ._sessions import json_line, parse_import

#: Input read between two appends (the lines' bytes; the batch ends at the line that
#: reaches it): 4 MiB keeps a few thousand messages in memory and one commit per batch.
BATCH_BYTES = 4 << 20
#: A JSON document up to this size is read whole; a larger one is streamed.
WHOLE_BYTES = BATCH_BYTES
#: The most text one message of a JSON document (or a one-line file) may take: it is
#: read whole, so a longer one is refused before it is (its bytes, and the string and
#: objects made of them, were 3x its size in memory). The store refuses a message over
#: ``DEFAULT_MAX_MESSAGE_BYTES`` of compact JSON; JSON text is longer only by
#: whitespace and escapes (``json.dumps``'s ``\\uXXXX`` takes at most 3x a character's
#: UTF-8 bytes), so 4x that refuses no message the store would take but one written
#: mostly in whitespace or escaped ASCII.
MESSAGE_TEXT = 4 * DEFAULT_MAX_MESSAGE_BYTES

#: One line of input: its number (from 1), the offset of its first byte, its bytes.
Line = tuple[int, int, bytes]
#: Messages with the number of the line each came from (``None``: a JSON document).
Batch = list[tuple[int | None, dict[str, Any]]]


class LineTooLong(CommandError):
    """A line of JSON lines over ``MESSAGE_TEXT`` bytes: refused once that many are read
    (a line is parsed whole), not after reading all of it."""

    def __init__(self, number: int, source: str) -> None:
        self.number = number
        super().__init__(
            f"line {number} of {source} is over {MESSAGE_TEXT} bytes: srt import reads a "
            f"line of JSON lines whole, and refuses one this long (the store takes no "
            f"message over {DEFAULT_MAX_MESSAGE_BYTES} bytes)"
        )


def _rest(stream: IO[bytes], source: str, number: int, got: bytes = b"") -> bytes:
    """Line ``number`` of ``stream`` (``got``: its start, already read), read no further
    than ``MESSAGE_TEXT`` bytes and its ``\\n``: ``LineTooLong`` if it goes on."""
    if len(got) > MESSAGE_TEXT:
        raise LineTooLong(number, source)
    raw = got + _read(stream, source, MESSAGE_TEXT + 1 - len(got))
    if len(raw) > MESSAGE_TEXT and not (len(raw) == MESSAGE_TEXT + 1 and raw.endswith(b"\n")):
        raise LineTooLong(number, source)
    return raw


def _lines(stream: IO[bytes], source: str, number: int = 0, offset: int = 0) -> Iterator[Line]:
    """The lines of ``stream`` as they are read, each ending at ``\\n`` (numbered after
    ``number``, the first at byte ``offset``); one over ``MESSAGE_TEXT`` bytes is refused
    (``LineTooLong``) once that many are read."""
    while raw := _rest(stream, source, number + 1):
        number += 1
        yield number, offset, raw
        offset += len(raw)


def _text(line: Line) -> str:
    """A line's text (a byte order mark opening the input is not text)."""
    number, offset, raw = line
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CommandError(f"the file is not UTF-8 (byte {offset + exc.start})") from None
    return text.removeprefix("\ufeff") if number == 1 else text


def _says(line: Line, seen: bool) -> str:
    """What one line says of the input: ``jsonl``, ``document``, ``blank``, or ``value``
    (a JSON value but no message: JSON lines if another line follows)."""
    try:
        text = _text(line)
    except CommandError:
        return "document"  # (read as one, it is refused as the whole file is)
    if not text.strip():
        return "blank"
    if seen:
        return "jsonl"  # a second value: the whole file is no JSON document
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return "document"  # not one line: a document over several lines, or an error
    if isinstance(value, list) or (isinstance(value, dict) and "role" in value):
        return "jsonl"
    return "value"


def _is_json_lines(head: list[Line], lines: Iterator[Line]) -> bool:
    """Whether the input is JSON lines, reading only as far as needed (into ``head``)."""
    seen = False
    for line in lines:
        head.append(line)
        says = _says(line, seen)
        if says in ("jsonl", "document"):
            return says == "jsonl"
        seen = seen or says == "value"
    return False


def _detect(stream: IO[bytes], source: str) -> tuple[list[Line], str]:
    """The first lines (read into the returned list) and what the input is: ``jsonl``,
    ``document``, or ``long``: its first line that is not blank is longer than
    ``BATCH_BYTES`` (its start is the list's last line), so it was not read whole."""
    head: list[Line] = []
    number = offset = 0
    seen = False
    while True:
        raw = _read(stream, source, BATCH_BYTES)
        if not raw:
            return head, "document"
        if len(raw) == BATCH_BYTES and not raw.endswith(b"\n"):
            if not seen:
                head.append((number + 1, offset, raw))
                return head, "long"
            raw = _rest(stream, source, number + 1, raw)  # (a second value: JSON lines)
        number += 1
        head.append((number, offset, raw))
        offset += len(raw)
        says = _says(head[-1], seen)
        if says in ("jsonl", "document"):
            return head, says
        seen = seen or says == "value"


def _read(stream: IO[bytes], source: str, limit: int = -1) -> bytes:
    """A line of ``stream`` (at most ``limit`` bytes of it)."""
    try:
        return stream.readline(limit)
    except OSError as exc:
        raise CommandError(f"cannot read {source}: {exc.strerror or exc}") from None


def _line_batches(lines: Iterable[Line]) -> Iterator[Batch]:
    """The messages of JSON lines, about ``BATCH_BYTES`` of input at a time."""
    batch: Batch = []
    size = 0
    for line in lines:
        text = _text(line)
        if not text.strip():
            continue
        batch += [(line[0], m) for m in json_line(line[0], text)]
        size += len(line[2])
        if size >= BATCH_BYTES and batch:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def checked(
    batch: Batch, rt: Runtime | None = None, keys: str | None = None, start: int = 0
) -> list[Prepared]:
    """Each message as ``rt`` stores it (``_chain.prepare``, as a session's append: its
    redaction hook, size limit and hashing; without ``rt``, a check with the defaults),
    its extra keys handled as ``keys`` (``--extra-keys``) says; an invalid message names
    its line (a JSON document's: an extra key names its place among the messages,
    ``start`` before the batch)."""
    digest: Callable[[bytes], bytes] = _core.digest
    limit, hook = DEFAULT_MAX_MESSAGE_BYTES, None
    if rt is not None:
        limit, hook, digest = rt.max_message_bytes, rt.redact, rt.store.hashing.digest
    out: list[Prepared] = []
    for number, message in batch:
        try:
            message = _import_keys.apply(message, keys)
        except InvalidMessageError as exc:
            where = f"line {number}" if number is not None else f"message {start + len(out) + 1}"
            raise InvalidMessageError(f"{where}: {exc}") from None
        try:
            out += prepare([message], limit, hook, digest)
        except InvalidMessageError as exc:
            if number is None:
                raise
            raise InvalidMessageError(f"line {number}: {exc}") from None
    return out


def write(rt: Runtime, name: str, batches: Iterable[Batch], keys: str | None = None) -> int:
    """Append ``batches`` to a scratch session, then rename it ``name``; the number of
    messages. ``keys``: ``--extra-keys``. On any failure the scratch session is deleted."""
    store = rt.store
    taken = f"a session named {name!r} already exists; pick another name with --name"
    if store.get_session(name) is not None:
        raise CommandError(taken)
    reap(store)  # (the scratch sessions of imports killed on this host)
    scratch = f"{SCRATCH}{secrets.token_hex(4)}-{name}"[:MAX_NAME_CHARS]
    record(store, scratch)  # (first: a process killed from here on leaves it named)
    try:
        row = store.create_session(scratch, None, exist_ok=False, limit=rt.max_sessions)
    except BaseException:
        with contextlib.suppress(SrtError):
            forget(store, scratch)
        raise
    hashing = store.hashing
    head: int | None = None
    depth, prefix = 0, _core.ROOT
    try:
        for batch in batches:
            prepared = checked(batch, rt, keys, depth)
            prefixes = hashing.chain_many(prefix, [p.hash for p in prepared])
            nodes = [
                NewNode(h, body, p, meta)
                for (h, body, meta), p in zip(prepared, prefixes, strict=True)
            ]
            ids = store.append(row.id, head, head, depth, nodes, parent_prefix=prefix)
            head, depth, prefix = ids[-1], depth + len(ids), prefixes[-1]
        try:
            rt.rename(scratch, name)
        except SessionExistsError:  # (created meanwhile)
            raise CommandError(taken) from None
    except BaseException:
        with contextlib.suppress(SrtError):
            rt.delete(scratch)
        with contextlib.suppress(SrtError):
            forget(store, scratch)
        raise
    with contextlib.suppress(SrtError):  # (left: a later reap removes it, nothing else)
        forget(store, scratch)
    return depth


def _stdin() -> IO[bytes]:
    stream = sys.stdin
    if stream is None:
        raise CommandError("cannot read stdin: it is closed")
    buffer = getattr(stream, "buffer", None)
    return buffer if buffer is not None else io.BytesIO(read_stdin())


def _whole(stream: IO[bytes], source: str, fmt: str | None) -> Batch:
    """The messages of an input that is one JSON document, read whole."""
    try:
        try:
            data = stream.read()
        except OSError as exc:
            raise CommandError(f"cannot read {source}: {exc.strerror or exc}") from None
        messages = parse_import(data, fmt)
    except MemoryError:
        raise CommandError(
            f"{source} is one JSON message, which srt import reads whole, and it does not "
            "fit in memory"
        ) from None
    return [(None, m) for m in messages]


@contextlib.contextmanager
def _rewound(head: list[Line], stream: IO[bytes], source: str) -> Iterator[IO[bytes]]:
    """The input from its start, to read more than once: ``stream`` sought back, or
    (stdin, a pipe) a copy of it, in memory up to ``BATCH_BYTES`` and then in an
    unnamed temporary file (mode 0600, deleted when closed)."""
    read = sum(len(line[2]) for line in head)
    if stream.seekable():
        stream.seek(stream.tell() - read)
        yield stream
        return
    with tempfile.SpooledTemporaryFile(max_size=BATCH_BYTES) as copy:
        copy.writelines(line[2] for line in head)
        try:
            shutil.copyfileobj(stream, copy, _import_doc.CHUNK)
        except OSError as exc:
            raise CommandError(f"cannot read {source}: {exc.strerror or exc}") from None
        copy.seek(0)
        yield copy


def _alone(stream: IO[bytes], source: str) -> bool:
    """Whether the first line of ``stream`` is all of it but blank lines (read in
    chunks; a blank line is what ``_says`` calls one, and not UTF-8 is not blank)."""
    piece = b""
    while (piece := _read(stream, source, _import_doc.CHUNK)) and not piece.endswith(b"\n"):
        pass
    while piece := _read(stream, source, _import_doc.CHUNK):
        try:
            if piece.decode("utf-8").strip():
                return False
        except UnicodeDecodeError:
            return False
    return True


def _document(head: list[Line], stream: IO[bytes], source: str, fmt: str | None) -> Iterator[Batch]:
    """The messages of an input that is one JSON document (``stream`` from its start):
    up to ``WHOLE_BYTES``, or a single message, read whole; else streamed, in two passes
    (``_import_doc``). A first line too long to be read whole (``head``'s last, cut)
    followed by more lines is read as before: JSON lines if that line is JSON."""
    start = stream.tell()
    too_long: LineTooLong | None = None
    if _cut(head[-1]) and not _alone(stream, source):
        stream.seek(start)
        first: list[Line] = []
        lines = _lines(stream, source)
        try:
            if _is_json_lines(first, lines):
                _jsonl_only(fmt)
                return _line_batches(itertools.chain(first, lines))
        except LineTooLong as exc:
            if exc.number != head[-1][0]:
                raise  # (after a JSON value: JSON lines)
            too_long = exc  # (JSON lines or one document: read as one, it tells)
    size = stream.seek(0, os.SEEK_END) - start
    stream.seek(start)
    if size <= WHOLE_BYTES and too_long is None:
        return iter([_whole(stream, source, fmt)])
    reader = _import_doc.Reader(stream, source, _import_doc.CHUNK, MESSAGE_TEXT)
    try:
        plan = _import_doc.scan(reader)
    except CommandError as exc:
        if too_long is None:
            raise
        raise CommandError(f"{too_long}; read as one JSON document, {exc}") from None
    stream.seek(start)
    if plan is None:
        if size > MESSAGE_TEXT:
            raise CommandError(
                f"{source} is one message of {size} bytes: srt import reads one message "
                f"whole, and refuses one over {MESSAGE_TEXT} bytes of JSON (the store "
                f"takes none over {DEFAULT_MAX_MESSAGE_BYTES} bytes)"
            )
        return iter([_whole(stream, source, fmt)])
    if fmt is not None and fmt not in plan.shape:
        raise CommandError(f"the input is not {fmt}: its shape is {' or '.join(plan.shape)}")
    reader = _import_doc.Reader(stream, source, _import_doc.CHUNK, MESSAGE_TEXT)
    return ([(None, m) for m in b] for b in _import_doc.batches(reader, plan, BATCH_BYTES))


def _cut(line: Line) -> bool:
    return len(line[2]) == BATCH_BYTES and not line[2].endswith(b"\n")


def _jsonl_only(fmt: str | None) -> None:
    if fmt not in (None, "jsonl"):
        raise CommandError(f"the input is not {fmt}: its shape is jsonl")


def _import(args: argparse.Namespace, stream: IO[bytes], source: str, name: str) -> None:
    with contextlib.ExitStack() as stack:
        head, kind = _detect(stream, source)
        batches: Iterator[Batch]
        if kind == "jsonl":
            _jsonl_only(args.format)
            last = head[-1]
            lines = _lines(stream, source, last[0], last[1] + len(last[2]))
            batches = _line_batches(itertools.chain(head, lines))
        elif not head:
            batches = iter([_whole(stream, source, args.format)])  # (empty: refused)
        else:
            whole = stack.enter_context(_rewound(head, stream, source))
            batches = _document(head, whole, source, args.format)
        # The first batch (all of a file up to BATCH_BYTES) is read and checked before
        # the database is opened: a bad small file creates nothing, not even the file.
        first = next(batches, None)
        if first is None:
            raise CommandError("the input holds no message: there is nothing to import")
        checked(first, None, args.extra_keys)
        check_name(name)
        with runtime(args, create=True) as rt:
            count = write(rt, name, itertools.chain([first], batches), args.extra_keys)
    print(f"{escape_line(name)}: {count} messages")


def import_file(args: argparse.Namespace) -> None:
    if args.file == "-":
        _import(args, _stdin(), "stdin", args.name or "imported")
        return
    try:
        stream = open(args.file, "rb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise CommandError(f"cannot read {args.file}: {exc.strerror}") from None
    with stream:
        name = args.name or os.path.splitext(os.path.basename(args.file))[0]
        _import(args, stream, args.file, name)
