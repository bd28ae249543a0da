"""What ``SrtSaver`` checks of what it is handed before it writes anything: configs,
checkpoints, writes, ``list()`` arguments. A config without a ``thread_id``, a
checkpoint id that is not text, a lone surrogate in a name: a ``ConfigError`` saying
which, instead of a ``KeyError`` or ``UnicodeEncodeError`` from deep inside. And
``undo``: what a write that failed half-way leaves is taken back."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError, ConflictError, InvalidMessageError, SessionNotFoundError
from ..runtime import Runtime
from ._lgnames import CKPT, NS, THREAD, THREADS, Scope
from ._lgstate import Tree

__all__ = [
    "before",
    "checkpoint",
    "ids",
    "limit",
    "metadata_filter",
    "not_storable",
    "runs",
    "text",
    "thread",
    "threads",
    "undo",
    "writes",
]


def text(what: str, value: str) -> str:
    """``value``, which must be text that UTF-8 can hold (no lone surrogate)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{what} is not valid Unicode text (it holds a lone surrogate)") from None
    return value


def thread(value: Any) -> str:
    """A ``thread_id`` as the saver keys it: text (an int or UUID as its ``str``)."""
    if isinstance(value, (int, uuid.UUID)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        kind = type(value).__name__
        raise ConfigError(f"a thread_id must be a str, an int or a UUID, got {kind}")
    return _unit(text("the thread_id", value), "a thread_id")


def _unit(value: str, what: str) -> str:
    # U+001F joins a thread and a namespace in a scope's key: in either, thread "a\x1fb"
    # and thread "a" with namespace "b" would share their checkpoints.
    if "\x1f" in value:
        raise ConfigError(f"{what} must not hold U+001F (the unit separator)")
    return value


def _configurable(config: Any, what: str) -> Mapping[str, Any]:
    conf = config.get("configurable") if isinstance(config, Mapping) else None
    if not isinstance(conf, Mapping):
        raise ConfigError(f"{what} must be a dict with a 'configurable' dict")
    return conf


def ids(config: Any) -> tuple[str, str, str | None]:
    """A config's thread, namespace ("" when missing or ``None``) and checkpoint id."""
    conf = _configurable(config, "a LangGraph config")
    if conf.get("thread_id") is None:
        raise ConfigError("a LangGraph config needs configurable['thread_id']")
    ns = conf.get("checkpoint_ns")
    if ns is None:
        ns = ""
    if not isinstance(ns, str):
        raise ConfigError(f"checkpoint_ns must be a str, got {type(ns).__name__}")
    ns = _unit(text("checkpoint_ns", ns), "checkpoint_ns")
    return thread(conf["thread_id"]), ns, checkpoint_id(conf)


def checkpoint_id(conf: Mapping[str, Any]) -> str | None:
    cid = conf.get("checkpoint_id")
    if cid is None:
        return None
    if not isinstance(cid, str):
        raise ConfigError(f"a checkpoint_id must be a str, got {type(cid).__name__}")
    return text("the checkpoint_id", cid)


def before(config: Any) -> None:
    """``list(before=...)``: a config naming a checkpoint id (or none)."""
    if config is not None:
        checkpoint_id(_configurable(config, "list()'s before"))


def metadata_filter(value: Any) -> None:
    """``list(filter=...)``: a dict of metadata keys (text) and the values they must hold
    (or none). A list of pairs or a string was an ``AttributeError`` from inside."""
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"list()'s filter must be a dict of metadata keys and values, got "
            f"{type(value).__name__}"
        )
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"list()'s filter keys must be str, got {type(key).__name__}")
        text("a filter key", key)


def checkpoint(value: Any, metadata: Any) -> None:
    """A checkpoint ``put`` can store: a dict with a text ``id`` and dicts of channel
    values and versions; and a metadata dict."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"a checkpoint must be a dict, got {type(value).__name__}")
    cid = value.get("id")
    if not isinstance(cid, str):
        raise ConfigError(f"a checkpoint's id must be a str, got {type(cid).__name__}")
    text("the checkpoint id", cid)
    for key in ("channel_values", "channel_versions"):
        if not isinstance(value.get(key), Mapping):
            raise ConfigError(f"a checkpoint needs a {key!r} dict")
    if not isinstance(metadata, Mapping):
        raise ConfigError(f"checkpoint metadata must be a dict, got {type(metadata).__name__}")


def writes(value: Any, task_id: Any, task_path: Any) -> list[tuple[str, Any]]:
    """``put_writes``' writes as (channel, value) pairs, with text task id and path."""
    if not isinstance(task_id, str) or not isinstance(task_path, str):
        raise ConfigError("put_writes needs a str task_id and task_path")
    text("the task_id", task_id)
    text("the task_path", task_path)
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise ConfigError(f"writes must be a list of (channel, value), got {type(value).__name__}")
    out = []
    for w in value:
        if not isinstance(w, Sequence) or isinstance(w, (str, bytes)) or len(w) != 2:
            kind = type(w).__name__
            raise ConfigError(f"each write must be a (channel, value) pair, got a {kind}")
        if not isinstance(w[0], str):
            raise ConfigError(f"a write's channel must be a str, got {type(w[0]).__name__}")
        out.append((text("a write's channel", w[0]), w[1]))
    return out


def limit(value: Any) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise ConfigError(f"limit must be an int or None, got {type(value).__name__}")


def not_storable(exc: BaseException, where: str) -> InvalidMessageError:
    """The error for a value the serializer (or JSON) cannot store."""
    return InvalidMessageError(f"{where} holds a value that cannot be stored: {exc}")


def threads(value: Any) -> list[str]:
    """A list of thread ids (a lone string would be taken letter by letter)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"give a list of thread ids, not a {type(value).__name__}")
    return [thread(t) for t in value]


def runs(value: Any) -> list[str]:
    """A list of run ids, each a str or a UUID (an int: its ``str``), as metadata holds
    them (a lone string would be taken letter by letter; ``None`` was taken for the run
    id ``"None"``)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(f"give a list of run ids, not a {type(value).__name__}")
    out = []
    for r in value:
        if not isinstance(r, (str, int, uuid.UUID)) or isinstance(r, bool):
            raise ConfigError(f"a run id must be a str or a UUID, got {type(r).__name__}")
        out.append(text("a run id", str(r)))
    return out


def undo(rt: Runtime, tree: Tree, sc: Scope, before: tuple[int, int | None] | None) -> None:
    """Take back what a failed write to scope ``sc`` left in the store: its session's
    head goes back to ``before`` (the session's id and head before the write; ``None``:
    the write made the session, with its namespace and maybe its thread, and they go
    unless a checkpoint of the scope is stored). Messages it stored stay unnamed, for
    ``srt gc``. A head another writer has moved since is left alone."""
    store = rt.store
    row = store.get_session(sc.session)
    if row is None or sc.cursor is None or row.head != sc.cursor[1]:
        return
    if before is not None:
        if row.head != before[1]:
            with contextlib.suppress(ConflictError):
                store.move_head(row.id, row.head, before[1])
        return
    if store.list_objects(CKPT, sc.key, limit=1):
        return
    with contextlib.suppress(SessionNotFoundError):
        rt.delete(sc.session)
    store.delete_object(NS, sc.thread, "ns:" + sc.ns)
    if not store.list_objects(NS, sc.thread, limit=1):
        store.delete_object(THREAD, THREADS, sc.thread)
