"""Importers: conversations from other tools' stores into srt (``srt import --from``).

- ``llm-logs``: simonw ``llm``'s ``logs.db`` (0.36's message tree), read through its own
  ``LogStore``. Each thread becomes the srt session ``llm/<thread id>``. Text, tool calls
  and results, and image attachments carry over; reasoning parts and other attachments
  are left out (and counted), since a chat model is not sent them again.
- ``agents-sqlite``: the OpenAI Agents SDK's ``SQLiteSession`` file. Each session becomes
  the ``SrtSession`` of the same id, its items exactly as they were (rows that are not
  JSON are skipped, as ``SQLiteSession`` skips them, and counted); an
  ``AdvancedSQLiteSession`` file's branches become ``SrtSession`` branches.
- ``langgraph``: LangGraph's ``SqliteSaver`` file. Every checkpoint of every thread and
  namespace (with its pending writes) is put into ``SrtSaver``, oldest first, so time
  travel still works after the move.

The source file is opened read-only. srt stores each distinct message once, so prefixes
that conversations share (forks, or each checkpoint repeating its thread's history) are
stored once. Every conversation is then read back from srt and compared with the source
(the messages or items; for LangGraph each checkpoint's channel values, metadata, parent
and writes); any difference raises ``CorruptionError`` naming the conversation. The
``ImportReport`` counts conversations, what was read, and the messages srt newly stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import (
    ConfigError,
    CorruptionError,
    InvalidMessageError,
    InvalidSessionNameError,
    SessionExistsError,
    SrtError,
)
from ..message import canonicalize, redact_strings
from ..runtime import Runtime, check_name
from ._append import redacted
from ._unmarked import same

__all__ = ["SOURCES", "ImportReport", "run"]


@dataclass
class ImportReport:
    """What an import read and stored."""

    source: str
    path: str
    conversations: int = 0  # threads or sessions
    messages: int = 0  # messages (items; for LangGraph, in all checkpoints) read
    checkpoints: int = 0  # LangGraph checkpoints put
    stored_before: int = 0  # distinct messages in the srt store before
    stored_after: int = 0
    verified: int = 0  # conversations read back and found equal
    left_out: Counter[str] = field(default_factory=Counter)

    @property
    def new_messages(self) -> int:
        """Messages srt had to store (the rest were shared)."""
        return self.stored_after - self.stored_before

    def lines(self) -> list[str]:
        what = "threads" if self.source != "agents-sqlite" else "sessions"
        out = [
            f"{self.source}: {self.conversations} {what}, {self.messages} messages read"
            + (f" in {self.checkpoints} checkpoints" if self.checkpoints else ""),
            f"  stored {self.new_messages} new messages "
            f"({max(self.messages - self.new_messages, 0)} shared or already stored)",
            f"  verified {self.verified} of {self.conversations} {what}: read back equal",
        ]
        if self.left_out:
            parts = ", ".join(f"{n} {kind}" for kind, n in sorted(self.left_out.items()))
            out.append(f"  left out: {parts}")
        return out


def _readonly(path: str, rt: Runtime) -> sqlite3.Connection:
    """``path`` opened read-only with the standard library's SQLite: never the runtime's
    own file, which a second SQLite library in this process must not open (its locks
    are the process's, and closing either library's descriptor drops the other's)."""
    if not os.path.isfile(path):
        raise ConfigError(f"no such file: {path}")
    own = getattr(rt.store, "path", None)
    if isinstance(own, str) and own != ":memory:" and os.path.isfile(own):
        with contextlib.suppress(OSError):
            if os.path.samefile(path, own):
                raise ConfigError(
                    f"{path} is this srt store itself: import reads another tool's file"
                )
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        conn.close()  # (Python 3.13 warns of a connection left to the collector)
        raise ConfigError(f"{path} is not an SQLite database: {exc}") from None
    return conn


def _stored(rt: Runtime) -> int:
    return rt.store.verify().messages


def _needs(module: str, extra: str) -> None:
    raise ConfigError(
        f"importing this needs {module}: pip install 'stateful-runtime[{extra}]'"
    ) from None


# -- llm -----------------------------------------------------------------------------------


def _llm_message(message: Any, left: Counter[str]) -> list[dict[str, Any]]:
    """One llm ``Message`` -> canonical messages (tool results become tool messages)."""
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for part in message.parts:
        kind = type(part).__name__
        if kind == "TextPart":
            texts.append(part.text)
        elif kind == "ToolCallPart":
            calls.append(
                {
                    "id": part.tool_call_id or f"call_{len(calls)}",
                    "type": "function",
                    "function": {
                        "name": part.name,
                        "arguments": json.dumps(part.arguments, ensure_ascii=False),
                    },
                }
            )
        elif kind == "ToolResultPart":
            result = {
                "role": "tool",
                "tool_call_id": part.tool_call_id or "",
                "content": part.output,
            }
            if getattr(part, "exception", None):  # the tool raised: llm keeps its text
                result["is_error"] = True
            results.append(result)
        elif kind == "AttachmentPart" and part.attachment is not None:
            att = part.attachment
            mime = att.type or ""
            if att.url and mime.startswith("image/"):
                images.append({"type": "image", "url": att.url})
            elif att.content and mime.startswith("image/"):
                images.append({"type": "image", "data": att.content, "media_type": mime})
            else:
                left["attachments"] += 1
        else:
            left[{"ReasoningPart": "reasoning parts"}.get(kind, kind)] += 1
    role = message.role if message.role in ("system", "user", "assistant") else "user"
    text = "".join(texts)
    out: list[dict[str, Any]] = []
    if role == "assistant" and (text or calls or not results):
        msg: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
        if calls:
            msg["tool_calls"] = calls
        out.append(msg)
    elif role != "assistant" and (text or images or not results):
        parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        parts += [
            {"type": "image_url", "image_url": {"url": i["url"]}} if "url" in i else i
            for i in images
        ]
        out.append({"role": role, "content": parts if images else text})
    return out + results


def import_llm_logs(rt: Runtime, path: str) -> ImportReport:
    """Every thread of an llm ``logs.db`` as the srt session ``llm/<thread id>``."""
    try:
        import sqlite_utils
        from llm.logs import LogStore
    except ImportError:
        _needs("llm", "bench")
    report = ImportReport("llm-logs", path, stored_before=_stored(rt))
    conn = _readonly(path, rt)
    try:
        try:
            store = LogStore(sqlite_utils.Database(conn))  # type: ignore[no-untyped-call]
        except sqlite3.OperationalError as exc:
            raise ConfigError(
                f"{path} needs llm's migrations first (run llm once with it): {exc}"
            ) from None
        threads = [row[0] for row in conn.execute("SELECT id FROM threads ORDER BY rowid")]
        # The whole file is read and checked first, then read again and written: a
        # thread that cannot be imported stops the import before anything is written.
        for thread in threads:
            messages = _llm_thread(store, path, thread, report.left_out)
            if messages:
                _check_session(rt, f"llm/{thread}", messages)
        for thread in threads:
            messages = _llm_thread(store, path, thread, Counter())
            if not messages:
                continue
            _put_session(rt, f"llm/{thread}", messages)
            report.conversations += 1
            report.messages += len(messages)
            report.verified += 1
    finally:
        conn.close()
    report.stored_after = _stored(rt)
    return report


def _llm_thread(store: Any, path: str, thread: Any, left: Counter[str]) -> list[dict[str, Any]]:
    """One thread's canonical messages, as llm's ``LogStore`` reads them."""
    try:
        messages: list[dict[str, Any]] = []
        for m in store.thread_messages(thread):
            messages.extend(_llm_message(m, left))
        return messages
    except (sqlite3.DatabaseError, ValueError, TypeError, KeyError, AttributeError) as exc:
        # (the error's type only: its text may quote the row, secrets and all)
        raise ConfigError(
            f"{path}: thread {thread!r} cannot be read ({type(exc).__name__}); nothing was imported"
        ) from None


def _check_session(rt: Runtime, name: str, messages: list[dict[str, Any]]) -> list[Any]:
    """The canonical form of ``messages``, which session ``name`` can take: it is new,
    empty or holds just these (nothing is written)."""
    try:
        check_name(name)
        # (what the runtime's redaction hook leaves of them, as the session stores them)
        expected = [
            json.loads(canonicalize(redacted(rt, m), rt.max_message_bytes)[0]) for m in messages
        ]
    except (InvalidMessageError, InvalidSessionNameError) as exc:
        raise type(exc)(f"{name!r} cannot be imported, so nothing was: {exc}") from None
    if rt.store.get_session(name) is not None:
        have = rt.session(name).messages()
        if have and not _holds(have, expected):
            raise SessionExistsError(f"session {name!r} exists with other messages; not imported")
    return expected


def _holds(have: list[Any], expected: list[dict[str, Any]]) -> bool:
    """Whether a session's messages are ``expected`` (a tool result srt stored before it
    marked failed ones, unmarked, counts as the marked one: ``_unmarked``)."""
    return len(have) == len(expected) and all(map(same, have, expected))


def _put_session(rt: Runtime, name: str, messages: list[dict[str, Any]]) -> None:
    """Append ``messages`` to a new (or identical) session and read them back."""
    expected = _check_session(rt, name, messages)
    session = rt.session(name)
    if not session.messages():
        session.append(*messages)
    if not _holds(rt.session(name).messages(), expected):
        raise CorruptionError(f"session {name!r} read back differs from its source")


# -- the Agents SDK ------------------------------------------------------------------------


def import_agents_sqlite(rt: Runtime, path: str) -> ImportReport:
    """Every session of an Agents SDK ``SQLiteSession`` file as the ``SrtSession`` of
    the same id, items exactly as they were. In an ``AdvancedSQLiteSession`` file each
    branch becomes the ``SrtSession`` branch of the same name (``main`` first)."""
    try:
        from .agents import MAIN, SrtSession, prepare
    except ImportError:
        _needs("openai-agents", "agents")
    report = ImportReport("agents-sqlite", path, stored_before=_stored(rt))
    conn = _readonly(path, rt)
    advanced = _has_table(conn, "message_structure")

    def branches_of(sid: str, left: Counter[str]) -> dict[str, list[Any]]:
        """Branch -> its items, as the SDK's session reads them (main first, then
        the others in the order they were made)."""
        if not advanced:
            rows = conn.execute(
                "SELECT message_data FROM agent_messages WHERE session_id = ? ORDER BY id", (sid,)
            )
            return {MAIN: _json_rows(rows, left)}
        names = [
            r[0]
            for r in conn.execute(
                "SELECT branch_id FROM message_structure WHERE session_id = ? "
                "GROUP BY branch_id ORDER BY branch_id != ?, min(id)",
                (sid, MAIN),
            )
        ]
        out: dict[str, list[Any]] = {MAIN: []}
        for name in names:
            rows = conn.execute(
                "SELECT m.message_data FROM agent_messages m JOIN message_structure s "
                "ON m.id = s.message_id WHERE m.session_id = ? AND s.branch_id = ? "
                "ORDER BY s.sequence_number",
                (sid, name),
            )
            out[name] = _json_rows(rows, left)
        return out

    def held(sid: str) -> dict[str, list[Any]]:
        """What srt holds of session ``sid`` already: branch -> items."""
        if rt.store.get_session(sid) is None:
            return {}
        names = [b["name"] for b in asyncio.run(SrtSession(sid, rt).branches())]
        return {b: asyncio.run(SrtSession(sid, rt, branch=b).get_items()) for b in names}

    def clash(sid: str, source: dict[str, list[Any]], have: dict[str, list[Any]]) -> None:
        for name, items in source.items():
            if have.get(name) and have[name] != redacted(rt, items):
                where = "" if name == MAIN else f" branch {name!r}"
                raise SessionExistsError(
                    f"session {sid!r}{where} exists with other items; nothing was imported"
                )

    try:
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT session_id FROM agent_sessions UNION "
                "SELECT session_id FROM agent_messages ORDER BY session_id"
            )
        ]
        # The whole file is read and checked first, then read again and written: a
        # session that cannot be imported stops the import before anything is written.
        for sid in ids:
            source = branches_of(sid, report.left_out)
            try:
                check_name(sid)
                for name, items in source.items():
                    if name != MAIN:
                        check_name(f"{sid}@{name}")
                    prepare(rt, items)
            except (InvalidMessageError, InvalidSessionNameError) as exc:
                raise type(exc)(
                    f"session {sid!r} cannot be imported, so nothing was: {exc}"
                ) from None
            clash(sid, source, held(sid))
        for sid in ids:
            source = branches_of(sid, Counter())
            have = held(sid)
            clash(sid, source, have)
            session = SrtSession(sid, rt)
            if not have.get(MAIN):
                asyncio.run(session.add_items(source[MAIN]))
            for name, items in source.items():
                if name != MAIN and name not in have:
                    _agents_branch(rt, sid, name, items, source)
                got = asyncio.run(SrtSession(sid, rt, branch=name).get_items())
                if got != redacted(rt, items):
                    raise CorruptionError(f"session {sid!r} read back differs from its source")
                report.messages += len(items)
            report.conversations += 1
            report.verified += 1
    except sqlite3.OperationalError as exc:
        raise ConfigError(f"{path} is not an Agents SDK SQLiteSession file: {exc}") from None
    finally:
        conn.close()
    report.stored_after = _stored(rt)
    return report


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return row.fetchone() is not None


