"""The contract every wire format implements, and the helpers they share.

A request body is assembled as::

    head + glue(None, r0) + frag(m0) + glue(r0, r1) + frag(m1) + ... + close(r_last) + tail

where ``frag(m)`` is one message's fragment (serialized once per message hash and
format, then reused as frozen bytes), ``glue`` depends only on the wire roles of
two neighbouring messages (so it is stable as history grows), and ``head``/``tail``
come from the envelope (model, system area, tools, parameters). Formats that put
system messages outside the message list (Anthropic, Bedrock) receive the leading
system and developer messages as ``system`` fragments in the envelope instead.

Everything here is pure: no I/O, no SQL.
"""

from __future__ import annotations

import copy
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from .._types import Reply, Usage
from ..errors import (
    ConfigError,
    ProviderContextOverflowError,
    ProviderError,
    ProviderResponseError,
    RateLimitError,
    SrtError,
    UnsupportedFeatureError,
)
from ..message import SENT_KEYS, TOOL_KEYS, dumps
from ..tokens import GENERIC_ESTIMATE, Tokenizer
from .overflow import RULES, Overflow, from_stream_event
from .sse import ServerSentEvent, SSEDecoder, sse_event

__all__ = [
    "TEXT_ROLES",
    "CacheRules",
    "Event",
    "Frag",
    "SSEStream",
    "StreamDecoder",
    "Target",
    "TextFrags",
    "WireFormat",
    "check_model",
    "check_tool_name",
    "dumps",
    "loads_arguments",
    "params_tail",
    "reply_parts",
    "stream_error",
    "text_of",
    "usage_or_none",
]

#: A stream's event as its decoder reads it (an SSE event, an event-stream frame).
E = TypeVar("E")

#: One event of a streamed reply, before framing: (event name or None, JSON data).
Event = tuple["str | None", Any]


@dataclass(frozen=True)
class Target:
    """Who a request is for: decides which provider artifacts are replayed."""

    provider: str
    model: str


def loads_arguments(arguments: str, fmt: str) -> Any:
    """A tool call's JSON ``arguments`` string as a value, for formats that send objects."""
    try:
        return json.loads(arguments) if arguments else {}
    except ValueError:
        raise UnsupportedFeatureError(
            fmt, "tool call arguments that are not valid JSON (this format sends an object)"
        ) from None


def text_of(content: Any, fmt: str, what: str) -> str:
    """Content that must be plain text in ``fmt`` (e.g. a system prompt in Bedrock)."""
    if isinstance(content, str):
        return content
    parts = []
    for p in content or []:
        if p.get("type") != "text":
            raise UnsupportedFeatureError(fmt, f"{p.get('type')} parts in {what}")
        parts.append(p["text"])
    return "".join(parts)


#: A message's keys that a format with no place for them leaves out (noted) rather than
#: refuses: an assistant's citations (``annotations``), the reasoning text an
#: OpenAI-compatible server returned (valid for the model that wrote it, as artifacts
#: are), and a tool result's error mark (``is_error``: the OpenAI formats have none, the
#: result's text says so; an agent loop must work on every provider).
DROPPABLE = frozenset({"annotations", "reasoning", "reasoning_content", *TOOL_KEYS})


def left_out(msg: dict[str, Any], keys: frozenset[str], fmt: str) -> str | None:
    """Removes from ``msg`` (a canonical message, in place) the top-level keys that are
    not among ``keys`` (what format ``fmt`` sends) and that it leaves out rather than
    refuses: ``DROPPABLE``'s, and any that is no message key at all (stored before srt
    refused unknown keys, ``message.ASSISTANT_KEYS``). The note naming them, if any."""
    gone = [
        k
        for k in msg
        if k not in keys and k != "artifacts" and (k in DROPPABLE or k not in SENT_KEYS)
    ]
    if not gone:
        return None
    for k in gone:
        del msg[k]
    shown = ", ".join(repr(k if len(k) <= 40 else k[:40] + "...") for k in gone)
    known = all(k in SENT_KEYS or k in DROPPABLE for k in gone)
    old = "" if known else " (stored before srt refused unknown keys)"
    return f"left out the message's {shown} field(s){old}: {fmt} has no place for them"


def params_tail(params: dict[str, Any], reserved: frozenset[str]) -> bytes:
    """``,"k":v`` for each request parameter, in the caller's order."""
    clash = reserved.intersection(params)
    if clash:
        raise ConfigError(f"request parameters may not set {sorted(clash)}")
    try:
        return b"".join(b"," + dumps(k) + b":" + dumps(v) for k, v in params.items())
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"request parameters are not valid JSON: {exc}") from None


