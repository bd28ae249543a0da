"""The Responses streaming events, in the order the API sends them.

``response.created``, ``response.in_progress`` (a ``background`` response, as OpenAI's
lifecycle: ``response.created`` and ``response.queued``, both ``queued``, then
``response.in_progress``), then per output item
``response.output_item.added``, for a message ``response.content_part.added``, the
``response.output_text.delta`` events, ``response.output_text.done`` and
``response.content_part.done`` (a refusal part: ``response.refusal.delta`` and
``...done``), for a function call ``response.function_call_arguments.delta`` and
``...done``, then ``response.output_item.done``; last ``response.completed`` (or
``response.incomplete`` / ``response.cancelled`` / ``response.failed``: ``END``). Every
event carries ``type`` and a ``sequence_number`` from 0.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ProviderResponseError
from ..message import replace_lone_surrogates

__all__ = ["END", "Emit", "Events", "encode", "replay"]

Emit = Callable[[str, dict[str, Any]], None]

#: The last event of a stream, by how the response ended. A cancelled one (``POST
#: .../cancel``, or its streaming client gone) ends ``response.cancelled`` with the
#: response, its status ``cancelled``: the spec's one event for a cancelled response
#: (``WebhookResponseCancelled``, "Sent when a background response has been
#: cancelled"; its stream events define none), in the envelope of the other ends, as
#: relays of api.openai.com's streams take it. It was ``response.incomplete``, whose
#: response OpenAI sends ``incomplete`` only (a token cap or a content filter).
END = {
    "completed": "response.completed",
    "incomplete": "response.incomplete",
    "cancelled": "response.cancelled",
}


def encode(kind: str, data: dict[str, Any]) -> bytes:
    """One server-sent event (a lone surrogate of an upstream's text as U+FFFD). A number
    JSON cannot carry, NaN or an infinity (only an upstream's item, passed on as it came,
    can hold one: srt's own numbers are counts), is the upstream's fault: a
    ``ProviderResponseError`` (502), never the bare word, which no client parses."""
    try:
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise ProviderResponseError(
            f"the provider's reply held a number JSON cannot carry (NaN and infinity "
            f"cannot be represented in JSON), in a {kind} event"
        ) from None
    try:
        return f"event: {kind}\ndata: {payload}\n\n".encode()
    except UnicodeEncodeError:
        return f"event: {kind}\ndata: {replace_lone_surrogates(payload)}\n\n".encode()


class Events:
    """Builds the event sequence of one response and hands each event to ``emit``."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self.seq = 0
        self._message: dict[str, Any] | None = None
        self._index = 0  # the next item's output_index
        self._at = 0  # the streamed message's
        self._text: list[str] = []
        #: The items announced before the streamed message (``delta``'s ``leading``).
        self.leading: list[dict[str, Any]] = []

    @property
    def started(self) -> bool:
        """Whether ``response.created`` went out (the client has a stream to end)."""
        return self.seq > 0

    def fail(self, response: dict[str, Any]) -> None:
        """End a stream cut short by an unexpected error: only ``response.failed``."""
        self._add("response.failed", response=response)

    def _add(self, kind: str, **data: Any) -> None:
        self._emit(kind, {"type": kind, "sequence_number": self.seq, **data})
        self.seq += 1

    def start(self, response: dict[str, Any]) -> None:
        """The response as it starts: ``response.created`` (a background one's
        ``queued``, and ``response.queued``), ``response.in_progress``."""
        snapshot = {**response, "status": "in_progress", "output": [], "usage": None}
        if response.get("background"):
            queued = {**snapshot, "status": "queued"}
            self._add("response.created", response=queued)
            self._add("response.queued", response=queued)
        else:
            self._add("response.created", response=snapshot)
        self._add("response.in_progress", response=snapshot)

    def delta(self, text: str, message_id: str, leading: Sequence[dict[str, Any]] = ()) -> None:
        """A text delta of the reply's message; the first announces ``leading`` (the
        items the upstream finished before its text: reasoning), then the message, after
        them, as the final response holds them."""
        if self._message is None:
            for item in leading:
                self._whole(self._index, item)
                self._index += 1
                self.leading.append(item)
            self._message = {
                "type": "message",
                "id": message_id,
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            self._at = self._index
            self._add("response.output_item.added", output_index=self._at, item=self._message)
            part = _text_part("")
            self._add(
                "response.content_part.added",
                item_id=message_id,
                output_index=self._at,
                content_index=0,
                part=part,
            )
            self._index += 1
        self._text.append(text)
        self._add(
            "response.output_text.delta",
            item_id=message_id,
            output_index=self._at,
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _whole(self, index: int, item: dict[str, Any]) -> None:
        """A reasoning item (or another kind the gateway passes as it is) announced
        whole: added (a reasoning item without its summary), each summary part, done."""
        if item.get("type") != "reasoning":
            self._add("response.output_item.added", output_index=index, item=item)
        else:
            iid = str(item.get("id"))
            self._add(
                "response.output_item.added", output_index=index, item={**item, "summary": []}
            )
            for si, part in enumerate(item.get("summary") or ()):
                text = str(part.get("text") or "") if isinstance(part, dict) else ""
                ix = {"item_id": iid, "output_index": index, "summary_index": si}
                self._add("response.reasoning_summary_part.added", **ix, part={**part, "text": ""})
                if text:
                    self._add("response.reasoning_summary_text.delta", **ix, delta=text)
                self._add("response.reasoning_summary_text.done", **ix, text=text)
                self._add("response.reasoning_summary_part.done", **ix, part=part)
        self._add("response.output_item.done", output_index=index, item=item)

    @property
    def text(self) -> str:
        return "".join(self._text)

    def _part(self, item_id: str, index: int, ci: int, part: dict[str, Any]) -> None:
        """One content part of a message announced whole: added (empty), its text or
        refusal in one delta, done."""
        ix = {"item_id": item_id, "output_index": index, "content_index": ci}
        if part.get("type") == "refusal":
            said = str(part.get("refusal") or "")
            self._add("response.content_part.added", **ix, part={**part, "refusal": ""})
            if said:
                self._add("response.refusal.delta", **ix, delta=said)
            self._add("response.refusal.done", **ix, refusal=said)
        else:
            text = str(part.get("text") or "")
            self._add("response.content_part.added", **ix, part={**part, "text": ""})
            if text:
                self._add("response.output_text.delta", **ix, delta=text, logprobs=[])
            self._add("response.output_text.done", **ix, text=text, logprobs=[])
        self._add("response.content_part.done", **ix, part=part)

    def finish(self, response: dict[str, Any]) -> None:
        """Close the open message and announce the other output items, then the end."""
        output = response.get("output") or []
        done_message = None
        if self._message is not None:
            done_message = next((i for i in output if i.get("type") == "message"), None)
            if done_message is None:  # a cut-off stream whose partial text was not kept
                done_message = {
                    **self._message,
                    "status": "incomplete",
                    "content": [_text_part(self.text)],
                }
            mid, at = self._message["id"], self._at
            parts = done_message["content"] or [_text_part(self.text)]
            ix = {"item_id": mid, "output_index": at, "content_index": 0}
            first = parts[0] if parts[0].get("type") == "output_text" else _text_part(self.text)
            self._add("response.output_text.done", **ix, text=first["text"], logprobs=[])
            self._add("response.content_part.done", **ix, part=first)  # the deltas' part
            for ci, part in enumerate(parts[1:], 1):
                self._part(mid, at, ci, part)
            self._add("response.output_item.done", output_index=at, item=done_message)
        index = self._index
        announced = {i.get("id") for i in self.leading}
        if done_message is not None:
            announced.add(done_message.get("id"))
        for item in output:
            if item is done_message or item.get("id") in announced:
                continue
            if item.get("type") == "function_call":
                added = {**item, "arguments": "", "status": "in_progress"}
                self._add("response.output_item.added", output_index=index, item=added)
                args = item.get("arguments", "")
                if args:
                    self._add(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=index,
                        delta=args,
                    )
                self._add(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    arguments=args,
                )
            elif item.get("type") == "message":
                added = {**item, "content": [], "status": "in_progress"}
                self._add("response.output_item.added", output_index=index, item=added)
                for ci, part in enumerate(item.get("content") or ()):
                    self._part(item["id"], index, ci, part)
            else:
                self._whole(index, item)
                index += 1
                continue
            self._add("response.output_item.done", output_index=index, item=item)
            index += 1
        self._add(END.get(str(response.get("status")), "response.failed"), response=response)


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def replay(response: dict[str, Any], after: int | None = None) -> list[bytes]:
    """The events a streamed create sends for ``response`` (an ended one, as stored),
    those after the sequence number ``after`` only: each output item whole, its text in
    one delta (how the upstream cut it into deltas is not kept)."""
    out: list[bytes] = []

    def emit(kind: str, data: dict[str, Any]) -> None:
        if after is None or data["sequence_number"] > after:
            out.append(encode(kind, data))

    final = dict(response)
    start = {**final, "error": None, "incomplete_details": None}
    start.pop("completed_at", None)  # (as it started: not ended yet)
    events = Events(emit)
    events.start(start)
    events.finish(final)
    return out
