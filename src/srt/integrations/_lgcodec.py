"""How ``SrtSaver`` lays out a LangGraph checkpoint: records, values and message references.

A checkpoint is one srt object (kind ``langgraph.checkpoint``, scope the thread and
namespace, key the checkpoint id) whose value is a *record*: the checkpoint without its
channel values, the metadata, the parent id, one *encoding* per channel and the pending
writes. The record is serialized with the saver's ``serde`` and compressed.

A channel's encoding is one of:

- ``["L", head, intro, over]``: a list of LangChain messages, stored as the srt chain that
  ends at node ``head`` (root first). ``intro`` holds, for the nodes this checkpoint put in
  the thread first, the patch that turns the canonical message back into the LangChain
  message (``srt.integrations._lcmsg``); ``over`` holds, by list index, the patches of
  messages that differ from what the thread first stored at that node (the same text with
  another id, in a branch).
- ``["V", type, data]``: a small value serialized inline;
- ``["B", key]``: a larger value, stored once per thread under the hash of its bytes
  (kind ``langgraph.blob``): a value that repeats is stored once.

A value (a channel's or a pending write's) is serialized as a *skeleton*: message-like
parts (LangChain messages, ``("user", text)`` tuples, ``{"role", "content"}`` dicts, or
plain lists of them) are replaced by a reference ``{"__srt__": [tip, count, single,
forms]}`` to ``count`` messages of the srt chain ending at ``tip``, appended below the
checkpoint's messages. So the user's text in LangGraph's input, in the ``messages``
write and in the next checkpoint's list is the same stored message.
"""

from __future__ import annotations

import base64
import uuid
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from langchain_core.messages import BaseMessage, RemoveMessage

__all__ = [
    "MARK",
    "ROLES",
    "Raw",
    "decode_skeleton",
    "encode_skeleton",
    "full_id",
    "key_id",
    "message_like",
    "pack",
    "split",
    "squeeze",
    "unpack",
    "unsqueeze",
]

#: The key of a message reference in a skeleton.
MARK = "__srt__"
#: Roles of ``(role, text)`` tuples and ``{"role", "content"}`` dicts -> canonical roles.
ROLES = {
    "user": "user",
    "human": "user",
    "ai": "assistant",
    "assistant": "assistant",
    "system": "system",
    "developer": "developer",
}
_FORMAT = b"\x01"  # a record compressed on its own
_NEAR = b"\x02"  # compressed against its parent's record
_FAR = b"\x04"  # against the records one and three steps back (the same step a turn ago)
# A preset dictionary: the strings every record repeats, so small records compress too.
_ZDICT = (
    b"channel_versionsversions_seenupdated_channelsbranch:to:__start____input__"
    b"messagessourceloopinputupdateforkstepparentsrun_id~__pregel_pull, "
    b"__pregel_pushmsgpackdataresponse_metadataadditional_kwargsidtypehumanai"
    b"tool_callsusage_metadata+00:00"
)


class Raw(Exception):
    """The value cannot be laid out as a skeleton (it already holds the marker key)."""


def message_like(value: Any) -> bool:
    """A LangChain message, a ``(role, text)`` tuple or a ``{"role", "content"}`` dict."""
    if isinstance(value, BaseMessage):
        return not isinstance(value, RemoveMessage)
    kind = type(value)
    if kind is tuple:
        return (
            len(value) == 2
            and type(value[0]) is str
            and type(value[1]) is str
            and value[0] in ROLES
        )
    if kind is dict:
        return (
            len(value) == 2
            and type(value.get("role")) is str
            and value["role"] in ROLES
            and type(value.get("content")) is str
        )
    return False


Refs = Callable[[list[Any], bool], dict[str, Any]]


def encode_skeleton(value: Any, refs: Refs) -> Any:
    """``value`` with its message-like parts replaced by ``refs(parts, single)``."""
    if message_like(value):
        return refs([value], True)
    kind = type(value)
    if kind is list:
        if value and all(message_like(v) for v in value):
            return refs(value, False)
        return [encode_skeleton(v, refs) for v in value]
    if kind is tuple:
        return tuple(encode_skeleton(v, refs) for v in value)
    if kind is dict:
        if MARK in value:
            raise Raw
        return {k: encode_skeleton(v, refs) for k, v in value.items()}
    return value


def decode_skeleton(value: Any, resolve: Callable[[list[Any]], Any]) -> Any:
    """The value ``encode_skeleton`` was given (references through ``resolve``)."""
    kind = type(value)
    if kind is dict:
        if len(value) == 1 and MARK in value:
            return resolve(value[MARK])
        return {k: decode_skeleton(v, resolve) for k, v in value.items()}
    if kind is list:
        return [decode_skeleton(v, resolve) for v in value]
    if kind is tuple:
        return tuple(decode_skeleton(v, resolve) for v in value)
    return value


def pack(typed: tuple[str, bytes], base: tuple[str, bool, bytes] | None = None) -> bytes:
    """A serde-typed record as stored, compressed. With ``base`` (the parent checkpoint's
    id, whether the checkpoint three steps back is in it too, and those records' bytes),
    those bytes are the compression dictionary, so what the records share is stored once:
    a record then takes about a third of the room."""
    kind, data = typed
    if base is None:
        head, zdict = _FORMAT, _ZDICT
    else:
        parent, far, zdict = base
        ref = _uuid(parent)
        head = (_FAR if far else _NEAR) + (
            b"\x00" + ref if isinstance(ref, bytes) else b"\x01" + _text_ref(parent)
        )
    packer = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, zdict[-32768:])
    return head + kind.encode() + b"\x00" + packer.compress(data) + packer.flush()


