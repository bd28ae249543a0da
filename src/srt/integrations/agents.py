"""The OpenAI Agents SDK's session memory, kept in srt: ``SrtSession``.

    from agents import Agent, Runner
    from srt.integrations.agents import SrtSession

    session = SrtSession("support-42", "chats.db")
    result = await Runner.run(agent, "hi", session=session)

``SrtSession`` implements the SDK's ``Session`` protocol (``session_id``,
``session_settings``, ``get_items(limit)``, ``add_items``, ``pop_item``,
``clear_session``, each also taking the ``wrapper`` keyword the SDK passes to sessions
that accept it). Install it with ``pip install 'stateful-runtime[agents]'``.

**Items.** Each item is one message of an srt session (``srt.integrations._items``
says which), so the conversation is content-addressed like any other: a prefix two
conversations share is stored once, and ``srt show`` reads it. What the canonical
message leaves out of an item (its ids, statuses, ``provider_data``, a reasoning item
as a whole) is kept beside it as a small patch, and ``get_items`` gives every item back
exactly as it was added.

**Branches.** ``fork(at_turn)`` starts a branch that shares the conversation up to
before user turn ``at_turn`` (an srt fork: no message or item is copied);
``switch_to(branch)`` and ``branches()`` move between and list them. The first
branch is ``"main"``, the srt session named ``session_id``; another branch ``b`` is the
srt session ``f"{session_id}@{b}"``.

**Compaction.** ``replace_items(items)`` makes ``items`` the current branch's whole
history in one transaction (``_agreplace``; its ``_get_compaction_snapshot``, only the
newest part); the SDK's ``OpenAIResponsesCompactionSession`` uses it in place of
``clear_session()`` plus ``add_items``, so compacting one branch
leaves the others as they were, and a crash leaves the old history or the new one.

**Usage.** When the SDK passes its run context (``wrapper``), every model request it
made since the last ``add_items`` is written to srt's usage ledger against the items
it produced (``_usage``); ``turn_usage()`` sums the ledger per user turn of the current
branch (the turns with usage, each branch's own requests only, as the SDK's
``AdvancedSQLiteSession``), ``get_turn_usage`` in the SDK's shapes, and
``session_usage(branch=None)`` (``get_session_usage``) over the session or one branch. A
clear, or popping a turn's user message, takes its usage along (in the same write).
Under compaction, ``SrtCompactionSession`` (``_agcompact``) passes it on.

The branch records, the current branch, the settings and the patches are srt
objects (kinds ``agents.branch``, ``agents.state``, ``agents.item``, scope
``session_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from agents.memory.session_settings import (
    SessionSettings,
    coerce_session_settings,
    resolve_session_limit,
)

from ..errors import (
    ConfigError,
    ConflictError,
    InvalidMessageError,
    SessionExistsError,
    SessionNotFoundError,
)
from ..message import dumps
from ..runtime import Runtime, check_name
from ..session import Session
from ..store.base import ObjectPut
from . import _append, _usage
from ._agbranches import MAIN, Branches
from ._agcompact import SrtCompactionSession
from ._agreplace import Replace
from ._itemstore import (
    USER,
    Branch,
    Cache,
    Snapshot,
    branch_of,
    item_key,
    prepare,
    shelf,
    split_entry,
    visible,
)
from ._itemstore import digest as _digest
from ._itemstore import entry as _entry

__all__ = ["MAIN", "SrtCompactionSession", "SrtSession", "prepare"]

_BRANCH = "agents.branch"
_STATE = "agents.state"
_ITEM = "agents.item"
_PAGE = 500
_RETRIES = 64
_T = TypeVar("_T")


class SessionSettingsError(ConfigError, TypeError):
    """Session settings the SDK refuses: a ``ConfigError``, and the ``TypeError`` the
    SDK's own sessions raise for them (a ``ValueError`` too, as pydantic's is)."""


def _settings(value: Any) -> SessionSettings:
    """``value`` (a ``SessionSettings`` or a dict of its fields) as the SDK's settings."""
    try:
        return coerce_session_settings(value)
    except (TypeError, ValueError) as exc:  # (pydantic's ValidationError is a ValueError)
        raise _settings_error(value, exc) from None