@dataclass(frozen=True, slots=True)
class Frag:
    """One message rendered for one format and target.

    ``kind`` is ``"system"`` for a message that goes to the envelope's system area
    (formats with ``splits_system``), else ``"message"``. ``note`` records anything
    the rendering left out on purpose (e.g. provider artifacts for another model).
    """

    kind: str
    role: str
    data: bytes
    note: str | None = None
    #: Content blocks in ``data`` (what Anthropic's 20-block lookback counts).
    blocks: int = 1


#: The roles of a plain text message, in the order of ``TextFrags``' items (and of the
#: codes ``_core.text_frags`` gives them).
TEXT_ROLES = ("system", "developer", "user", "assistant")


@dataclass(frozen=True)
class TextFrags:
    """How a format renders a plain text message, ``{"role": r, "content": "<text>"}``
    with nothing else, without parsing it: for each of ``TEXT_ROLES`` the fragment's
    ``kind`` and wire ``role``, and the ``wrap`` (prefix, suffix) around the text's JSON
    string, as its canonical bytes hold it (``None``: the fragment is the canonical body
    itself). Such a fragment has one block and no note. ``empty``: an empty text, or one of
    whitespace alone, renders so too (else it takes ``render``, which may refuse it).
    """

    kinds: tuple[str, ...]
    roles: tuple[str, ...]
    wraps: tuple[tuple[bytes, bytes] | None, ...]
    empty: bool
    #: The codes (indexes in ``TEXT_ROLES``) whose kind is ``"system"``.
    system_codes: bytes = b""


@dataclass(frozen=True)
class CacheRules:
    """How a provider's prompt cache works, as the cache planner and the explain need it.

    ``min_tokens``: the smallest cached prefix, fixed (OpenAI's 1,024), or ``None``: per
    model (``srt.cache``'s table). ``idle_ttl_s``: how long an entry lives idle, fixed
    (OpenAI's in-memory retention, 5-10 minutes), or ``None``: the breakpoints' TTLs.
    ``key_param``: the body parameter that routes requests to one cache
    (``prompt_cache_key``), set from the conversation's root when the caller did not.
    """

    min_tokens: int | None = None
    idle_ttl_s: float | None = None
    key_param: str | None = None


def usage_or_none(data: Any, parse: Any, *, whole: bool = False) -> Usage | None:
    """``parse`` of a response object's ``usage`` (of the whole object, ``whole``, where
    the format's parser reads it from there): ``None`` where there is none, or where it
    does not parse (``WireFormat.parse_usage``'s rule, for every format)."""
    if not isinstance(data, Mapping) or not data.get("usage"):
        return None
    try:
        usage: Usage = parse(data if whole else data["usage"])
    except ProviderResponseError:
        return None
    return usage


#: ``WireFormat.keyed``'s copies: (id of the format, parameter) -> (format, copy).
_KEYED: dict[tuple[int, str], tuple[WireFormat, WireFormat]] = {}