def _json_rows(rows: Any, left: Counter[str]) -> list[Any]:
    """The rows' items; rows that are not JSON are skipped, as the SDK's sessions skip
    them, and counted."""
    items = []
    for (data,) in rows:
        try:
            items.append(json.loads(data))
        except (TypeError, ValueError):
            left["rows that are not JSON"] += 1
    return items


def _agents_branch(
    rt: Runtime, sid: str, name: str, items: list[Any], source: dict[str, list[Any]]
) -> None:
    """Branch ``name`` of ``SrtSession`` ``sid``, forked (nothing copied) from the branch
    made before it that shares the longest prefix of ``items``, then given the rest."""
    from .agents import SrtSession, prepare

    def shared(other: list[Any]) -> int:
        n = 0
        while n < min(len(other), len(items)) and other[n] == items[n]:
            n += 1
        return n

    made = list(source)[: list(source).index(name)]
    parent = max(made, key=lambda b: shared(source[b]))  # (the first of equals: main)
    have, common = source[parent], shared(source[parent])
    users = [i for i, p in enumerate(prepare(rt, have)) if p[0]["role"] == "user"]
    turn = sum(1 for i in users if i <= common)  # fork before the last user turn it shares
    at = users[turn - 1] if common < len(have) and turn else len(have)
    asyncio.run(
        SrtSession(sid, rt, branch=parent).fork(
            turn if at < len(have) else None, name, switch=False
        )
    )
    branch = SrtSession(sid, rt, branch=name)
    while at > common:  # (no user turn at or before the point they part: pop back to it)
        asyncio.run(branch.pop_item())
        at -= 1
    asyncio.run(branch.add_items(items[at:]))


