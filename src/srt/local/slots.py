"""Session-aware slot routing for the ``local`` provider, and its counters.

llama.cpp's server keeps one KV sequence per slot and reuses the longest common
token prefix between a slot's tokens and the next prompt sent to it. With
several sessions on one server, which slot a request goes to decides how much of
its prompt is evaluated again. ``Router`` keeps a table of what each slot holds,
as the chain of prefix hashes of the messages last sent to it (the same hashes
the store keys its nodes by), and picks for each session:

* **warm**: the slot holding this session's own last prompt;
* **shared**: else the slot sharing the longest message prefix with it (a fork,
  or the same system prompt);
* **restored**: else, when a KV state saved to disk covers a longer prefix of the
  session than any slot does, a free slot, into which that state is restored
  before the request (``/slots/{id}?action=restore``);
* **cold**: else the least recently used free slot.

A slot whose state would be overwritten is saved to disk first, under the prefix
hash of the prompt it holds (``<store id>-<prefix hash>.bin``: the session's store and
the store's own prefix hash of that message, so a keyed store's names are keyed too),
as is every slot when the provider closes; a session that resumes, in this process or
after a restart, finds the deepest saved state in its chain.

A saved state decodes back to the conversation, so it is kept as privately as the
store: files 0600 in a directory 0700 (the server child runs under umask 077), and
``srt gc`` removes the states whose prefix its store no longer holds
(``saved_states``, ``Runtime.gc``). The bookkeeping only steers efficiency: the
server itself compares tokens, so a stale table or a state saved under the wrong
name costs evaluation time, never correctness. Saved states are namespaced by
the model file (``LocalProvider`` picks the directory), since KV values from one
model mean nothing to another.

Requests on a slot start in the order they were routed (``claim``, then ``begin``):
a session routed to a slot while another's request there has not started yet waits
for it, so its restore cannot land before the other's request has used its own.

This module does no HTTP: ``LocalProvider`` runs the planned saves and restores
(``claim``) right before the request on that slot.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from .. import _core
from .states import (
    SUFFIX,
    check_store,
    default_state_dir,
    default_state_dirs,
    private_dir,
    saved_states,
    state_file,
)
from .stats import CallStats, LocalStats

__all__ = [
    "CallStats",
    "LocalStats",
    "Router",
    "SessionLike",
    "Ticket",
    "Todo",
    "default_state_dir",
    "default_state_dirs",
    "private_dir",
    "saved_states",
    "state_file",
]


#: How long a slot stays reserved between routing and the request being opened (a
#: request waiting for its turn on the slot keeps its reservation: ``claim``), and how
#: often a waiting request looks again.
RESERVE_S = 5.0
POLL_S = 0.05
_CHAIN_CACHE = 256


class SessionLike(Protocol):
    """What routing reads from a session: its name and its messages' canonical bytes.

    An ``srt.Session`` also gives ``store_id`` and ``prefix_hashes()``, which name its
    saved states after its store and the store's own hashes; without them (any other
    object) states are named by the XXH3 prefix hash alone."""

    @property
    def name(self) -> str: ...

    def messages_bytes(self) -> list[bytes]: ...


@dataclass(frozen=True)
class Todo:
    """A save or restore to run on a slot before its next request."""

    action: str  # "save" or "restore"
    file: str
    owner: str | None = None
    chain: tuple[bytes, ...] = ()
    store: str | None = None


@dataclass(frozen=True)
class Ticket:
    """One routing decision: the slot a session's request goes to and why. The request
    carries it to ``begin``, so its ``CallStats`` name this session and route even when
    another session is routed to the same slot before the request ends."""

    slot: int
    session: str
    route: str
    #: Tokens loaded into the slot from a saved state for this request (set by ``begin``).
    restored: int = 0
    #: The session's prefix hashes, cumulative sizes and store, for ``reseat``.
    chain: Sequence[bytes] = field(default=(), repr=False, compare=False)
    sizes: Sequence[int] = field(default=(), repr=False, compare=False)
    store: str | None = field(default=None, repr=False, compare=False)
    #: The order of the plan among the router's (requests on a slot start in it: ``claim``).
    seq: int = field(default=0, repr=False, compare=False)


class SlotWait(Exception):
    """``claim`` gave up: ``why`` is ``"deadline"`` or ``"stopped"``."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass
class _Slot:
    id: int
    owner: str | None = None
    store: str | None = None
    chain: list[bytes] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    used: float = 0.0
    busy: int = 0
    reserved: tuple[str, bytes | None, float, int] | None = None
    dirty: bool = False
    #: Saves and restores to run before a request, each with the ``seq`` of its plan.
    todo: list[tuple[int, Todo]] = field(default_factory=list)
    route: str = "unrouted"
    restored: int = 0
    #: Plans routed here whose request has not started (seq -> when), and the one whose
    #: request is running its saves and restores (``claim``), if any.
    pending: dict[int, float] = field(default_factory=dict)
    claimed: int | None = None
    #: Requests begun here whose reply's head has not come (llama.cpp may not have
    #: taken them up yet: ``Server.prepare`` waits for them too).
    unheaded: int = 0

    def free(self, now: float) -> bool:
        return self.busy == 0 and self.claimed is None and not self.waiting(now)

    def waiting(self, now: float, before: int | None = None) -> bool:
        """Whether a plan (earlier than ``before``) waits for its request to start here;
        one not started within ``RESERVE_S`` was abandoned (a body built, never sent)."""
        for seq, t in list(self.pending.items()):
            if now - t >= RESERVE_S:
                del self.pending[seq]
            elif before is None or seq < before:
                return True
        return False

    def shared(self, chain: Sequence[bytes], sizes: Sequence[int]) -> int:
        """Bytes of the longest common message prefix (prefix hashes chain: one equal
        hash at index i means every earlier one is equal too)."""
        n = min(len(self.chain), len(chain))
        lo, hi = 0, n  # answer: the number of equal leading hashes
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.chain[mid - 1] == chain[mid - 1]:
                lo = mid
            else:
                hi = mid - 1
        return sizes[lo - 1] if lo else 0

    def file(self) -> str | None:
        return state_file(self.store, self.chain[-1]) if self.chain else None