class WireFormat(ABC):
    """Base class of the wire formats. Subclasses override what differs.

    Besides its codecs (``render``/``envelope`` for requests, ``parse_reply`` and
    ``stream_decoder`` for replies) a format states its capabilities: ``marker`` and
    ``cache`` (the prompt cache), ``server_state`` (the provider keeps earlier turns),
    ``tokenizer`` (how its models count).
    """

    #: Name used in ``Session.request(name, ...)``.
    name: str = ""
    #: Provider family: whose artifacts the format replays (``Target.provider``).
    provider: str = ""
    #: Leading system/developer messages go to the envelope, not the message list.
    splits_system: bool = False
    #: The cache marker style: None, "cache_control" (Anthropic) or "cachePoint" (Bedrock).
    marker: str | None = None
    #: How the provider's prompt cache works.
    cache: CacheRules = CacheRules()
    #: The provider stores replies and continues from one (``previous_response_id``).
    server_state: bool = False
    #: The base64 data URL images' media types, the image URL schemes and ``detail``
    #: values the provider takes, where ``render`` checks them (``srt.wire.images``);
    #: ``None``: any (``images.any_image``, an OpenAI-compatible server's copy).
    image_types: frozenset[str] | None = None
    image_schemes: frozenset[str] | None = None
    image_details: frozenset[str] | None = None

    def keyed(self, param: str = "prompt_cache_key") -> WireFormat:
        """This format sending the cache planner's key as body parameter ``param``, for a
        provider that takes one on some of its models only (Azure's, opted into with
        ``Azure(prompt_cache_key=True)``): a copy of the same name, made once; the format
        itself when its rules name a key parameter already."""
        if self.cache.key_param is not None:
            return self
        found = _KEYED.get((id(self), param))
        if found is None or found[0] is not self:
            dup = copy.copy(self)
            dup.cache = replace(self.cache, key_param=param)
            found = _KEYED[(id(self), param)] = (self, dup)
        return found[1]

    def tokenizer(self, model: str) -> Tokenizer:
        """The best tokenizer for ``model`` in this format."""
        return GENERIC_ESTIMATE

    #: The fragment is usually the canonical body itself (no per-message cache needed).
    identity: bool = False

    def plain(self, body: bytes) -> bool:
        """For ``identity`` formats: true when ``body`` is its own fragment, unchanged."""
        return False

    def plain_all(self, bodies: list[bytes]) -> bool:
        """``plain`` of every body (formats override it with one C-level pass)."""
        return all(map(self.plain, bodies))

    @abstractmethod
    def render(self, body: bytes, target: Target) -> Frag:
        """One message (canonical bytes ``body``) in this format, for ``target``."""

    def text_frags(self) -> TextFrags | None:
        """How ``render`` treats a plain text message, for formats that make its fragment
        from the text's JSON string as it is (the same ``Frag`` ``render`` gives)."""
        return None

    #: The glue is ``sep`` between any two messages (none before the first): a format
    #: that keeps the ``glue`` below. An assembly of such a format keeps only the
    #: fragments and joins them with ``sep``; ``b""`` for a format whose glue depends on
    #: the roles (set for each subclass by ``__init_subclass__``).
    sep: bytes = b","

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.sep = b"," if cls.glue is WireFormat.glue else b""

    def glue(self, prev: str | None, role: str) -> bytes:
        """The bytes between the previous message (wire role ``prev``) and this one
        (a format that overrides this has ``sep == b""``)."""
        return b"" if prev is None else b","

    def close(self, last: str | None) -> bytes:
        """The bytes after the last message fragment."""
        return b""

    def tool_fragment(self, tool: dict[str, Any]) -> bytes:
        """One tool definition (canonical OpenAI function shape) in this format."""
        raise UnsupportedFeatureError(self.name, "tool definitions")

    def to_canonical(self, msg: Any, model: str | None = None) -> list[dict[str, Any]]:
        """A message (or items) in this format's own shape -> canonical messages."""
        raise UnsupportedFeatureError(self.name, "input in its own message shape")

    @abstractmethod
    def envelope(
        self,
        model: str,
        params: dict[str, Any],
        system: list[bytes],
        tools: list[bytes],
    ) -> tuple[bytes, bytes]:
        """``(head, tail)`` around the glued message fragments and ``close()``."""

    @abstractmethod
    def parse_reply(self, data: dict[str, Any], model: str | None = None) -> Reply:
        """A complete (non-streamed) response body -> canonical reply and usage.

        ``model`` names the model when the response does not (Bedrock)."""

    def parse_usage(self, data: Any) -> Usage | None:
        """The usage of a response object whose reply ``parse_reply`` cannot keep (a
        block srt does not store, a malformed message): ``None`` where the object has no
        usage object, or one that does not parse. The provider billed the call; its
        ledger row keeps what it says."""
        return None

    def context_overflow(
        self, status: int, body: str, headers: Mapping[str, str]
    ) -> Overflow | None:
        """An error answer (``status``, its body's text, its headers) that says the prompt
        does not fit the model's context window, as this format's provider words it
        (``srt.wire.overflow.RULES``, by the format's provider family), or ``None``."""
        rule = RULES.get(self.provider)
        return rule(status, body, headers) if rule is not None else None

    def mark(self, fragment: bytes, ttl: str | None) -> bytes:
        """``fragment`` carrying a cache breakpoint (for formats with markers)."""
        raise UnsupportedFeatureError(self.name, "cache breakpoints")

    def stream_decoder(self, model: str | None = None) -> StreamDecoder:
        """A new decoder for one streamed reply in this format; ``model`` names the model
        asked, for a reply that does not name it (Bedrock: see ``parse_reply``)."""
        raise UnsupportedFeatureError(self.name, "streamed replies")

    # -- the server side: replies in this format (srt.testing, an HTTP front end) ----------

    def encode_usage(self, usage: Usage) -> dict[str, Any]:
        """``usage`` as this format's usage object."""
        raise UnsupportedFeatureError(self.name, "encoding replies")

    def encode_reply(
        self,
        reply: Reply,
        *,
        id: str,
        request: Mapping[str, Any] | None = None,
        usage: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The non-streamed response object that answers ``request`` with ``reply``.

        ``id`` is the response's id; ``usage`` a usage object that replaces
        ``encode_usage(reply.usage)`` (a server that knows more, such as cache writes
        per TTL). The stop reason follows from the message (tool calls or not).
        """
        raise UnsupportedFeatureError(self.name, "encoding replies")

    def encode_events(
        self,
        response: Mapping[str, Any],
        *,
        request: Mapping[str, Any] | None = None,
        chunks: Sequence[str] | None = None,
    ) -> list[Event]:
        """The events that stream ``response`` (from ``encode_reply``), its text cut into
        ``chunks`` (default: one delta)."""
        raise UnsupportedFeatureError(self.name, "encoding replies")

    def encode_stream(self, events: Sequence[Event]) -> list[bytes]:
        """Each event as its bytes on the wire (server-sent events unless the format
        frames them otherwise)."""
        return [sse_event(name, data) for name, data in events]

    def __repr__(self) -> str:
        return f"<srt wire format {self.name}>"


def reply_parts(reply: Reply) -> tuple[str, list[tuple[str, str, str]]]:
    """A canonical assistant reply's text and its tool calls as (id, name, arguments)."""
    msg = reply.message
    content = msg.get("content")
    if isinstance(content, list):
        text = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    else:
        text = content or ""
    calls = [
        (str(c.get("id") or ""), str(c["function"]["name"]), str(c["function"]["arguments"]))
        for c in msg.get("tool_calls") or []
    ]
    return text, calls


def function_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    """A canonical tool call; ``arguments`` (any JSON value) serialized as srt does."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": dumps(arguments).decode()},
    }


def assistant_message(
    content: Any, calls: list[dict[str, Any]], arts: list[dict[str, Any]]
) -> dict[str, Any]:
    """A canonical assistant message, with its tool calls and artifacts if it has any."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = calls
    if arts:
        message["artifacts"] = arts
    return message


def cached_usage(
    plain_input: Any, output: Any, read: Any, write: Any, write_1h: Any = 0, reasoning: Any = 0
) -> Usage:
    """The usage of a reply that counts cache reads and writes apart from its other input
    tokens (Anthropic, Converse): srt's ``input_tokens`` is all three. ``write_1h`` of the
    writes had a 1-hour TTL (at most ``write``: a report of more is malformed), and
    ``reasoning`` of the output tokens were reasoning (at most ``output``, likewise)."""
    try:
        r, w, w1 = int(read or 0), int(write or 0), int(write_1h or 0)
        out, think = int(output or 0), int(reasoning or 0)
        if w1 > w:
            raise ValueError("more 1-hour cache writes than cache writes")
        if think > out:
            raise ValueError("more reasoning tokens than output tokens")
        return Usage(
            input_tokens=int(plain_input or 0) + r + w,
            output_tokens=out,
            cache_read_tokens=r,
            cache_write_tokens=w,
            cache_write_1h_tokens=w1,
            reasoning_tokens=think,
        )
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        raise ProviderResponseError("a reply with a malformed usage") from None


def usage_of(data: Mapping[str, Any], key: str = "usage") -> Mapping[str, Any]:
    """A reply's usage object (empty when absent); ``ProviderResponseError`` when it is
    not an object."""
    u = data.get(key) or {}
    if not isinstance(u, Mapping):
        raise ProviderResponseError(f"a reply whose {key} is not an object")
    return u


def check_model(model: Any) -> str:
    if not isinstance(model, str) or not model:
        raise ConfigError("model must be a non-empty string")
    try:
        model.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError("model must be valid Unicode text") from None
    return model


#: A tool's name as OpenAI (``FunctionDefinition.name``), Anthropic (``tools.N.name``) and
#: Bedrock (``ToolName``) take it, from 1 character to the format's longest.
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]+")