# -- LangGraph -----------------------------------------------------------------------------


def _reuse(value: Any, previous: Any) -> Any:
    """``value`` with the leading elements equal to ``previous``'s replaced by those very
    objects: ``SrtSaver`` then recognizes the part it stored already by identity."""
    if type(value) is not list or type(previous) is not list:
        return value
    out = list(value)
    for i, (new, old) in enumerate(zip(value, previous, strict=False)):
        if new is not old and new != old:
            break
        out[i] = old
    return out


def import_langgraph(rt: Runtime, path: str) -> ImportReport:
    """Every checkpoint of a LangGraph ``SqliteSaver`` file into ``SrtSaver``."""
    try:
        from langchain_core.messages import BaseMessage
        from langgraph.checkpoint.sqlite import SqliteSaver

        from .langgraph import SrtSaver
    except ImportError:
        _needs("langgraph-checkpoint-sqlite", "langgraph")
    report = ImportReport("langgraph", path, stored_before=_stored(rt))
    conn = _readonly(path, rt)
    source, saver = SqliteSaver(conn), SrtSaver(rt)
    try:
        try:
            scopes = conn.execute(
                "SELECT DISTINCT thread_id, checkpoint_ns FROM checkpoints "
                "ORDER BY thread_id, checkpoint_ns"
            ).fetchall()
        except sqlite3.OperationalError as exc:
            raise ConfigError(f"{path} is not a LangGraph SqliteSaver file: {exc}") from None
        threads = {t for t, _ns in scopes}
        had = {t.config["configurable"]["thread_id"] for t in saver.list(None)}
        try:
            for thread, ns in scopes:
                _langgraph_scope(
                    conn, path, source, saver, thread, ns, report, BaseMessage, _masker(rt)
                )
        except BaseException:
            # Nothing is left half-imported: the threads this import started go again.
            for thread in threads:
                if isinstance(thread, (str, int)) and str(thread) not in had:
                    with contextlib.suppress(SrtError):
                        saver.delete_thread(str(thread))
            raise
        report.conversations = report.verified = len(threads)
    finally:
        saver.close()
        conn.close()
    report.stored_after = _stored(rt)
    return report


