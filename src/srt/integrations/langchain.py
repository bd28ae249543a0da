"""LangChain's chat history, kept in srt: ``SrtChatMessageHistory``.

    from srt.integrations.langchain import SrtChatMessageHistory

    history = SrtChatMessageHistory("support-42", "chats.db")
    history.add_user_message("hi")
    history.messages            # [HumanMessage(content='hi', ...)]

A ``BaseChatMessageHistory`` (so ``RunnableWithMessageHistory`` and the rest of LangChain
take it) whose messages are an srt session: each message is a canonical chat message
(``srt.integrations._lcmsg``), content-addressed and shared with every session that has
the same prefix, and ``srt show`` reads it. What the canonical message leaves out (ids,
``response_metadata``, ``usage_metadata``, ``additional_kwargs``, non-text blocks, the
exact class) is kept beside it as a small patch (srt objects of kind
``langchain.message``), so ``messages`` gives back every message as it was added.
Install it with ``pip install 'stateful-runtime[langchain]'``.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage

from .. import _core
from ..errors import ConflictError, InvalidMessageError
from ..message import canonicalize, dumps
from ..runtime import Runtime
from ..store.base import ObjectPut
from . import _append, _lcmsg, _patch

__all__ = ["SrtChatMessageHistory"]

_KIND = "langchain.message"
_PAGE = 500
_EMPTY = b'{"h":"","p":null}'  # an entry that patches nothing
_RETRIES = 64


def _digest(body: bytes) -> str:
    return _core.digest(body).hex()[:16]


class SrtChatMessageHistory(BaseChatMessageHistory):
    """A LangChain chat history stored as the srt session ``session_id``.

    ``db`` is a ``Runtime`` (shared, left open by ``close()``) or a path for one this
    history opens and closes.
    """

    def __init__(self, session_id: str, db: Runtime | str | os.PathLike[str] | None = None) -> None:
        self._own = not isinstance(db, Runtime)
        self._rt = db if isinstance(db, Runtime) else Runtime(db)
        self._session = self._rt.session(session_id)
        self.session_id = session_id
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<srt.integrations.langchain.SrtChatMessageHistory {self.session_id!r}>"

    def _patches(self) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        after: str | None = None
        while True:
            rows = self._rt.store.list_objects(_KIND, self.session_id, after=after, limit=_PAGE)
            for r in rows:
                out[int(r.key)] = json.loads(r.value)
            if len(rows) < _PAGE:
                return out
            after = rows[-1].key

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """Every message of the history, oldest first, as it was added."""
        with self._lock:
            self._session.refresh()
            patches = self._patches()
            out = []
            for pos, body in enumerate(self._session.messages_bytes()):
                entry = patches.get(pos)
                patch = entry["p"] if entry is not None and entry["h"] == _digest(body) else None
                out.append(_lcmsg.load(_patch.apply(_lcmsg.base(json.loads(body)), patch)))
            return out

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append ``messages`` atomically (an invalid one raises and nothing is written)."""
        if isinstance(messages, (str, bytes, BaseMessage)) or not isinstance(messages, Iterable):
            raise InvalidMessageError(
                f"add_messages takes a list of LangChain messages, got {type(messages).__name__}"
            )
        prepared = []
        for m in messages:
            if not _lcmsg.is_message(m):
                raise InvalidMessageError(
                    f"a chat history holds LangChain messages, got {type(m).__name__}"
                )
            data = _append.redacted(self._rt, _lcmsg.dump(m))
            if self._rt.redact is not None:
                m = _lcmsg.load(data)
            body, _meta = canonicalize(_lcmsg.canonical(m), self._rt.max_message_bytes)
            patch = _patch.diff(_lcmsg.base(json.loads(body)), data)
            try:
                value = dumps({"h": _digest(body), "p": patch}) if patch is not None else None
            except (TypeError, ValueError) as exc:
                raise InvalidMessageError(
                    f"a {type(m).__name__} holds a value that is not JSON: {exc}"
                ) from None
            prepared.append((body, value))
        if not prepared:
            return
        store = self._rt.store
        with self._lock:
            for _ in range(_RETRIES):
                self._session.refresh()
                start = len(self._session)
                # Each patch is written with its message, in one transaction; where a
                # message has none, an entry left by an earlier one (cleared or written
                # by another handle) is emptied.
                objects = [
                    ObjectPut(_KIND, self.session_id, str(start + i), value or _EMPTY)
                    for i, (_body, value) in enumerate(prepared)
                    if value is not None
                    or store.get_object(_KIND, self.session_id, str(start + i)) is not None
                ]
                try:
                    _append.append_to(self._rt, self._session, [p[0] for p in prepared], objects)
                    return
                except ConflictError:
                    continue
            raise ConflictError(f"could not add to history {self.session_id!r}: it kept moving")

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """``add_messages`` on a thread; a caller cancelled meanwhile gets its
        ``CancelledError`` once the messages are all stored or none (``_append.settled``)."""
        await _append.settled(asyncio.to_thread(self.add_messages, messages))

    async def aclear(self) -> None:
        """``clear`` on a thread, settled before a cancellation reaches the caller."""
        await _append.settled(asyncio.to_thread(self.clear))

    def clear(self) -> None:
        """Remove every message of this history (the stored text stays for other sessions
        that share it until ``srt gc``)."""
        with self._lock:
            for _ in range(_RETRIES):
                self._session.refresh()
                # The patches go first: an add meanwhile moves the head, so the rewind
                # fails and this runs again (an add's patches go with its messages).
                for pos in self._patches():
                    self._rt.store.delete_object(_KIND, self.session_id, str(pos))
                try:
                    self._session.rewind(len(self._session))
                    return
                except ConflictError:
                    continue
            raise ConflictError(f"could not clear history {self.session_id!r}: it kept moving")

    def close(self) -> None:
        """Close the runtime this history opened (a runtime passed in stays open)."""
        if self._own:
            self._rt.close()