def check_tool_name(name: str, fmt: str, longest: int = 64) -> str:
    """``name`` when ``fmt`` takes it as a tool's name (1 to ``longest`` ASCII letters,
    digits, ``_`` or ``-``); else an ``UnsupportedFeatureError`` naming the tool, raised
    as the request is built, before anything is sent (the provider's 400 would come after
    the call was made and recorded)."""
    if len(name) <= longest and _TOOL_NAME.fullmatch(name):
        return name
    shown = name if len(name) <= 80 else name[:80] + "..."
    raise UnsupportedFeatureError(
        fmt,
        f"the tool name {shown!r} ({len(name)} characters): a tool's name there is 1 to "
        f"{longest} ASCII letters, digits, '_' or '-'",
    )


# -- streamed replies ---------------------------------------------------------------------


def stream_error(kind: str, message: str) -> ProviderError:
    """A provider's error event mid-stream as a typed error (a context-window refusal,
    which a streamed Responses call gets after its head, as
    ``ProviderContextOverflowError``)."""
    over = from_stream_event(kind, message)
    if over is not None:
        return ProviderContextOverflowError(
            f"the provider reported {kind} mid-stream: {message}",
            provider_message=over.message,
            prompt_tokens=over.prompt_tokens,
            limit=over.limit,
        )
    if kind in (
        "overloaded_error",
        "rate_limit_error",
        "throttlingException",
        "serviceUnavailableException",
    ):
        return RateLimitError(f"the provider reported {kind} mid-stream: {message}")
    return ProviderResponseError(f"the provider reported {kind} mid-stream: {message}")