def _langgraph_scope(
    conn: sqlite3.Connection,
    path: str,
    source: Any,
    saver: Any,
    thread: Any,
    ns: Any,
    report: ImportReport,
    message_type: type,
    masked: Callable[[Any], Any],
) -> None:
    """Every checkpoint of one thread and namespace, oldest first, put and read back."""
    try:
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT checkpoint_id FROM checkpoints WHERE thread_id = ? AND "
                "checkpoint_ns = ? ORDER BY checkpoint_id",
                (thread, ns),
            )
        ]
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{path} is not a LangGraph SqliteSaver file: {exc}") from None
    previous: dict[str, Any] = {}
    for cid in ids:
        cfg: Any = {
            "configurable": {"thread_id": thread, "checkpoint_ns": ns, "checkpoint_id": cid}
        }
        try:
            tup = source.get_tuple(cfg)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{path} is not a LangGraph SqliteSaver file: {exc}") from None
        except Exception as exc:  # (whatever its serializer raises for a damaged row)
            # (the error's type only: its text may quote the row, secrets and all)
            raise ConfigError(
                f"{path}: checkpoint {cid} of thread {thread!r} cannot be read "
                f"({type(exc).__name__}); nothing was imported"
            ) from None
        if tup is None:
            continue
        checkpoint: Any = dict(tup.checkpoint)
        values = {k: _reuse(v, previous.get(k)) for k, v in checkpoint["channel_values"].items()}
        checkpoint["channel_values"] = previous = values
        put_cfg: Any = tup.parent_config or {
            "configurable": {"thread_id": thread, "checkpoint_ns": ns}
        }
        versions = dict(checkpoint["channel_versions"])
        stored = saver.put(put_cfg, checkpoint, tup.metadata, versions)
        by_task: dict[str, list[tuple[str, Any]]] = {}
        for task, channel, value in tup.pending_writes or ():
            by_task.setdefault(task, []).append((channel, value))
        for task, writes in by_task.items():
            saver.put_writes(stored, writes, task)
        back = saver.get_tuple(stored)
        if back is None or not _same_tuple(back, tup, masked):
            raise CorruptionError(
                f"checkpoint {cid} of thread {thread!r} read back differs from its source"
            )
        report.checkpoints += 1
        report.messages += sum(
            len(v)
            for v in values.values()
            if type(v) is list and v and isinstance(v[0], message_type)
        )


