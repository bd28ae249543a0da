"""``srt import``: an input that is one JSON document (a JSON list of messages or
Responses items, a request body with ``messages`` or ``input``), streamed.

The document's shape needs all of it (a list is Responses input if ANY item is a
Responses item; ``system`` may come after ``messages``; a duplicated key counts once,
its last value), so it is read twice, a chunk at a time: ``scan`` (pass 1) keeps only
the facts that decide the shape, ``batches`` (pass 2) converts the items a batch at a
time. ``Reader`` parses each item with ``json``'s own parser (``raw_decode``), so an
item is what ``json.loads`` makes of it (NaN, big integers, the last of duplicated
keys); only the outer list or object is walked here. Errors name the byte offset and
the item.
"""

from __future__ import annotations

import codecs
import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from typing import IO, Any

from ..errors import InvalidMessageError
from ..wire.convert import detect, to_canonical
from ._common import CommandError
from ._sessions import (
    _BLOCKS,
    _CHAT,
    _RESPONSES,
    _as_dicts,
    _auto_detail,
    _message_kind,
    _plain_text,
    _system_blocks,
)

#: Bytes read at a time (a value longer than the text in hand is read again with twice
#: as much, so a long item costs a few parses, not one per chunk).
CHUNK = 256 << 10
#: Lists read item by item: the top-level list, or these keys of the top-level object.
STREAMED = ("messages", "input")

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
#: An error this close to the end of the text in hand may be the text's end, not the
#: document's ("Expecting value" in a cut ``Infinity``, a cut ``\\ud83d\\ude00``).
_NEAR_END = 32

#: What ``walk`` yields: ``("list", key, None)`` where a streamed list starts (``key``
#: None: the top-level list), ``("item", index, value)`` for each of its items, and
#: ``("value", key, value)`` for any other value (``key`` None: the document is one).
Event = tuple[str, Any, Any]