def _settings_error(value: Any, exc: Exception) -> SessionSettingsError:
    """What is wrong with ``value`` as the SDK's session settings (``exc``: what the SDK
    or pydantic said), in one line."""
    errors = getattr(exc, "errors", None)
    if callable(errors):  # (pydantic's: a field and what is wrong with it, each)
        said = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors())
    else:
        said = " ".join(str(exc).split())
    return SessionSettingsError(
        f"session_settings must be the SDK's SessionSettings or a dict of its fields "
        f"(got {type(value).__name__}): {said}"
    )


class SrtSession(Branches, Replace, _usage.Ledger):
    """An Agents SDK ``Session`` whose items live in srt (see the module docstring).

    ``db`` is a ``Runtime`` (shared, not closed by ``close()``) or a path for one
    this session opens and closes. ``session_settings`` is kept with the session;
    without it, the settings kept earlier apply (or the SDK's defaults). ``branch``
    switches to that branch on opening. ``model`` names the model in the usage ledger
    when the items do not (Chat Completions items carry it; Responses items do not).
    """

    session_settings: SessionSettings | None

    def __init__(
        self,
        session_id: str,
        db: Runtime | str | os.PathLike[str] | None = None,
        *,
        session_settings: SessionSettings | dict[str, Any] | None = None,
        branch: str | None = None,
        model: str | None = None,
    ) -> None:
        check_name(session_id)
        if model is not None and not isinstance(model, str):
            raise ConfigError(
                f"model must be a model name (str) or None, got {type(model).__name__}"
            )
        given = _settings(session_settings) if session_settings is not None else None
        self.model = model
        self.session_id = session_id
        self._own = not isinstance(db, Runtime)
        self._rt = db if isinstance(db, Runtime) else Runtime(db)
        self._store = self._rt.store
        self._lock = threading.RLock()
        self._recorded: dict[int, tuple[weakref.ref[Any], int]] = {}
        self._patches: dict[str, bytes] = {}  # item key -> patch entry (_itemstore)
        with self._lock:
            self._branches = self._load_branches()
            if MAIN not in self._branches:
                self._not_a_branch()
                main = Branch(MAIN, session_id, None, 0, time.time())
                self._store.put_object(_BRANCH, session_id, MAIN, main.encode())
                self._branches[MAIN] = main
            row = self._store.get_object(_STATE, session_id, "settings")
            if given is not None:
                self.session_settings = given
                self._store.put_object(
                    _STATE, session_id, "settings", dumps(self.session_settings.to_dict())
                )
            elif row is not None:
                self.session_settings = coerce_session_settings(json.loads(row.value))
            else:
                self.session_settings = SessionSettings()
            current = self._store.get_object(_STATE, session_id, "current")
            self._open(branch or (current.value.decode() if current is not None else MAIN))

    def __repr__(self) -> str:
        return f"<srt.integrations.agents.SrtSession {self.session_id!r} branch={self._branch!r}>"

    # -- plumbing ------------------------------------------------------------------------

    def _not_a_branch(self) -> None:
        """A new session's srt session must not be another session's branch: session
        ``"a@b"`` would read and write branch ``b`` of session ``"a"``, and lose its items
        when ``"a"`` is cleared."""
        found = branch_of(self._store, self.session_id)
        if found is not None:
            owner, name = found
            raise SessionExistsError(
                f"{self.session_id!r} is branch {name!r} of session {owner!r}: open that "
                f"one with branch={name!r}, or give this session another id"
            )

    def _load_branches(self) -> dict[str, Branch]:
        out: dict[str, Branch] = {}
        after: str | None = None
        while True:
            rows = self._store.list_objects(_BRANCH, self.session_id, after=after, limit=_PAGE)
            for r in rows:
                out[r.key] = Branch.decode(r.key, r.value)
            if len(rows) < _PAGE:
                return out
            after = rows[-1].key

    def _load_patches(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        after: str | None = None
        while True:
            rows = self._store.list_objects(_ITEM, self.session_id, after=after, limit=_PAGE)
            out.update((r.key, r.value) for r in rows)
            if len(rows) < _PAGE:
                return out
            after = rows[-1].key

    def _open(self, branch: str) -> None:
        """Make ``branch`` current (it must exist) and drop what was cached."""
        info = self._branches.get(branch)
        if info is None:
            self._branches = self._load_branches()
            info = self._branches.get(branch)
        if info is None:
            raise SessionNotFoundError(f"session {self.session_id!r} has no branch {branch!r}")
        self._branch = branch
        self._s: Session = self._rt.session(info.session)
        row = self._store.get_session(info.session)
        self._sid = row.id if row is not None else None  # (another by that name: not it)
        self._cleared = self._clear_mark()  # (a clear after this removes the branch)
        self._cache: Cache | None = None  # the items of the head below
        # The (head, updated) of the session row the cache is for: a pop and an add of the
        # same text by another handle bring the head back, but not its time.
        self._cache_key: tuple[int | None, float] | None = None
        self._users: list[int] | None = None  # where the user messages are (None: unknown)

    def _items(self) -> Cache:
        """The items of the current branch, brought up to date."""
        row = self._store.get_session(self._s.name)
        if row is None or row.id != self._sid:
            self._gone()
            row = self._store.get_session(self._s.name)
            if row is None:
                raise SessionNotFoundError(f"the srt session {self._s.name!r} is gone")
        key = (row.head, row.updated)
        if self._cache is not None and key == self._cache_key:
            return self._cache
        self._branches = self._load_branches()
        snap = shelf(self._rt).get(self._s.name, key)
        if snap is not None:  # another handle of this runtime has them
            self._cache, self._cache_key = snap.items, key
            self._users, self._patches = snap.users, snap.entries
            return self._cache
        rows = self._store.chain(row.head)
        self._branches = self._load_branches()
        self._patches = self._load_patches()
        bodies = [r[2] for r in rows]
        patches: list[bytes | None] = [None] * len(bodies)
        for pos, entry in visible(self._patches, self._branches, self._branch).items():
            digest, patch = split_entry(entry)
            # (a patch kept for other text, or past the end, is not this item's)
            if pos < len(bodies) and patch != b"null" and digest == _digest(bodies[pos]):
                patches[pos] = patch
        out = Cache(bodies, patches, [r[0] for r in rows], [r[3] for r in rows])
        # A canonical message's only unescaped '"role":' is its own (no part or call
        # holds a role, and quotes inside strings are escaped).
        users = [i for i, body in enumerate(bodies) if USER in body]
        self._cache, self._cache_key, self._users = out, (row.head, row.updated), users
        self._publish()
        return out

    def _clear_mark(self) -> bytes | None:
        """What the last ``clear_session`` of this session (by any handle) wrote."""
        row = self._store.get_object(_STATE, self.session_id, "cleared")
        return row.value if row is not None else None

    def _gone(self) -> None:
        """The current branch's srt session is gone (or another one has its name). After
        a ``clear_session`` (by another handle) since this handle last looked, it goes on
        on ``main``, as the SDK's ``AdvancedSQLiteSession`` handles do; else the branch
        was deleted under it."""
        if self._clear_mark() != self._cleared:
            self._open(MAIN)
            return
        raise SessionNotFoundError(
            f"branch {self._branch!r} of session {self.session_id!r} was deleted (by another "
            "handle): switch_to another branch"
        )

    def _mark(self, head: int | None, items: Cache, users: list[int]) -> None:
        """``items`` (the cache a write of this handle extended or cut; ``users``, where
        their user messages are) are the items of ``head``, which it has just written:
        they are the cache, valid while the session row is as that write left it. (Not
        whatever ``self._cache`` is by then: had a read come between this handle's read
        and its write, the new head's key stamped on the object it loaded would name
        items it lacks.)"""
        self._cache, self._users = items, users
        row = self._store.get_session(self._s.name)
        if row is None or row.head != head:
            self._cache_key = None
            return
        self._cache_key = (row.head, row.updated)
        self._publish()

    def _publish(self) -> None:
        if self._cache is None or self._cache_key is None or self._users is None:
            return
        snap = Snapshot(self._cache_key, self._cache, self._users, self._patches)
        shelf(self._rt).put(self._s.name, snap)

    def _user_positions(self, items: Cache) -> list[int]:
        """Where the user messages of ``items`` are (the cache ``_items`` returned: worked
        out once per load). It reads nothing: a caller's items and their user messages
        come from one read of the branch."""
        if items is self._cache and self._users is not None:
            return self._users
        users = [i for i, body in enumerate(items.bodies) if USER in body]
        if items is self._cache:
            self._users = users
        return users

    def _visible(self, pos: int, branch: str | None = None) -> bytes | None:
        """The patch entry a branch (the current one by default) sees for item ``pos``
        (its own, or an ancestor's below the point where the line of forks left it)."""
        info = self._branches.get(self._branch if branch is None else branch)
        below: int | None = None
        while info is not None:
            entry = self._patches.get(item_key(info.name, pos))
            if entry is not None:
                return entry
            below = info.at if below is None else min(below, info.at)
            if pos >= below or info.parent is None:
                return None
            info = self._branches.get(info.parent)
        return None

    def _patch_puts(self, start: int, entries: list[tuple[str, Any]]) -> dict[str, bytes]:
        """The patch entries to write with items ``start``, ``start + 1``, ... given as
        (text digest, patch): each patch, or an empty one where an entry (a popped item's,
        or one the branch inherits) would otherwise apply. A fork that shares a place
        keeps the entry it saw there: it is copied to the fork first. An entry already
        there for the same text and patch is written again, not relied on: it may be
        one a clear running meanwhile has yet to delete (it deletes those written before
        it started), and the item would lose its patch."""
        branch = self._branch
        children = [c for c in self._branches.values() if c.parent == branch]
        puts: dict[str, bytes] = {}
        for i, (digest, patch) in enumerate(entries):
            pos = start + i
            seen = self._visible(pos)
            new = _entry(digest, patch)
            if patch is None and seen is None:
                continue
            if seen == new:
                puts[item_key(branch, pos)] = new  # (its forks see the same: no copy)
                continue
            for child in children:
                key = item_key(child.name, pos)
                if child.at > pos and key not in self._patches:
                    puts[key] = seen or _entry("", None)
            puts[item_key(branch, pos)] = new
        return puts

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        def locked() -> _T:
            with self._lock:
                return fn(*args)

        return await asyncio.to_thread(locked)

    async def _change(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``_run`` for a change: see ``_append.settled``."""
        return await _append.settled(self._run(fn, *args))

    # -- the Session protocol ------------------------------------------------------------

    async def get_items(self, limit: int | None = None, *, wrapper: Any = None) -> list[Any]:
        """The items of the current branch, oldest first; with ``limit``, the last ones."""
        try:  # (``session_settings`` is the SDK's attribute: anything may be put there)
            n = resolve_session_limit(limit, self.session_settings)
        except (TypeError, ValueError) as exc:
            raise _settings_error(self.session_settings, exc) from None
        if n is not None and not isinstance(n, int):
            raise ConfigError(f"limit must be an int or None, got {type(n).__name__}")
        items = await self._run(self._items)
        return items.tail(n).decode()

    async def add_items(self, items: list[Any], *, wrapper: Any = None) -> None:
        """Append items to the current branch, exactly as given."""
        if not items:
            return
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
            raise InvalidMessageError(
                f"add_items takes a list of Responses items, got {type(items).__name__}"
            )
        items = list(items)
        await self._change(self._add, items, wrapper if wrapper is not None else _usage.RUN.get())

    def _add(self, items: list[Any], wrapper: Any) -> None:
        prepared = prepare(self._rt, items)
        for attempt in range(_RETRIES):
            _append.backoff(attempt)
            cached = self._items()
            start = len(cached)
            puts = self._patch_puts(start, [(p[1], p[2]) for p in prepared])
            objects = [ObjectPut(_ITEM, self.session_id, k, v) for k, v in puts.items()]
            at = self._cache_key[0] if self._cache_key is not None else None  # (_items set it)
            bodies = [p[3] for p in prepared]
            users = self._user_positions(cached) + [
                start + i for i, p in enumerate(prepared) if p[0]["role"] == "user"
            ]
            # The requests' ledger rows (the first) and the marks in the same write: a new
            # run's rows replace the usage of the turn they are for (``_rows_puts``).
            rows = self._unwritten(wrapper, items)
            marks = self._rows_puts(wrapper, rows, users, cached)
            try:
                ids, prefixes = _append.append(
                    *(self._rt, self._s.name, at, start, cached.prefix, bodies, objects + marks),
                    call=rows[0] if rows else None,
                )
            except ConflictError:
                self._cache = self._cache_key = None  # (and the runtime's copy: stale too)
                shelf(self._rt).discard(self._s.name)
                continue
            self._patches.update(puts)
            for p, node, prefix in zip(prepared, ids, prefixes, strict=True):
                cached.add(p[3], p[4], node, prefix)
            self._mark(ids[-1], cached, users)
            if rows:
                self._wrote(wrapper, rows, ids[-1], marks[0])
            return
        raise ConflictError(f"could not add to session {self.session_id!r}: it kept moving")

    async def pop_item(self, *, wrapper: Any = None) -> Any:
        """Remove and return the newest item of the current branch (``None`` if empty)."""
        return await self._change(self._pop)

    def _pop(self) -> Any:
        for _ in range(_RETRIES):
            cached = self._items()
            if not cached:
                return None
            users = self._user_positions(cached)
            try:
                self._s.refresh()  # (adds go to the store without this handle)
                if self._cache_key is None or self._s.head != self._cache_key[0]:
                    raise ConflictError("the session moved")
                # (the marks in the same write, over those read: a racing pop -> again)
                self._s.rewind(1, objects=self._usage_cut(cached, users, len(cached) - 1))
            except ConflictError:
                self._cache = None
                continue
            # Its patch entry stays: the next item added in its place writes over it.
            (item,) = cached.tail(1).decode()
            cached.pop()
            if users and users[-1] == len(cached):
                users.pop()
            self._mark(self._s.head, cached, users)
            return item
        raise ConflictError(f"could not pop from session {self.session_id!r}: it kept moving")

    async def clear_session(self, *, wrapper: Any = None) -> None:
        """Remove every item of every branch, as ``AdvancedSQLiteSession`` does; the
        session is left with an empty ``main`` (srt forks of its sessions keep theirs)."""
        await self._change(self._clear)

    def _clear(self) -> None:
        # main first (one head move), then the branches leaves first, then the patch
        # entries written before: a crash part way leaves main empty and whole branches,
        # never an item without its patch (clear_session again finishes the job).
        started = time.time()
        self._switch(MAIN)
        # (first: a handle that finds its branch gone then knows it was a clear)
        self._cleared = uuid.uuid4().hex.encode()
        self._store.put_object(_STATE, self.session_id, "cleared", self._cleared)
        for _ in range(_RETRIES):
            self._s.refresh()
            with contextlib.suppress(ConflictError):
                self._s.rewind(len(self._s), objects=self._usage_cleared())  # (one write)
                break
        else:
            raise ConflictError(f"could not clear session {self.session_id!r}: it kept moving")
        self._branches = branches = self._load_branches()

        def depth(b: Branch) -> int:
            return 0 if b.parent not in branches else 1 + depth(branches[b.parent])

        for b in sorted(branches.values(), key=depth, reverse=True):
            if b.name != MAIN:
                self._store.delete_object(_BRANCH, self.session_id, b.name)
                self._usage_forget(b.name)
                with contextlib.suppress(SessionNotFoundError):
                    self._rt.delete(b.session)
        for key in self._load_patches():
            self._store.delete_object(_ITEM, self.session_id, key, written_before=started)
        self._branches = {MAIN: branches[MAIN]}
        self._patches = self._load_patches()  # (none, unless an add came meanwhile)
        self._cache, self._cache_key, self._users = None, None, None

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the runtime this session opened (a runtime passed in stays open)."""
        if self._own:
            self._rt.close()
