"""``srt import --extra-keys``: what becomes of a message's top-level keys that are not
a message's (``id``, ``created_at``, ``model``, ``usage``... of another tool's log).

Which keys those are is ``srt.message``'s own definition (``split_extra``): the keys
``canonicalize`` refuses at append. ``refuse`` (the default) refuses the message, its
error naming the option; ``metadata`` moves them into the message's ``metadata`` dict
(a key it already holds is an error, never overwritten; srt's reserved ``srt_`` keys
stay refused, by ``canonicalize``); ``drop`` leaves them out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidMessageError
from ..message import RESERVED_PREFIX, split_extra, unknown_key_error

MODES = ("refuse", "metadata", "drop")
#: What the refusal adds, at import, to ``unknown_key_error``'s text.
HINT = (
    "; or import with --extra-keys metadata (moves such keys into each message's "
    "metadata) or --extra-keys drop (leaves them out)"
)


def _shown(key: str) -> str:
    return repr(key if len(key) <= 40 else key[:40] + "...")


def apply(message: dict[str, Any], mode: str | None) -> dict[str, Any]:
    """``message`` with its extra keys handled as ``mode`` says (None: ``refuse``)."""
    if len(message) == 2 and "role" in message and "content" in message:
        return message  # (the commonest message: nothing extra, no dicts made)
    known, extra = split_extra(message)
    if not extra:
        return message
    if mode == "drop":
        return known
    if mode != "metadata":
        key = sorted(extra)[0]
        raise InvalidMessageError(f"{unknown_key_error(key, message['role'])}{HINT}")
    mine = [k for k in extra if k.startswith(RESERVED_PREFIX)]
    if mine:
        raise InvalidMessageError(
            f"the message carries {_shown(mine[0])}, which --extra-keys metadata would move "
            f"into its metadata, where keys starting with {RESERVED_PREFIX!r} are srt's own; "
            "rename it, or import with --extra-keys drop to leave it out"
        )
    meta = known.get("metadata")
    if meta is None:
        known["metadata"] = extra
        return known
    if not isinstance(meta, Mapping):
        raise InvalidMessageError(
            f"metadata must be a dict to take the message's other keys (--extra-keys "
            f"metadata), got {type(meta).__name__}"
        )
    clash = [k for k in extra if k in meta]
    if clash:
        raise InvalidMessageError(
            f"the message carries {_shown(clash[0])} both as a key of its own and in its "
            "metadata: --extra-keys metadata does not overwrite one with the other; rename "
            "one of them, or import with --extra-keys drop to leave the top-level one out"
        )
    known["metadata"] = {**meta, **extra}
    return known