class StreamDecoder(ABC):
    """One streamed reply, decoded. Fed raw bytes, it yields text deltas and rebuilds the
    provider's *non-streamed* response object from the events, so the final ``Reply``
    comes from the same ``parse_reply`` as a non-streamed call; ``partial()`` gives the
    reply so far when a stream is cut off, or ends whole with content its format's
    ``parse_reply`` cannot keep: then the text the caller saw. A provider error event
    mid-stream raises ``ProviderResponseError`` (or ``RateLimitError`` for
    overload/throttling)."""

    def __init__(self, fmt: WireFormat, model: str | None = None) -> None:
        self.fmt = fmt
        self.model = model
        self.done = False
        self.events = 0
        self.deltas: list[str] = []  # the text deltas handed out so far
        #: Output items the upstream finished before its text began (a Responses
        #: upstream's reasoning items), as it sent them: a relay of the stream numbers
        #: its message after them, as the final reply holds them.
        self.leading: list[dict[str, Any]] = []

    def feed(self, chunk: bytes) -> list[str]:
        """Consume bytes; return the text deltas they completed."""
        out = self.decode(chunk)
        if out:
            self.deltas += out
        return out

    @abstractmethod
    def decode(self, chunk: bytes) -> list[str]:
        """``feed``'s work, the format's own."""

    @abstractmethod
    def response(self) -> dict[str, Any]:
        """The non-streamed response object as far as the stream got."""

    def reply(self) -> Reply:
        return self.fmt.parse_reply(self.response(), self.model)

    def checked(self, on_event: Callable[[E], list[str]], event: E) -> list[str]:
        """``on_event(event)``, with an event whose members have the wrong JSON types (a
        list where an object belongs...) as a ``ProviderResponseError`` that names it
        (``event_name``); srt's own errors pass as they are."""
        try:
            return on_event(event)
        except SrtError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ProviderResponseError(
                f"a malformed {self.event_name(event)} event ({type(exc).__name__})"
            ) from None

    def event_name(self, event: Any) -> str:
        """How the error of a malformed ``event`` names it: by default its format's."""
        return f"{self.fmt.name} stream"

    def partial(self) -> Reply:
        """The reply so far (for a stream cut off before its end); where that cannot be
        parsed, the text handed out, with the usage the events reported where it parses
        (``WireFormat.parse_usage``: the provider bills the call)."""
        try:
            return self.reply()
        except ProviderError:
            text = {"role": "assistant", "content": "".join(self.deltas)}
            try:
                usage = self.fmt.parse_usage(self.response())
            except (ProviderError, AttributeError, KeyError, TypeError, ValueError):
                usage = None
            return Reply(text, usage or Usage())


class SSEStream(StreamDecoder):
    """A decoder of a ``text/event-stream`` reply: one ``on_event`` per event."""

    def __init__(self, fmt: WireFormat, model: str | None = None) -> None:
        super().__init__(fmt, model)
        self._sse = SSEDecoder()

    def decode(self, chunk: bytes) -> list[str]:
        out: list[str] = []
        for ev in self._sse.feed(chunk):
            self.events += 1
            out.extend(self.checked(self.on_event, ev))
        return out

    @abstractmethod
    def on_event(self, ev: ServerSentEvent) -> list[str]: ...
