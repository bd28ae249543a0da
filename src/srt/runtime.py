"""The runtime: a storage engine, the shared caches and the sessions."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import drivers
from ._chain import Chain
from ._hashing import keyed
from ._shared import MAX_NAME_CHARS, Shared, check_name
from ._types import (
    SessionInfo,
    UsageSummary,
    binding_errors_typed,
    check_flag,
)
from .cache import DEFAULT_POLICY, CachePolicy
from .errors import ConfigError, SessionNotFoundError
from .history import delete_session, set_retention
from .message import DEFAULT_MAX_MESSAGE_BYTES
from .session import Session
from .store import BackupReport, GcReport, Store, open_store

if TYPE_CHECKING:  # (the reports load where they are made: not every program prices calls)
    from .ledger import LedgerReport
    from .pricing import Pricing
    from .savings import Savings

__all__ = ["MAX_NAME_CHARS", "Runtime", "check_name", "default_path"]


def default_path() -> str:
    """Where ``Runtime()`` keeps its database when no path is given.

    ``$SRT_DB`` if set; otherwise ``srt.db`` in the platform's user data directory
    (``~/.local/share/srt`` on Linux, ``~/Library/Application Support/srt`` on
    macOS, ``%LOCALAPPDATA%\\srt`` on Windows).
    """
    env = os.environ.get("SRT_DB")
    if env:
        return env
    import platformdirs  # (here: with tempfile and shutil, a few ms of ``import srt``)

    return os.path.join(platformdirs.user_data_dir("srt", appauthor=False), "srt.db")


def check_path(path: Any) -> str:
    """A database path given by the caller, as a ``str``; ``ConfigError`` if unusable."""
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"the database path must be a str or a path, got {type(path).__name__}")
    value = os.fspath(path)
    if not isinstance(value, str):
        raise ConfigError("the database path must be text, not bytes")
    if not value:
        raise ConfigError("the database path must not be empty")
    if "\x00" in value:
        raise ConfigError("the database path must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(
            "the database path must be valid text: it holds a lone surrogate (a name "
            "whose bytes are not UTF-8 cannot be opened by SQLite)"
        ) from None
    return value


def _check_int(name: str, value: Any, least: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name} must be an int, got {type(value).__name__}")
    if value < least:
        raise ConfigError(f"{name} must be at least {least}, got {value}")
    if value > sys.maxsize:
        raise ConfigError(f"{name} must be at most {sys.maxsize}, got {value}")


def _store_options(durability: Any, key: Any, hash_key: Any) -> dict[str, Any]:
    """The engine options ``Runtime`` takes, those given (``{}`` for the defaults)."""
    options: dict[str, Any] = {}
    if durability != "normal":
        if durability not in ("normal", "full"):
            raise ConfigError("durability must be 'normal' or 'full'")
        options["durability"] = durability
    if key is not None:
        if not isinstance(key, (str, bytes)) or not key:
            raise ConfigError("key must be a non-empty str or bytes")
        options["key"] = key
    if hash_key is not None:
        options["hashing"] = keyed(hash_key)
    return options


def _open(where: str, options: dict[str, Any]) -> Store:
    if not options:
        return open_store(where)
    try:
        return open_store(where, **options)
    except TypeError:  # an engine whose factory does not take one of the options
        given = sorted("hash_key" if name == "hashing" else name for name in options)
        raise ConfigError(
            f"the storage engine for {where!r} does not take {', '.join(given)}"
        ) from None


def _paths(value: Any, name: str) -> list[str]:
    """``value`` as a list of paths (``ConfigError`` if it is not a collection of them:
    a lone string would be read one character at a time)."""
    if isinstance(value, (str, bytes, os.PathLike)) or not isinstance(value, Iterable):
        raise ConfigError(f"{name} must be a list of directory paths, got {type(value).__name__}")
    out = list(value)
    if not all(isinstance(p, (str, os.PathLike)) for p in out):
        raise ConfigError(f"{name} must be a list of directory paths (str or os.PathLike)")
    return [os.fspath(p) for p in out]


@binding_errors_typed
class Runtime:
    """srt on one store: a SQLite file by default.

    >>> rt = srt.Runtime("chats.db")          # doctest: +SKIP
    >>> s = rt.session("support-42")          # doctest: +SKIP

    ``path_or_url`` is a file path or a ``sqlite:`` URL (the SQLite engine, the
    default), or the URL of another registered engine (``srt.store.ENGINES``, e.g.
    ``postgresql://...``); it defaults to ``default_path()``. ``store`` is an engine
    instance built elsewhere, instead of a path (``rt.close()`` closes its
    connections). ``history_retention`` is how long, in seconds, an earlier head stays
    reachable after a rewind or edit leaves it (default: the database's setting, 7 days
    unless ``set_history_retention`` changed it). ``redact`` is a redaction hook: a
    function applied to every string of every message before it is stored, e.g. to
    scrub API keys a user pastes into a chat. ``max_message_bytes`` bounds one
    message's canonical size; ``fragment_cache_bytes`` (32 MiB) bounds the in-memory
    cache of per-format fragments shared by all sessions of this runtime (and, as much
    again, that of message bodies long enough to share): a live session holds its own
    fragments in any case, and the caches serve what sessions share and what a session
    read again needs, and keep no more than this once handles are dropped. ``max_sessions``
    bounds how many sessions the store may hold: creating one more (a new name, a
    fork, an import) raises ``SessionLimitError`` and writes nothing (a summary
    request's own fork, deleted right after it, is not counted). ``cache`` (a
    ``CachePolicy``) is what a request's ``cache=True``, the default, means for this
    runtime's sessions (default: ``CachePolicy()``); a call's own ``CachePolicy`` wins.

    ``durability``: ``"normal"`` (the default) survives any process crash and may lose
    the last commits, never more, on a power loss or OS crash; ``"full"`` syncs every
    commit, so a returned append survives those too (docs/reliability.md).
    ``key`` (a passphrase or bytes) encrypts the file (the ``encryption`` extra);
    ``hash_key`` (16-64 random bytes) makes a new store hash its messages with a keyed
    BLAKE2b instead of XXH3, and must be given every time that store is opened.

    ``memory_budget`` (bytes) bounds what the sessions of this runtime hold in memory:
    their histories and assemblies, counted as each is used, least recently used first.
    Past the budget the least recently used sessions' state is dropped; a handle stays
    valid and reads its history again on its next use. A session in use (another
    thread in a call on it, or a call in flight holding its ``append=`` messages) is
    not dropped: it stays counted, as the most recently used, and the budget is
    exceeded by what sessions in use hold until they are done. With a budget, the two shared
    caches get at most a quarter of it each. Without one (the default), a session holds
    its state for as long as its handle lives. Either way, dropping a handle frees what
    it held, and once 4 MiB of it was dropped srt hands the freed memory back to
    the operating system (``malloc_trim`` where the C library has it).

    A keyword it does not take (``memory_budjet=``) is a ``ConfigError`` naming the
    nearest one it does.
    """

    def __init__(
        self,
        path_or_url: str | os.PathLike[str] | None = None,
        *,
        store: Store | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        fragment_cache_bytes: int = 32 * 1024 * 1024,
        redact: Callable[[str], str] | None = None,
        memory_budget: int | None = None,
        history_retention: float | None = None,
        max_sessions: int | None = None,
        durability: str = "normal",
        key: str | bytes | None = None,
        hash_key: bytes | None = None,
        cache: CachePolicy | None = None,
    ) -> None:
        _check_int("max_message_bytes", max_message_bytes, 1)
        if cache is not None and not isinstance(cache, CachePolicy):
            raise ConfigError(
                f"cache must be a srt.CachePolicy or None, got {type(cache).__name__}"
            )
        _check_int("fragment_cache_bytes", fragment_cache_bytes, 0)
        if redact is not None and not callable(redact):
            raise ConfigError("redact must be a function of one string, or None")
        if max_sessions is not None:
            _check_int("max_sessions", max_sessions, 0)
        options = _store_options(durability, key, hash_key)
        if memory_budget is not None:
            _check_int("memory_budget", memory_budget, 1)
            fragment_cache_bytes = min(fragment_cache_bytes, memory_budget // 4)
        if store is None:
            where = check_path(path_or_url) if path_or_url is not None else default_path()
            store = _open(where, options)
        elif path_or_url is not None:
            raise ConfigError("give Runtime a path or URL, or a store, not both")
        elif not isinstance(store, Store):
            raise ConfigError(f"store must be an srt.store.Store, got {type(store).__name__}")
        elif options:
            raise ConfigError(
                f"give {', '.join(sorted(options))} to the store you build, not to Runtime"
            )
        #: The storage engine (``srt.store.base.Store``): sessions, ledger, objects, gc.
        self.store = store
        #: Where the data lives: the file path, or the engine's URL without password.
        self.path = store.location
        self._shared = Shared(
            store,
            max_message_bytes=max_message_bytes,
            fragment_cache_bytes=fragment_cache_bytes,
            redact=redact,
            memory_budget=memory_budget,
            history_retention=history_retention,
            max_sessions=max_sessions,
            cache_policy=cache if cache is not None else DEFAULT_POLICY,
        )

    def __repr__(self) -> str:
        return f"<srt.Runtime path={self.path!r}>"

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection this runtime opened, and the thread its asyncio calls
        store replies in (a remote store's: ``drivers._off_loop``)."""
        self._shared.let_go()
        drivers.stop_writer(self.store)
        self.store.close()

    @property
    def max_sessions(self) -> int | None:
        """The most sessions this runtime lets the store hold (``None``: no limit)."""
        return self._shared.max_sessions

    @property
    def max_message_bytes(self) -> int:
        """The largest canonical message accepted, in bytes."""
        return self._shared.max_message_bytes

    @property
    def redact(self) -> Callable[[str], str] | None:
        """The redaction hook: applied to every string of every message (appended or
        received) before it is validated, hashed or stored."""
        return self._shared.redact

    def backup(self, dest: str | os.PathLike[str]) -> BackupReport:
        """Copy the store to the new file ``dest`` while it stays in use (SQLite's backup
        API): the copy holds every turn committed before the backup began, is checked
        before it is put in place, and is encrypted with the store's key if the store
        is encrypted. An existing ``dest`` is never overwritten."""
        return self.store.backup(check_path(dest))

    def rekey(self, key: str | bytes | None) -> None:
        """Re-encrypt the store under ``key``, or with ``None`` decrypt it (a plain store
        is encrypted by its first rekey). Close every other handle on the file first:
        no other process may have it open meanwhile."""
        rekey = getattr(self.store, "rekey", None)
        if rekey is None:
            raise ConfigError(f"the {type(self.store).__name__} engine has no encryption key")
        rekey(key)

    @property
    def encrypted(self) -> bool:
        """Whether the store is encrypted (opened with a key)."""
        return bool(getattr(self.store, "encrypted", False))

    @property
    def hashing(self) -> str:
        """How the store hashes messages: ``"xxh3-128"`` or ``"blake2b-128-keyed"``."""
        return self.store.hashing.name

    def gc(
        self,
        *,
        secure_delete: bool = True,
        dry_run: bool = False,
        state_dirs: Sequence[str] | None = None,
        sweeps: bool = True,
    ) -> GcReport:
        """The sweeps of the kinds of objects this store holds (``store.sweeps``: the
        gateway's texts no record names), then ``store.gc``, then the local provider's
        saved KV states of this store whose conversation was collected (``<store
        id>-<prefix>.bin`` in ``state_dirs``, default the provider's default
        directory): they decode back to the deleted text, so they go too. With
        ``dry_run``, each counts what would go and nothing is removed. With
        ``sweeps=False`` no sweep runs (``swept`` is empty): for a caller that has just
        run them itself, as a gateway worker's sweep has (``gateway.orphans``)."""
        # (here: the package ``srt.local`` loads llama.cpp's server module, and with it
        # httpx, which ``import srt`` does not pay for)
        from .local.slots import default_state_dirs, saved_states
        from .store.sweeps import sweeps_for  # (a dataclass: 0.6 ms not every import pays)

        check_flag("secure_delete", secure_delete)
        check_flag("dry_run", dry_run)
        check_flag("sweeps", sweeps)
        dirs = default_state_dirs() if state_dirs is None else _paths(state_dirs, "state_dirs")
        run = sweeps_for(self.store) if sweeps else []
        swept = tuple((s.kind, s.collect(self.store, dry_run)) for s in run)
        store_id = self.store.store_id
        found = saved_states(dirs, store_id)
        report = self.store.gc(secure_delete=secure_delete, dry_run=dry_run, watch=list(found))
        doomed = [(p, n) for prefix in report.dead_prefixes for p, n in found[prefix]]
        if not dry_run:
            for path, _n in doomed:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
        return dataclasses.replace(
            report, state_files=len(doomed), state_bytes=sum(n for _, n in doomed), swept=swept
        )

    # -- public API --------------------------------------------------------------

    @property
    def memory(self) -> dict[str, int]:
        """Bytes the live sessions' state holds (an estimate, as charged against the
        memory budget), the ``budget`` (0: none), and ``evictions`` so far; ``kept``:
        the part of ``live`` that dropped handles left for the next handle of their
        session (see ``Runtime.session``)."""
        shared = self._shared
        b = shared.budget
        return {
            "live": b.used,
            "budget": b.limit or 0,
            "evictions": b.evictions,
            "kept": shared.kept_bytes,
        }

    @property
    def serialized(self) -> int:
        """Messages serialized by this runtime so far (appends plus fragment misses)."""
        return self._shared.serialized

    def usage(self) -> UsageSummary:
        """Totals of every request in this store's usage ledger."""
        return UsageSummary.of(self.calls())

    @property
    def history_retention(self) -> float:
        """Seconds an earlier head stays reachable after the head leaves it
        (``srt.history``): this runtime's ``history_retention``, else the database's."""
        return self._shared.history_retention()

    def set_history_retention(self, seconds: float) -> int:
        """Store the database's retention of earlier heads and re-date the records of
        every session; a record now past it is freed by the next ``gc``. Returns how
        many records were re-dated."""
        ids = [row.id for info in self.sessions() if (row := self.store.get_session(info.name))]
        n = set_retention(self.store, seconds, ids)
        self._shared.set_history_retention(seconds)
        return n

    def calls(self, session_name: str | None = None) -> list[dict[str, Any]]:
        """Every row of the usage ledger, oldest first; with ``session_name``, the rows
        recorded under that name (a deleted session's too)."""
        if session_name is not None:
            check_name(session_name)
        return [c.as_dict() for c in self.store.calls(session_name=session_name)]

    def savings(
        self,
        pricing: Pricing | None = None,
        rows: Iterable[Mapping[str, Any]] | None = None,
    ) -> Savings:
        """Billed input over ``rows`` (default: every request in this store's ledger),
        against a careful stateless client under the same caching rules and a client
        with no caching (``srt.savings``; the careful client's prefixes follow this
        store's history). Given ``rows`` are rows of this store's ledger (named by their
        ``id``): the careful client sees every request of the ledger, as a client on the
        same account would, and the totals are those of ``rows``."""
        from .savings import of_store

        return of_store(self.store, rows, pricing)

    def verify_ledger(self) -> LedgerReport:
        """Rebuild every ledger row's body from the stored history and its recorded
        parameters, and check it against the recorded hash and size (``srt.ledger``)."""
        from .ledger import verify_ledger

        return verify_ledger(self._shared, self.calls())

    def session(self, name: str, *, create: bool = True) -> Session:
        """Open the session called ``name``, creating it empty unless ``create=False``.

        A new handle of a long session takes over what its last dropped handle left, if
        the runtime kept it and it is still the stored history, so one handle per request
        costs what is new (docs/api.md); otherwise it reads the store on first use."""
        check_name(name)
        check_flag("create", create)
        row = self.store.get_session(name)
        if row is None:
            if not create:
                raise SessionNotFoundError(f"no session named {name!r}")
            row = self.store.create_session(name, None, exist_ok=True, limit=self.max_sessions)
        return self._handle(row.id, name, row.head, row.head_prefix)

    def create(self, name: str) -> Session:
        """A new, empty session called ``name``; ``SessionExistsError`` if one exists."""
        row = self.store.create_session(
            check_name(name), None, exist_ok=False, limit=self.max_sessions
        )
        return self._handle(row.id, name, row.head)

    def _handle(
        self, sid: int, name: str, head: int | None, head_prefix: bytes | None = None
    ) -> Session:
        """A new handle of session ``sid``: it takes over the state the session's last
        collected handle left, when kept and still the stored history (one web request
        after another then costs what is new, not a read of the history); otherwise it
        reads the store on first use."""
        shared = self._shared
        kept = shared.revive(sid) if shared.kept else None
        if kept is not None:
            with kept.lock:
                resumed = kept.chain.resume(name, head, head_prefix)
            if resumed:
                return Session(shared, kept.chain, kept)
        return Session(shared, Chain(shared, sid, name, head, head_prefix))

    def sessions(self) -> list[SessionInfo]:
        """Every session, sorted by name."""
        return self.store.list_sessions()

    def delete(self, name: str) -> None:
        """Delete a session's head and, in the same transaction, what is filed under its
        id (``srt.store.owners``: its earlier heads, its tasks' started tool calls). Its
        messages stay for any fork that shares them; ``gc`` frees the rest."""
        delete_session(self.store, check_name(name))

    def rename(self, old: str, new: str) -> None:
        """Rename a session."""
        self.store.rename_session(check_name(old), check_name(new))
