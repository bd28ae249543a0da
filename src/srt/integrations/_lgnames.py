"""How ``SrtSaver`` names what it stores, and ``Scope``, what it holds in memory for one
(thread, namespace).

The object kinds of ``srt.integrations._lgcodec``'s layout; the object scope of a thread
and of a (thread, namespace); and the srt session that holds a scope's latest message
list. That session's name is recorded when the scope is first written (an ``lg.ns``
object of the thread, key ``ns:<namespace>``) and read back from there, so a store
keeps the names it was given. Before this module, a new scope was named
``langgraph/<thread>/<ns>`` as it stood, and thread ``"a/b"`` and thread ``"a"`` with
namespace ``"b"`` got the same session (the second adopted the first's). A new scope's
name escapes ``%``, ``/`` and a leading ``#`` of the thread and namespace
(``session_name``), so no two scopes' names meet, and one another session holds already
(a name an older saver gave) is passed over for a digest name (``Tree.cursor``).
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from typing import Any

from .. import _core
from ..errors import ConflictError, SrtError
from ..runtime import check_name

__all__ = [
    "BLOB",
    "CKPT",
    "DELETING",
    "KEEP",
    "NS",
    "THREAD",
    "THREADS",
    "VERSION",
    "Node",
    "Records",
    "Scope",
    "Stale",
    "digest_name",
    "session_name",
    "short",
    "tips",
]

CKPT = "lg.cp"
BLOB = "lg.blob"
KEEP = "lg.keep"
NS = "lg.ns"
THREAD = "lg.thread"
#: A scope's version: one object (key ``"v"``) whose random value every record write of
#: the scope swaps, compare-and-swap, in the write's transaction (``Tree.put``).
VERSION = "lg.ver"
#: A deletion of a thread under way (``_lgdelete``): one object per deletion, in the
#: thread's value scope, gone when it ends (or, should it never end, when it expires).
DELETING = "lg.del"
THREADS = "threads"  # the scope of the thread list


class Stale(ConflictError):
    """Another writer wrote the scope since this saver read it: nothing was written; read
    the scope again and redo the write (``Scopes.guarded`` does)."""


class Node:
    """A node's place in its chain, and its message's canonical bytes."""

    __slots__ = ("body", "depth", "parent", "prefix")

    def __init__(self, parent: int | None, depth: int, prefix: bytes, body: bytes) -> None:
        self.parent, self.depth, self.prefix, self.body = parent, depth, prefix, body


class Records(dict[str, dict[str, Any]]):
    """A scope's records by checkpoint id, which also gives the ids in order (sorted once
    until an id comes or goes): ``list`` and the latest checkpoint go by id, newest
    first, as LangGraph's own savers do, not by the order the store took the records
    in (two savers writing at once store them out of their ids' order)."""

    __slots__ = ("_order",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._order: list[str] | None = None

    def __setitem__(self, cid: str, rec: dict[str, Any]) -> None:
        if cid not in self:
            order = self._order
            # (a new newest id, a put's usual case: a new list, never one handed out
            # changed under its reader)
            self._order = [*order, cid] if order is not None and order[-1:] < [cid] else None
        super().__setitem__(cid, rec)

    def __delitem__(self, cid: str) -> None:
        self._order = None
        super().__delitem__(cid)

    def setdefault(self, cid: str, rec: dict[str, Any]) -> dict[str, Any]:
        if cid not in self:
            self._order = None
        return super().setdefault(cid, rec)

    def pop(self, *args: Any) -> Any:
        self._order = None
        return super().pop(*args)

    def popitem(self) -> tuple[str, dict[str, Any]]:
        self._order = None
        return super().popitem()

    def clear(self) -> None:
        self._order = None
        super().clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._order = None
        super().update(*args, **kwargs)

    def __ior__(self, other: Any) -> Records:  # type: ignore[override,misc]
        self.update(other)
        return self

    def ordered(self) -> list[str]:
        """The ids, oldest first (do not change the list)."""
        if self._order is None:
            self._order = sorted(self)
        return self._order

    def latest(self) -> str | None:
        """The newest id of a record holding a checkpoint (``None``: there is none)."""
        for cid in reversed(self.ordered()):
            if self[cid]["c"] is not None:
                return cid
        return None


def _escaped(text: str) -> str:
    text = text.replace("%", "%25").replace("/", "%2F")
    return "%23" + text[1:] if text.startswith("#") else text


def digest_name(thread: str, ns: str) -> str:
    """A scope's session name when its own cannot be used."""
    return "langgraph/#" + _core.digest(f"{thread}\x1f{ns}".encode()).hex()


def session_name(thread: str, ns: str) -> str:
    """The session a new scope is given: ``langgraph/<thread>`` (``/<ns>`` for a
    namespace), each with ``%``, ``/`` and a leading ``#`` escaped (``%25``, ``%2F``,
    ``%23``: one name per scope, none of them a digest name); a name srt refuses (too
    long, a control character) becomes ``digest_name``."""
    name = "langgraph/" + _escaped(thread) + (f"/{_escaped(ns)}" if ns else "")
    try:
        return check_name(name)
    except SrtError:
        return digest_name(thread, ns)


def short(text: str) -> str:
    """An object scope for ``text``: itself if short, else a 22-character digest."""
    if len(text) <= 22 and not text.startswith("#"):
        return text
    return "#" + base64.urlsafe_b64encode(_core.digest(text.encode())).decode()[:21]


def tips(rec: dict[str, Any]) -> list[int]:
    """Every chain tip a record names: message lists, references in values and writes."""
    out: list[int] = []
    for enc in rec["ch"].values():
        out.extend([enc[1]] if enc[0] == "L" else enc[-1])
    for w in rec["w"]:
        out.extend(w[4][-1])
    return out


class Scope:
    """What the saver holds in memory for one (thread, namespace)."""

    def __init__(self, thread: str, ns: str) -> None:
        self.thread, self.ns = thread, ns
        self.key = short(thread if not ns else f"{thread}\x1f{ns}")  # its records' scope
        self.blobs = short(thread)  # the scope of its thread's values
        # Its session: the name recorded for it once ``named``; until then the one a new
        # scope gets (``Tree.scope`` reads the record, ``Tree.cursor`` makes it).
        self.session = session_name(thread, ns)
        self.named = False
        self.cursor: tuple[int, int | None] | None = None  # its session's id and head
        self.loaded = False
        # The scope's version object as last read or written (``None``: there is none).
        self.version: bytes | None = None
        self.records = Records()
        self.gone: set[str] = set()  # records a deletion under way left unreadable
        self.bases: dict[str, tuple[str, bytes]] = {}  # see Tree.base
        self.extras: dict[int, Any] = {}  # node -> the patch the scope first stored there
        self.nodes: dict[int, Node] = {}
        self.child: dict[tuple[int, bytes], int] = {}  # (parent or 0, message hash) -> node
        self.msgs: dict[int, Any] = {}  # node -> its message, built with extras[node]
        self.by_obj: dict[int, tuple[int, Any, Any]] = {}  # id(message) -> (node, it, override)
        self.paths: OrderedDict[int, tuple[list[int], list[Any]]] = OrderedDict()
        self.last: tuple[list[Any], list[int], dict[int, Any]] | None = None
        # Writes handed over before their checkpoint: checkpoint id -> (writes, task, path).
        self.pending: dict[str, list[tuple[list[Any], str, str]]] = {}
