"""Checking the usage ledger against the history: every recorded body can be rebuilt.

A ledger row records the XXH3-128 of the exact body sent, its size, the node of the
reply it stored, the number of messages it sent and (``params``) what else shaped the
body: the body parameters, tools, partial replies, the cache breakpoints placed, the
messages a context window kept and the ``prompt_cache_key`` srt sent when it is not
the root's (a row without one sent the root's, ``srt._cachekeys``; a row of a provider
that sends one by its opt-in, ``Azure(prompt_cache_key=True)``, always records it).
``verify_ledger`` rebuilds each such body from the stored messages (``replay_call``) and
checks its hash and size. Rows that record no parameters (a request that failed before a reply was
stored, a node swept by ``gc``, or a row written before srt recorded them) are counted
as not checkable.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._builder import Builder
from ._chain import Chain
from ._shared import Shared
from .cache import DEFAULT_POLICY, Breakpoint, CachePolicy
from .errors import CorruptionError, SrtError
from .store.base import MAX_FAULTS, Fault
from .wire import get_format, images

__all__ = ["LedgerReport", "replay_call", "verify_ledger"]
_REPLAY_LOCK = threading.Lock()
#: A replay's policy when the row records the key sent (put back as a parameter).
_NO_KEY = CachePolicy(key=None)


@dataclass(frozen=True)
class LedgerReport:
    """How many ledger rows were rebuilt and checked, how many could not be, and the
    rows whose body did not come out as recorded."""

    checked: int
    unchecked: int
    faults: tuple[Fault, ...]
    more_faults: int = 0

    @property
    def ok(self) -> bool:
        return not self.faults


def replay_call(shared: Shared, call: Mapping[str, Any]) -> bytes | None:
    """The body of the request a ledger row records, rebuilt from the history stored at
    its node and the parameters recorded with it (``params``): the model, body
    parameters, tools, partial replies, the breakpoints placed and the messages a window
    kept. ``None`` when the row records no parameters or no node (a failed request, a
    node swept by gc); ``CorruptionError`` when what it records is not what srt records
    (damaged). Nothing is written, and the runtime's planner is left as it was."""
    spec_text, node = call.get("params"), call.get("node")
    if not spec_text or node is None:
        return None
    spec, n = _spec(spec_text, call.get("messages"))
    tail = shared.store.tail(int(node), n - 1) if n else []
    if n and not tail:
        return None
    head = tail[0][0] if n else None
    chain = Chain(shared, int(call.get("session") or 0), "(replay)", head)
    builder = Builder(shared, chain)
    chain.listener = builder
    builder.replay = (
        [Breakpoint(w, i, ttl, 0, "replay") for w, i, ttl in spec["breakpoints"]],
        spec["kept"],
    )
    # The planner's memory of earlier requests is the runtime's: put it back afterwards.
    with _REPLAY_LOCK:
        saved = (dict(shared.records), dict(shared.last_model), shared.serialized)
        try:
            chain.load()
            if len(chain) != n:
                return None
            # Any image: the checks of images refuse, never change bytes, and a row's
            # request passed its provider's (an OpenAI-compatible server's takes any).
            fmt = images.any_image(get_format(str(call["format"])))
            tools, partial = spec.get("tools") or (), bool(spec["include_partial"])
            params = dict(spec["params"])
            # Not the runtime's ``cache=`` policy: the key the row's request sent.
            cache: bool | CachePolicy = DEFAULT_POLICY if spec["cache"] else False
            if cache and "cache_key" in spec and fmt.cache.key_param is None:
                fmt = fmt.keyed()  # sent by its provider's opt-in (Azure's prompt_cache_key)
            if cache and "cache_key" in spec and fmt.cache.key_param is not None:
                cache = _NO_KEY
                if spec["cache_key"] is not None:
                    params.setdefault(fmt.cache.key_param, str(spec["cache_key"]))
            if spec.get("after") is not None:
                return builder.request_after(
                    fmt,
                    int(spec["after"]),
                    model=str(call["model"]),
                    tools=tools,
                    include_partial=partial,
                    params=params,
                    cache=cache,
                )
            return builder.request(fmt, str(call["model"]), tools, cache, partial, None, params)
        finally:
            shared.records.clear()
            shared.records.update(saved[0])
            shared.last_model.clear()
            shared.last_model.update(saved[1])
            shared.serialized = saved[2]


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _spec(text: Any, messages: Any) -> tuple[dict[str, Any], int]:
    """A row's recorded parameters and message count, checked to have the shape
    ``Exchange`` records; ``CorruptionError`` naming what is wrong otherwise."""
    if not _int(messages) or messages < 0:
        raise CorruptionError(f"its message count {messages!r} is not a count")
    try:
        spec = json.loads(text)
    except (TypeError, ValueError):
        raise CorruptionError("its recorded parameters are not JSON") from None
    if not isinstance(spec, dict):
        raise CorruptionError("its recorded parameters are not a JSON object")

    def bad(what: str) -> CorruptionError:
        return CorruptionError(f"its recorded parameters have {what}")

    bps = spec.get("breakpoints")
    if not isinstance(bps, list) or not all(
        isinstance(b, list)
        and len(b) == 3
        and isinstance(b[0], str)
        and _int(b[1])
        and isinstance(b[2], str)
        for b in bps
    ):
        raise bad("no list of [where, index, ttl] breakpoints")
    kept = spec.get("kept")
    if kept is not None and not (
        isinstance(kept, list) and all(_int(i) and 0 <= i < messages for i in kept)
    ):
        raise bad(f"a kept window that is not message indexes below {messages}")
    if not isinstance(spec.get("params"), dict):
        raise bad("no object of body parameters")
    if not isinstance(spec.get("tools") or [], list):
        raise bad("tools that are not a list")
    if not isinstance(spec.get("include_partial"), bool) or not isinstance(spec.get("cache"), bool):
        raise bad("no include_partial and cache flags")
    if "cache_key" in spec and not isinstance(spec["cache_key"], (str, type(None))):
        raise bad("a cache key that is not a string")
    after = spec.get("after")
    if after is not None and not (_int(after) and 0 <= after <= messages):
        raise bad(f"an 'after' that is not a message index up to {messages}")
    spec["kept"] = kept
    return spec, messages