def _masker(rt: Runtime) -> Callable[[Any], Any]:
    """What the runtime's redaction hook leaves of a value: every string, and every
    LangChain message whole (as ``SrtSaver`` redacts it)."""
    hook = rt.redact
    if hook is None:
        return lambda value: value
    from langchain_core.messages import BaseMessage

    from . import _lcmsg

    def mask(value: Any) -> Any:
        if isinstance(value, BaseMessage):
            return _lcmsg.load(redact_strings(_lcmsg.dump(value), hook))
        if isinstance(value, str):
            return hook(value)
        if isinstance(value, dict):
            return {k: mask(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [mask(v) for v in value]
        return value

    return mask


def _same_tuple(a: Any, b: Any, masked: Callable[[Any], Any]) -> bool:
    """Whether checkpoint ``a`` read back is ``b`` from the source. With a redaction hook
    both sides are compared as the hook leaves every string and message of them: the
    saver redacts the messages and nothing else, so only a secret may differ."""

    def writes(t: Any) -> list[tuple[str, str, Any]]:
        out = [(w[0], w[1], masked(w[2])) for w in t.pending_writes or ()]
        return sorted(out, key=lambda w: (w[0], w[1], repr(w[2])))

    return bool(
        masked(a.checkpoint["channel_values"]) == masked(b.checkpoint["channel_values"])
        and a.checkpoint["channel_versions"] == b.checkpoint["channel_versions"]
        and a.checkpoint["versions_seen"] == b.checkpoint["versions_seen"]
        and all(masked(a.metadata.get(k)) == masked(v) for k, v in b.metadata.items())
        and (a.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        == (b.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        and writes(a) == writes(b)
    )


#: ``srt import --from`` names and their importers.
SOURCES: dict[str, Callable[[Runtime, str], ImportReport]] = {
    "agents-sqlite": import_agents_sqlite,
    "langgraph": import_langgraph,
    "llm-logs": import_llm_logs,
}


def run(rt: Runtime, source: str, path: str) -> ImportReport:
    """Import ``path`` as ``source`` (one of ``SOURCES``) into ``rt``."""
    fn = SOURCES.get(source)
    if fn is None:
        raise ConfigError(f"unknown import source {source!r}; one of {sorted(SOURCES)}")
    return fn(rt, os.fspath(path))