class Router:
    """The slot table of one server. Thread-safe."""

    def __init__(
        self, slots: int, save_dir: str | None = None, max_saved_bytes: int = 2 << 30
    ) -> None:
        self._slots = [_Slot(i) for i in range(slots)]
        self.save_dir = save_dir
        self.max_saved_bytes = max_saved_bytes
        self._lock = threading.Lock()
        self._turns = threading.Condition(self._lock)
        self._seq = itertools.count(1)
        self._chains: dict[str, tuple[list[bytes], list[bytes], list[int]]] = {}
        self._saved: dict[str, int] = {}  # file name -> bytes on disk
        self._last_file: dict[str, str] = {}  # session -> the file last saved for it
        self._totals = LocalStats()
        self._routes: dict[str, int] = {}
        self.calls: deque[CallStats] = deque(maxlen=10_000)
        self.last_timings: dict[str, Any] | None = None
        if save_dir is not None:
            private_dir(save_dir)
            for entry in os.scandir(save_dir):
                if entry.name.endswith(SUFFIX) and entry.is_file():
                    self._saved[entry.name] = entry.stat().st_size

    # -- routing ---------------------------------------------------------------------

    def _chain(
        self, name: str, bodies: list[bytes] | None, hashes: list[bytes] | None = None
    ) -> tuple[list[bytes], list[int]]:
        """The session's prefix hashes (``hashes`` when the session gave its own) and
        cumulative message sizes (under the lock)."""
        if bodies is None:
            return [], []
        if hashes is not None and len(hashes) == len(bodies):
            total = 0
            sizes = []
            for b in bodies:
                total += len(b)
                sizes.append(total)
            return list(hashes), sizes
        old = self._chains.get(name)
        keep = 0
        if old is not None:
            limit = min(len(old[0]), len(bodies))
            while keep < limit and old[0][keep] is bodies[keep]:
                keep += 1
        chain = old[1][:keep] if old else []
        sizes = old[2][:keep] if old else []
        parent = chain[-1] if chain else _core.ROOT
        chain += _core.chain_many(parent, [_core.digest(b) for b in bodies[keep:]])
        total = sizes[-1] if sizes else 0
        for b in bodies[keep:]:
            total += len(b)
            sizes.append(total)
        self._chains.pop(name, None)
        self._chains[name] = (bodies, chain, sizes)
        if len(self._chains) > _CHAIN_CACHE:
            del self._chains[next(iter(self._chains))]
        return chain, sizes

    def route(self, session: SessionLike | str) -> int:
        """Pick the slot for the session's next request, planning any save or restore."""
        return self.ticket(session).slot

    def ticket(self, session: SessionLike | str) -> Ticket:
        """``route``, with the session and the route taken, for the request to carry."""
        # The session's own lock is taken outside the router's: never the other way round.
        store: str | None = None
        hashes: list[bytes] | None = None
        if isinstance(session, str):
            name, bodies = session, None
        else:
            name, bodies = session.name, session.messages_bytes()
            store = check_store(getattr(session, "store_id", None))
            own = getattr(session, "prefix_hashes", None)
            hashes = own() if callable(own) else None
        with self._lock:
            chain, sizes = self._chain(name, bodies, hashes)
            head = chain[-1] if chain else None
            now = time.monotonic()
            for s in self._slots:  # asked twice for the same request: same answer
                r = s.reserved
                t = s.pending.get(r[3]) if r is not None else None
                if (
                    r is not None
                    and r[:2] == (name, head)
                    and t is not None
                    and now - t < RESERVE_S
                ):
                    return Ticket(s.id, name, s.route, 0, s.chain, s.sizes, s.store, r[3])
            best = max(
                self._slots,
                key=lambda s: (s.free(now), s.shared(chain, sizes), s.owner == name, -s.used),
            )
            score = best.shared(chain, sizes)
            depth = self._deepest_saved(chain, store)
            seq = next(self._seq)
            if depth is not None and sizes[depth] > score:
                best = max(self._slots, key=lambda s: (s.free(now), -s.used))
                self._evict(best, seq)
                todo = Todo("restore", state_file(store, chain[depth]), name)
                best.todo.append((seq, todo))
                route = "restored"
            else:
                route = ("warm" if best.owner == name else "shared") if score else "cold"
                if best.owner != name:
                    self._evict(best, seq)
            best.owner, best.chain, best.sizes, best.store = name, chain, sizes, store
            best.used = now
            best.reserved = (name, head, now, seq)
            best.pending[seq] = now
            best.route = route
            self._routes[route] = self._routes.get(route, 0) + 1
            return Ticket(best.id, name, route, 0, chain, sizes, store, seq)

    def reseat(self, ticket: Ticket) -> Ticket:
        """``ticket``'s request is sent again to a new server (the one it was routed on
        died under it; ``reset`` emptied the table): its slot now holds its session, and
        the session's deepest saved state, if any, is planned into it (``claim``).
        The ticket for the new attempt, ``restored`` or ``cold``."""
        with self._lock:
            s = self._slots[ticket.slot]
            chain, sizes = list(ticket.chain), list(ticket.sizes)
            depth = self._deepest_saved(chain, ticket.store)
            route = "cold" if depth is None else "restored"
            if depth is not None:
                file = state_file(ticket.store, chain[depth])
                s.todo.append((ticket.seq, Todo("restore", file, ticket.session)))
            s.owner, s.chain, s.sizes, s.store = ticket.session, chain, sizes, ticket.store
            s.used, s.route = time.monotonic(), route
            return replace(ticket, route=route, restored=0)

    def _deepest_saved(self, chain: list[bytes], store: str | None) -> int | None:
        if self.save_dir is None or not self._saved:
            return None
        for i in range(len(chain) - 1, -1, -1):
            if state_file(store, chain[i]) in self._saved:
                return i
        return None

    def _evict(self, slot: _Slot, seq: int) -> None:
        """Plan (for plan ``seq``) to save what ``slot`` holds before another session
        overwrites it."""
        f = slot.file()
        if self.save_dir is not None and slot.dirty and f is not None:
            todo = Todo("save", f, slot.owner, tuple(slot.chain), slot.store)
            slot.todo.append((seq, todo))
        slot.dirty = False

    # -- the request's life ------------------------------------------------------------

    def busy(self, slot: int) -> bool:
        """Whether a request on ``slot`` has begun and not ended."""
        with self._lock:
            return self._slots[slot].busy > 0

    def unheaded(self, slot: int) -> bool:
        """Whether a request begun on ``slot`` has had no reply's head yet."""
        with self._lock:
            return self._slots[slot].unheaded > 0

    def headed(self, slot: int | None) -> None:
        """A request begun on ``slot`` had its reply's head (or ended without one)."""
        if slot is not None and 0 <= slot < len(self._slots):
            with self._lock:
                s = self._slots[slot]
                s.unheaded = max(0, s.unheaded - 1)

    def claim(
        self,
        slot: int,
        ticket: Ticket | None,
        deadline: float,
        stopped: Callable[[], bool] = lambda: False,
    ) -> list[Todo]:
        """Wait for ``ticket``'s turn on ``slot``, then the saves and restores to run
        before its request, which ``begin`` then starts (or ``release`` gives up on):
        requests on a slot start in the order they were routed, one at a time, so a
        session routed to a slot behind another's planned restore waits for that request
        to start instead of restoring its own state over it first. It is handed the
        saves planned up to its turn and its own restore (an abandoned plan's is dropped).
        ``SlotWait`` past ``deadline`` or once ``stopped()``; nothing is taken then."""
        seq = ticket.seq if ticket is not None and ticket.slot == slot else None
        with self._turns:
            while True:
                s = self._slots[slot]  # (``reset`` may replace it while this waits)
                now = time.monotonic()
                if seq is not None and seq in s.pending:
                    s.pending[seq] = now  # (waiting for its turn: not abandoned)
                if s.claimed is None and (seq is None or not s.waiting(now, seq)):
                    break
                if stopped():
                    raise SlotWait("stopped")
                if now >= deadline:
                    raise SlotWait("deadline")
                self._turns.wait(min(POLL_S, deadline - now))
            s.claimed = -1 if seq is None else seq
            s.pending.pop(seq or 0, None)
            mine = [
                (k, t)
                for k, t in s.todo
                if seq is not None and (k == seq or (k < seq and t.action == "save"))
            ]
            s.todo = [(k, t) for k, t in s.todo if seq is None or k > seq]
            return [t for _, t in mine]

    def release(self, slot: int, ticket: Ticket | None, todo: Sequence[Todo]) -> None:
        """``claim``'s request will not start (its wait gave up): the next one's turn.
        Its planned saves go back for that one; its restore is dropped, and the slot's
        table forgets the session if no later plan routed another one there."""
        seq = ticket.seq if ticket is not None else 0
        with self._turns:
            s = self._slots[slot]
            s.claimed = None
            s.todo[:0] = [(seq, t) for t in todo if t.action == "save"]
            if s.reserved is not None and s.reserved[3] == seq:
                s.chain, s.sizes, s.route, s.reserved = [], [], "cold", None
            self._turns.notify_all()

    def begin(self, slot: int | None, ticket: Ticket | None = None) -> Ticket | None:
        """A request on ``slot`` starts: the session and route its ``CallStats`` will
        name (``ticket``'s, else whoever routed to the slot last), and the tokens
        restored into the slot for it."""
        if slot is None or not 0 <= slot < len(self._slots):
            return None
        with self._turns:
            s = self._slots[slot]
            s.busy += 1
            s.unheaded += 1
            s.claimed = None
            if s.reserved is not None and (ticket is None or s.reserved[3] == ticket.seq):
                s.pending.pop(s.reserved[3], None)  # (no ticket: the last plan's request)
                s.reserved = None
            if ticket is not None:
                s.pending.pop(ticket.seq, None)
            self._turns.notify_all()
            if ticket is None or ticket.slot != slot:
                if s.owner is None:
                    return None
                ticket = Ticket(slot, s.owner, s.route)
            route = ticket.route
            if route == "restored" and s.route == "cold":
                route = "cold"  # (its state failed to load: ``restore_failed``)
            s.route = "warm"
            ticket, s.restored = replace(ticket, route=route, restored=s.restored), 0
            return ticket

    def end(
        self, slot: int | None, data: dict[str, Any] | None, begun: Ticket | None = None
    ) -> CallStats | None:
        """Record a finished call; ``data`` holds the reply's ``usage`` and ``timings``,
        ``begun`` is what ``begin`` answered for its request."""
        with self._lock:
            s = self._slots[slot] if slot is not None and 0 <= slot < len(self._slots) else None
            if s is not None:
                s.busy = max(0, s.busy - 1)
                s.dirty = True
            if data is None:
                return None
            usage = data.get("usage") or {}
            timings = data.get("timings") or {}
            prompt = int(usage.get("prompt_tokens") or 0)
            cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
            cache_n = int(timings.get("cache_n", cached))
            call = CallStats(
                session=begun.session if begun is not None else None,
                slot=slot if s is not None else None,
                route=begun.route if begun is not None else "unrouted",
                prompt_tokens=prompt,
                cached_tokens=cached,
                cache_n=cache_n,
                prompt_n=int(timings.get("prompt_n", prompt - cache_n)),
                predicted_n=int(timings.get("predicted_n", usage.get("completion_tokens") or 0)),
                prompt_ms=float(timings.get("prompt_ms") or 0.0),
                predicted_ms=float(timings.get("predicted_ms") or 0.0),
                restored_tokens=begun.restored if begun is not None else 0,
            )
            self.calls.append(call)
            self.last_timings = dict(timings) if timings else None
            t = self._totals
            self._totals = replace(
                t,
                requests=t.requests + 1,
                prompt_tokens=t.prompt_tokens + call.prompt_tokens,
                cache_n=t.cache_n + call.cache_n,
                prompt_n=t.prompt_n + call.prompt_n,
                predicted_n=t.predicted_n + call.predicted_n,
                prompt_ms=t.prompt_ms + call.prompt_ms,
                predicted_ms=t.predicted_ms + call.predicted_ms,
            )
            return call

    # -- saved states ------------------------------------------------------------------

    def saved(self, todo: Todo, n_saved: int) -> None:
        """A slot's state was written to ``todo.file`` in the save directory."""
        if self.save_dir is None:
            return
        with self._lock:
            with contextlib.suppress(OSError):
                self._saved[todo.file] = os.path.getsize(os.path.join(self.save_dir, todo.file))
            if todo.owner is not None:
                old = self._last_file.get(todo.owner)
                self._last_file[todo.owner] = todo.file
                # The new state covers the old one's whole prompt: the old one is dropped.
                if (
                    old
                    and old != todo.file
                    and any(old == state_file(todo.store, h) for h in todo.chain)
                ):
                    self._remove(old)
            t = self._totals
            self._totals = replace(t, saves=t.saves + 1, saved_tokens=t.saved_tokens + n_saved)
            self._prune()

    def restored(self, slot: int, filename: str, n_restored: int) -> None:
        with self._lock:
            self._slots[slot].restored = n_restored
            t = self._totals
            self._totals = replace(
                t, restores=t.restores + 1, restored_tokens=t.restored_tokens + n_restored
            )
        if self.save_dir is not None:
            with contextlib.suppress(OSError):
                os.utime(os.path.join(self.save_dir, filename))

    def restore_failed(self, slot: int, filename: str, remove: bool = True) -> None:
        """A saved state was not loaded before the request: the server refused it (another
        context size, a damaged file: it is deleted), or, with ``remove=False``, did not
        answer in time (the file is kept for a later resume)."""
        with self._lock:
            if remove:
                self._remove(filename)
            s = self._slots[slot]
            s.chain, s.sizes, s.route = [], [], "cold"
            t = self._totals
            self._totals = replace(t, restore_failures=t.restore_failures + 1)

    def _remove(self, filename: str) -> None:
        self._saved.pop(filename, None)
        if self.save_dir is not None:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(self.save_dir, filename))

    def _prune(self) -> None:
        """Drop the least recently used saved states beyond ``max_saved_bytes``."""
        if sum(self._saved.values()) <= self.max_saved_bytes or self.save_dir is None:
            return
        ages = []
        for name in self._saved:
            try:
                ages.append((os.path.getmtime(os.path.join(self.save_dir, name)), name))
            except OSError:
                ages.append((0.0, name))
        total = sum(self._saved.values())
        for _, name in sorted(ages):
            if total <= self.max_saved_bytes:
                break
            total -= self._saved.get(name, 0)
            self._remove(name)

    def unsaved(self) -> list[tuple[int, Todo]]:
        """A save for every idle slot holding state not yet on disk (marked saved)."""
        if self.save_dir is None:
            return []
        out = []
        with self._lock:
            for s in self._slots:
                f = s.file()
                if s.dirty and s.busy == 0 and f is not None:
                    out.append((s.id, Todo("save", f, s.owner, tuple(s.chain), s.store)))
                    s.dirty = False
        return out

    def slot_of(self, session: str) -> int | None:
        """The slot that last served ``session``, if any."""
        with self._lock:
            for s in self._slots:
                if s.owner == session:
                    return s.id
        return None

    def reset(self) -> None:
        """Forget every slot's contents (the server was restarted)."""
        with self._lock:
            self._slots = [_Slot(i) for i in range(len(self._slots))]

    def stats(self) -> LocalStats:
        with self._lock:
            return replace(self._totals, routes=dict(self._routes))

    @property
    def saved_files(self) -> dict[str, int]:
        with self._lock:
            return dict(self._saved)