def verify_ledger(shared: Shared, rows: Iterable[Mapping[str, Any]]) -> LedgerReport:
    """Rebuild the body of each ledger row and compare it with the row."""
    checked = unchecked = more = 0
    faults: list[Fault] = []

    def fault(row: Mapping[str, Any], detail: str) -> None:
        nonlocal more
        if len(faults) >= MAX_FAULTS:
            more += 1
            return
        n = row.get("messages")
        name, pos = row.get("session_name"), (n if isinstance(n, int) and n >= 0 else 0) + 1
        places = ((str(name), pos),) if name is not None else ()
        faults.append(Fault("ledger", "calls", row.get("id"), detail, places))

    digest = shared.store.hashing.digest  # as the exchange recorded it (keyed or XXH3)
    for row in rows:
        try:
            body = replay_call(shared, row)
        except SrtError as exc:
            checked += 1
            fault(row, f"its body cannot be rebuilt from node {row.get('node')}: {exc}")
            continue
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            # Parameters of the right shape with values srt never records (an index past
            # the history, a tool that is not one): the row is damaged, not the runtime.
            checked += 1
            fault(
                row,
                f"its body cannot be rebuilt from node {row.get('node')}: its recorded "
                f"parameters are damaged ({type(exc).__name__}: {exc})",
            )
            continue
        if body is None:
            unchecked += 1
            continue
        checked += 1
        recorded, size = row.get("body_hash"), row.get("body_bytes")
        if not isinstance(recorded, (bytes, bytearray, memoryview)) or not _int(size):
            fault(
                row,
                f"its recorded body hash (a {type(recorded).__name__}) or size "
                f"({size!r:.20}) is damaged",
            )
            continue
        recorded = bytes(recorded)
        if digest(body) != recorded or len(body) != size:
            fault(
                row,
                f"the body rebuilt from node {row['node']} and its parameters is "
                f"{len(body):,} bytes hashing to {digest(body).hex()[:12]}…, not the "
                f"{size:,} bytes hashing to {recorded.hex()[:12]}… recorded",
            )
    return LedgerReport(checked, unchecked, tuple(faults), more)