class Reader:
    """The text of a stream, decoded from UTF-8 a chunk at a time, with a cursor."""

    def __init__(
        self, stream: IO[bytes], source: str, chunk: int = CHUNK, most: int | None = None
    ) -> None:
        self.stream, self.source, self.chunk = stream, source, chunk
        self.most = most  # the most characters one value may take (None: no bound)
        self.buf, self.pos, self.eof = "", 0, False
        self.read_bytes = 0  # bytes read from the stream
        self.dropped = 0  # bytes of the text dropped from ``buf``
        self.pending = b""  # an incomplete UTF-8 sequence at the end of what was read
        self.at = ""  # where the cursor is, for an error (" in item 3 of 'messages'")

    def more(self, size: int) -> None:
        """Drop the text before the cursor and read ``size`` more bytes."""
        if self.pos:
            done = self.buf[: self.pos]
            self.dropped += len(done) if done.isascii() else len(done.encode("utf-8"))
            self.buf, self.pos = self.buf[self.pos :], 0
        try:
            data = self.stream.read(size)
        except OSError as exc:
            raise CommandError(f"cannot read {self.source}: {exc.strerror or exc}") from None
        start = self.read_bytes - len(self.pending)
        self.read_bytes += len(data)
        self.eof = not data
        try:
            text, used = codecs.utf_8_decode(self.pending + data, "strict", self.eof)
        except UnicodeDecodeError as exc:
            raise CommandError(f"the file is not UTF-8 (byte {start + exc.start})") from None
        self.pending = (self.pending + data)[used:]
        if start == 0 and text.startswith("\ufeff"):  # a byte order mark is not text
            text, self.dropped = text[1:], 3
        self.buf += text

    def peek(self) -> str:
        """The character after any whitespace ('' at the end)."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if self.eof:
                return ""
            self.more(self.chunk)

    def value(self) -> Any:
        """The JSON value after the cursor, as ``json.loads`` gives it."""
        self.peek()
        size = self.chunk
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                cut = exc.msg.startswith("Unterminated string") or (
                    exc.pos >= len(self.buf) - _NEAR_END
                )
                if self.eof or not cut:
                    raise self.error(exc.msg, exc.pos) from None
            except RecursionError:
                raise CommandError(f"the file's JSON is nested too deeply{self.where()}") from None
            except ValueError:  # an integer of more digits than Python converts (4300)
                raise CommandError(f"a number has too many digits{self.where()}") from None
            else:
                if end < len(self.buf) or self.eof:  # (a number may go on in the next chunk)
                    self.pos = end
                    return value
            held = len(self.buf) - self.pos
            if self.most is not None and held > self.most:
                raise CommandError(
                    f"a value of the file is over {self.most} characters{self.where()}: "
                    "srt import reads one message whole, and refuses one this long"
                )
            self.more(size)
            size = max(size, 2 * len(self.buf))
            if self.most is not None:  # (never far past the bound: no more is read then)
                size = min(size, self.most + self.chunk - len(self.buf) + self.pos)

    def expect(self, char: str, message: str) -> None:
        if self.peek() != char:
            raise self.error(message, self.pos)
        self.pos += 1

    def offset(self) -> int:
        """About how far into the input the cursor is (bytes, counting text as ASCII)."""
        return self.dropped + self.pos

    def where(self, pos: int | None = None) -> str:
        pos = self.pos if pos is None else pos
        head = self.buf[:pos]
        return f" (byte {self.dropped + len(head.encode('utf-8'))}{self.at})"

    def error(self, message: str, pos: int) -> CommandError:
        return CommandError(f"the file is neither JSON nor JSON lines: {message}{self.where(pos)}")


def _items(r: Reader, key: str | None) -> Iterator[Event]:
    """The items of the list whose ``[`` the cursor has passed."""
    yield ("list", key, None)
    if r.peek() == "]":
        r.pos += 1
        return
    index = 0
    while True:
        r.at = f", item {index} of " + (f"{key!r}" if key else "the list")
        yield ("item", index, r.value())
        index += 1
        if r.peek() == "]":
            r.pos += 1
            r.at = ""
            return
        r.expect(",", "Expecting ',' delimiter")


def walk(r: Reader) -> Iterator[Event]:
    """The document's parts, in order (``Event``)."""
    first = r.peek()
    if first == "[":
        r.pos += 1
        yield from _items(r, None)
    elif first == "{":
        r.pos += 1
        more = r.peek() != "}"
        while more:
            if r.peek() != '"':
                raise r.error("Expecting property name enclosed in double quotes", r.pos)
            key = r.value()
            r.expect(":", "Expecting ':' delimiter")
            if key in STREAMED and r.peek() == "[":
                r.pos += 1
                yield from _items(r, key)
            else:
                yield ("value", key, r.value())
            more = r.peek() == ","
            if more:
                r.pos += 1
        r.expect("}", "Expecting ',' delimiter")
    elif first == "":
        raise CommandError("the input is empty: there is nothing to import")
    else:
        yield ("value", None, r.value())
    if r.peek() != "":
        raise r.error("Extra data", r.pos)


@dataclasses.dataclass
class Facts:
    """What decides how one streamed list converts (of every item, in ``detect``'s order)."""

    not_object: str | None = None  # the error for the first item that is not an object
    error: InvalidMessageError | None = None  # the first error ``detect`` raises
    responses: bool = False  # some item is a Responses item
    kind: tuple[str, ...] | None = None  # the first item's that tells (``_message_kind``)

    def see(self, index: int, item: Any) -> None:
        if not isinstance(item, dict):
            if self.not_object is None:
                kind = type(item).__name__
                self.not_object = (
                    f"item {index}: a list of messages or items holds a value of type {kind}"
                )
            return
        if self.kind is None:
            self.kind = _message_kind(item)
        if self.error is None:
            try:
                self.responses = detect(item) == "responses" or self.responses
            except InvalidMessageError as exc:
                self.error = InvalidMessageError(f"item {index}: {exc}")

    def check(self) -> None:
        """Raise what ``detect`` of the whole list raises."""
        if self.not_object is not None:
            raise InvalidMessageError(self.not_object)
        if self.error is not None:
            raise self.error


@dataclasses.dataclass
class Plan:
    """What pass 1 learned: the shape, the list to convert and how."""

    shape: tuple[str, ...]
    key: str | None  # the list's key (None: the top-level list)
    occurrence: int  # which list under ``key`` (the last one: ``json`` keeps the last)
    convert: Callable[[list[Any]], list[dict[str, Any]]]
    system: list[dict[str, Any]]  # messages before the list's (a system prompt)
    responses: bool  # cut batches only where a Responses assistant turn cannot go on


def _responses_list(items: list[Any]) -> list[dict[str, Any]]:
    from ..wire import openai_responses

    return _as_dicts(openai_responses.to_canonical(items))


def _plain_list(items: list[Any]) -> list[dict[str, Any]]:
    return [c for m in items for c in _as_dicts(to_canonical(m))]


def _blocks_list(items: list[Any]) -> list[dict[str, Any]]:
    return [_plain_text(c) for m in items for c in _as_dicts(to_canonical(m))]


def _input_list(convert: Callable[[list[Any]], list[dict[str, Any]]]) -> Callable[..., Any]:
    return lambda items: [_auto_detail(m) for m in convert(items)]


def scan(r: Reader) -> Plan | None:
    """Pass 1: the document's ``Plan`` (None: a single message, which is read whole)."""
    facts: dict[Any, Facts] = {}
    counts: dict[Any, int] = {}
    values: dict[str, Any] = {}  # each key's last whole value (not a streamed list's)
    top = None
    current = Facts()
    for event, key, value in walk(r):
        if event == "item":
            current.see(key, value)
        elif event == "list":
            top = "list" if key is None else "object"
            current = facts[key] = Facts()
            counts[key] = counts.get(key, 0) + 1
            values.pop(key, None)
        else:
            if key is None:
                raise CommandError("expected a JSON object, a JSON list or JSON lines")
            top = "object"
            values[key] = value
            facts.pop(key, None)
    keys = set(values) | set(facts)
    if top == "list":
        facts[None].check()
        convert = _responses_list if facts[None].responses else _plain_list
        return Plan(("jsonl",), None, 1, convert, [], facts[None].responses)
    if "role" in keys:
        return None  # (one message: ``to_canonical`` of all of it)
    system = values.get("system")
    if "input" in facts or isinstance(values.get("input"), str):
        instructions = _system_blocks(values.get("instructions"))
        if "input" not in facts:
            given = [{"role": "user", "content": values["input"]}]
            out = instructions + _input_list(_plain_list)(given)
            return Plan(_RESPONSES, "", 0, _plain_list, out, False)
        found = facts["input"]
        found.check()
        convert = _responses_list if found.responses else _plain_list
        return Plan(
            _RESPONSES,
            "input",
            counts["input"],
            _input_list(convert),
            instructions,
            found.responses,
        )
    if "messages" in facts:
        if "system" in keys:
            return Plan(
                _BLOCKS, "messages", counts["messages"], _blocks_list, _system_blocks(system), False
            )
        shape = facts["messages"].kind or (*_CHAT, *_BLOCKS)
        convert = _blocks_list if shape == _BLOCKS else _plain_list
        return Plan(shape, "messages", counts["messages"], convert, [], False)
    raise CommandError("no messages found: expected 'messages', 'input' or one message a line")


def _kind(item: Any) -> Any:
    """A Responses item's type (as the converter reads it)."""
    return item.get("type", "message" if "role" in item else None)


def _may_cut(before: Any, item: Any) -> bool:
    """Whether a batch of Responses items may end before ``item``: the converter makes
    one assistant message of reasoning items, an assistant message item and function
    calls, so not inside such a run."""
    kind, previous = _kind(item), _kind(before)
    if kind == "function_call_output" or (kind == "message" and item.get("role") != "assistant"):
        return True
    return bool(previous != "reasoning" and kind != "function_call")


def batches(r: Reader, plan: Plan, size: int) -> Iterator[list[dict[str, Any]]]:
    """Pass 2: the messages of the document, converted about ``size`` bytes of items at a
    time (the first batch starts with ``plan.system``)."""
    out = list(plan.system)
    items: list[Any] = []
    start = r.offset()
    seen: dict[Any, int] = {}
    active = False
    for event, key, value in walk(r):
        if event == "list":
            seen[key] = seen.get(key, 0) + 1
            active = key == plan.key and seen[key] == plan.occurrence
        elif event == "value":
            active = False
        elif active:
            full = items and r.offset() - start >= size
            if full and (not plan.responses or _may_cut(items[-1], value)):
                out += plan.convert(items)
                if out:
                    yield out
                out, items, start = [], [], r.offset()
            items.append(value)
    out += plan.convert(items) if items else []
    if out:
        yield out
