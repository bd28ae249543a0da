"""Long values stored once per tenant (``gw.text``), and their collection.

A response's instructions and tools are usually the same every turn, and a rewritten
history's kept item ids (``idmap.Kept``) are long: each is stored once per tenant as a
text, keyed by its SHA-256 (128 bits), and records (responses, conversations) name it by
key. A text no live record names is garbage: ``collect`` deletes it once it has not been
used for ``grace_s``.

A *use* is a write or read of a text by a turn or a read of a record (``put``, ``get``,
``use``): it refreshes the text's mark (the object's ``updated`` time) by writing the
text again, but only when the mark this worker knows is older than a quarter of the
grace period, so a turn reusing a text costs no write (one per text per worker every
``grace_s / 4``). ``collect`` deletes a text only if no live record names it and it was
last written before ``now - grace_s``, checked by the store atomically with the deletion
(``delete_object(written_before=...)``): a writer that refreshes it meanwhile keeps it,
and one whose refresh comes after the deletion writes it again. A writer that skipped
the refresh saw a mark under ``grace_s / 4`` old, so its text cannot be collected for
another ``3/4 * grace_s``: far longer than a turn takes between using a text and writing
the record that names it. A record naming a text that is gone is a damaged one.
``srt gc`` (``Runtime.gc``) runs the same collection, from any process (the sweep
``records`` declares in ``store.sweeps``).

``collect`` reads the texts first and the records only while some text old enough to go
is not yet known to be named, so a store whose texts are all in use reads no record.
The workers serving a store sweep on a timer (``SWEEP_S``), but only one of them in each
interval: the one that takes the store's lease (``sweep``, ``store.sweeps.take``). A text
a sweep deletes leaves no bytes in a SQLite file (the store zeroes an object's deleted
and overwritten bytes) and, as the sweep checkpoints after deleting, none in its WAL.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from ..store import sweeps
from ..store.base import Store

__all__ = ["GRACE_S", "SWEEP_S", "TEXT", "Texts", "dumps"]

log = logging.getLogger("srt.gateway")

TEXT = "gw.text"
#: A text no record names is kept this long after its last use.
GRACE_S = 86400.0
#: How often a gateway worker collects texts (its heartbeat thread).
SWEEP_S = 3600.0
#: Texts kept in memory by each worker.
_CACHE = 256


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def key_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]  # 128 bits of SHA-256


def named(rec: Any) -> Iterable[str]:
    """The keys of the texts a stored record (response or conversation) names."""
    if not isinstance(rec, dict):
        raise ValueError("the record is not an object")
    texts = rec.get("texts") or {}
    if not isinstance(texts, dict):
        raise ValueError("'texts' is not an object")
    keys = [*texts.values(), *([rec["kept"]] if rec.get("kept") is not None else [])]
    if not all(isinstance(k, str) for k in keys):
        raise ValueError("a text's key is not a string")
    return keys


class Texts:
    """The texts of one store, with this worker's cache of them and of their marks."""

    def __init__(self, store: Store, grace_s: float = GRACE_S) -> None:
        self.store = store
        self.grace_s = grace_s
        self._lock = threading.Lock()
        self._values: dict[tuple[str, str], tuple[Any, bytes]] = {}  # content-addressed
        self._keys: dict[tuple[str, str], str] = {}  # (tenant, JSON) -> its key
        self._str_keys: dict[tuple[str, str], str] = {}  # (tenant, a string value) -> key
        self._marks: dict[tuple[str, str], float] = {}  # the newest mark this worker knows

    def _remember(self, tenant: str, key: str, data: bytes, value: Any, mark: float) -> None:
        with self._lock:
            if len(self._values) >= _CACHE:
                self._values.clear()
                self._keys.clear()
                self._str_keys.clear()
                self._marks.clear()
            self._values[(tenant, key)] = (value, data)
            self._keys[(tenant, data.decode("utf-8"))] = key
            if isinstance(value, str):
                self._str_keys[(tenant, value)] = key
            self._marks[(tenant, key)] = max(mark, self._marks.get((tenant, key), mark))

    def _fresh(self, tenant: str, key: str, now: float) -> bool:
        mark = self._marks.get((tenant, key))
        return mark is not None and now - mark < self.grace_s / 4

    def _mark(self, tenant: str, key: str, data: bytes, value: Any) -> None:
        """Refresh the text's mark unless this worker knows it is recent (the write
        also stores a text collected meanwhile again)."""
        now = time.time()
        if self._fresh(tenant, key, now):
            return
        row = self.store.get_object(TEXT, tenant, key)
        if row is None or now - row.updated >= self.grace_s / 4:
            self.store.put_object(TEXT, tenant, key, data)
            mark = now
        else:
            mark = row.updated
        self._remember(tenant, key, data, value, mark)

    def put(self, tenant: str, value: Any) -> str | None:
        """Store a JSON value once (by its SHA-256); return its key (None for empty)."""
        if not value:
            return None
        key = self._str_keys.get((tenant, value)) if isinstance(value, str) else None
        data = None
        if key is None:
            data = dumps(value)
            key = self._keys.get((tenant, data.decode("utf-8")))
        if key is not None:
            cached = self._values.get((tenant, key))
            if cached is not None:
                self._mark(tenant, key, cached[1], cached[0])
                return key
        data = dumps(value) if data is None else data
        key = key_of(data)
        self._mark(tenant, key, data, value)
        return key

    def get(self, tenant: str, key: str) -> Any:
        """The text ``key`` names (a use), or None if it is not stored."""
        cached = self._values.get((tenant, key))
        if cached is None:
            row = self.store.get_object(TEXT, tenant, key)
            if row is None:
                return None
            data = bytes(row.value)
            cached = (json.loads(data), data)
            self._remember(tenant, key, data, cached[0], row.updated)
        self._mark(tenant, key, cached[1], cached[0])
        value = cached[0]
        return value if isinstance(value, str) else copy.deepcopy(value)

    def use(self, tenant: str, key: str) -> None:
        """Mark a text a record about to be written names (read from another record);
        ``ValueError`` if it is not stored."""
        if self.get(tenant, key) is None:
            raise ValueError(f"the text {key} is not stored")

    def forget(self, tenant: str, key: str) -> None:
        with self._lock:
            got = self._values.pop((tenant, key), None)
            self._marks.pop((tenant, key), None)
            if got is not None:
                self._keys.pop((tenant, got[1].decode("utf-8")), None)
                if isinstance(got[0], str):
                    self._str_keys.pop((tenant, got[0]), None)

    def collect(self, kinds: Iterable[str], *, dry_run: bool = False) -> int:
        """Delete the texts no live record of ``kinds`` names and not used for
        ``grace_s`` (see the module); how many went (with ``dry_run``, how many would
        go: nothing is deleted). A tenant with a record that cannot be read keeps all
        its texts (what it names is not known).

        The texts are read first: the records are read only if one is old enough to go,
        only until each such text is found named, and parsed only in its tenant (a
        store whose texts are all in use reads no record). Having deleted one, it
        checkpoints the store, so the text's bytes (zeroed by the store in the file) are
        not left in SQLite's WAL either."""
        before = time.time() - self.grace_s
        old: dict[str, set[str]] = {}  # tenant -> its texts old enough to go
        for row in self.store.scan_objects(kind=TEXT):
            if row.updated < before:
                old.setdefault(row.scope, set()).add(row.key)
        for kind in kinds:
            if old:
                self._spare(kind, old)
        if dry_run:
            return sum(map(len, old.values()))
        gone = 0
        for tenant, keys in sorted(old.items()):
            for key in sorted(keys):
                if self.store.delete_object(TEXT, tenant, key, written_before=before):
                    self.forget(tenant, key)
                    gone += 1
        if gone:
            self.store.checkpoint()
            log.info("texts: %d no record names collected", gone)
        return gone

    def _spare(self, kind: str, old: dict[str, set[str]]) -> None:
        """Take out of ``old`` the texts a live record of ``kind`` names (all of a
        tenant's if one of its records cannot be read); stops reading once ``old`` is
        empty."""
        with sweeps.scanning(self.store, kind) as rows:
            for row in rows:
                keys = old.get(row.scope)
                if keys is None:
                    continue
                try:
                    keys.difference_update(named(json.loads(row.value)))
                except ValueError as exc:
                    log.warning("%s %s: its record cannot be read (%s)", kind, row.key, exc)
                    keys.clear()
                if not keys:
                    del old[row.scope]
                    if not old:
                        return

    def sweep(self, kinds: Iterable[str], every_s: float = SWEEP_S) -> int | None:
        """``collect``, run once in each ``every_s`` by one of the workers serving the
        store, whichever takes the store's lease first (``sweeps.take``); None for the
        others, which read nothing."""
        if not sweeps.take(self.store, TEXT, every_s):
            return None
        return self.collect(kinds)