def _text_ref(cid: str) -> bytes:
    raw = cid.encode()
    return len(raw).to_bytes(2, "big") + raw


def split(value: bytes) -> tuple[str | None, bool, bytes]:
    """(the parent id a record was packed against or None, whether the checkpoint three
    steps back was packed against too, the rest after the header)."""
    head = value[:1]
    if head == _FORMAT:
        return None, False, value[1:]
    if head not in (_NEAR, _FAR):
        raise ValueError("not a record of this saver's format")
    if value[1:2] == b"\x00":
        parent, rest = str(uuid.UUID(bytes=value[2:18])), value[18:]
    else:
        n = int.from_bytes(value[2:4], "big")
        parent, rest = value[4 : 4 + n].decode(), value[4 + n :]
    return parent, head == _FAR, rest


def unpack(value: bytes, zdict: bytes | None = None) -> tuple[str, bytes]:
    """The serde-typed record ``pack`` stored (``zdict``: the bytes it was packed against,
    for a record ``split`` names a parent for)."""
    parent, _far, rest = split(value)
    if parent is not None and zdict is None:
        raise ValueError("this record needs its parent's bytes to be read")
    kind, _, data = rest.partition(b"\x00")
    unpacker = zlib.decompressobj(-15, (zdict if zdict is not None else _ZDICT)[-32768:])
    return kind.decode(), unpacker.decompress(data) + unpacker.flush()


# -- compact records ------------------------------------------------------------------------
# Checkpoint and task ids are UUID strings, timestamps ISO strings and the usual patch of a
# message is its id alone: stored as 16 bytes, microseconds and the id's bytes they take a
# third of the room. Anything that would not come back exactly is kept as it was.

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)


def _uuid(value: Any) -> Any:
    if isinstance(value, str) and len(value) == 36:
        try:
            raw = uuid.UUID(value)
        except ValueError:
            return value
        if str(raw) == value:
            return raw.bytes
    return value


def _unuuid(value: Any) -> Any:
    return str(uuid.UUID(bytes=value)) if isinstance(value, bytes) else value


def key_id(checkpoint_id: str) -> str:
    """The object key of a checkpoint id (22 characters for a UUID)."""
    raw = _uuid(checkpoint_id)
    if isinstance(raw, bytes):
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return "~" + checkpoint_id


def full_id(key: str) -> str:
    """The checkpoint id ``key_id`` gave ``key`` for."""
    if key.startswith("~"):
        return key[1:]
    return str(uuid.UUID(bytes=base64.urlsafe_b64decode(key + "==")))


def _ts(value: Any) -> Any:
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return value
        if when.tzinfo == timezone.utc and when.isoformat() == value:
            micros = (when - _EPOCH) // _US
            if (_EPOCH + micros * _US).isoformat() == value:
                return micros
    return value


def _unts(value: Any) -> Any:
    return (_EPOCH + value * _US).isoformat() if type(value) is int else value


def _patch_in(patch: Any) -> Any:
    """A patch that only sets ``data.id`` to a UUID -> the UUID's 16 bytes."""
    if type(patch) is dict and len(patch) == 1:
        data = patch.get("k", {}).get("data") if type(patch.get("k")) is dict else None
        if type(data) is dict and set(data) == {"k"} and set(data["k"]) == {"id"}:
            new = data["k"]["id"]
            if type(new) is dict and set(new) == {"="} and len(patch["k"]) == 1:
                raw = _uuid(new["="])
                if isinstance(raw, bytes):
                    return raw
    return patch


def _patch_out(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"k": {"data": {"k": {"id": {"=": str(uuid.UUID(bytes=value))}}}}}
    return value


def _patches(enc: list[Any], fn: Callable[[Any], Any]) -> list[Any]:
    """A message-list encoding with ``fn`` applied to each of its patches."""
    if enc[0] != "L":
        return enc
    _l, head, intro, over = enc
    return ["L", head, {n: fn(p) for n, p in intro.items()}, {i: fn(p) for i, p in over.items()}]


def squeeze(rec: dict[str, Any]) -> list[Any]:
    """A record (``c``, ``m``, ``p``, ``ch``, ``w``) as the compact list that is stored."""
    c = rec["c"]
    if c is not None:
        c = dict(c)
        c["ts"] = _ts(c.get("ts"))
    return [
        c,
        rec["m"],
        _uuid(rec["p"]),
        {name: _patches(enc, _patch_in) for name, enc in rec["ch"].items()},
        [[_uuid(w[0]), *w[1:4], _patches(w[4], _patch_in)] for w in rec["w"]],
    ]


def unsqueeze(data: list[Any]) -> dict[str, Any]:
    """The record ``squeeze`` stored."""
    c, m, p, ch, w = data
    if c is not None:
        c["ts"] = _unts(c.get("ts"))
    return {
        "c": c,
        "m": m,
        "p": _unuuid(p),
        "ch": {name: _patches(enc, _patch_out) for name, enc in ch.items()},
        "w": [[_unuuid(x[0]), *x[1:4], _patches(x[4], _patch_out)] for x in w],
    }
