"""The content-addressed store: atomicity, dedup, forks, request bytes, races, files.

Rows are inspected by opening the file with ``apsw`` (see ``support.snapshot``);
the stdlib ``sqlite3`` module is never used on an srt file.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
import random
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import srt
from srt.message import canonicalize
from srt.store.sqlite import db as _db
from support import BAD_MESSAGES, connect, count, process_worker, rows, snapshot


def compact(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


HISTORY = [
    {"role": "system", "content": "You are terse."},
    user("hello"),
    assistant("hi"),
]


# -- bad input leaves the store unchanged ------------------------------------------------

_LIMIT = 10_000
_BAD = [
    *BAD_MESSAGES,
    ("oversize-content", user("x" * (_LIMIT + 1))),
    ("oversize-multibyte", user("€" * (_LIMIT // 2))),
    ("oversize-parts", {"role": "user", "content": [{"type": "text", "text": "y" * 3000}] * 4}),
    ("oversize-image", {"role": "user", "content": [{"type": "image", "data": b"\0" * _LIMIT}]}),
]


@pytest.fixture
def rt(store_url: str) -> Iterator[srt.Runtime]:
    """The session tests of this module run once per engine (SQLite, PostgreSQL)."""
    with srt.Runtime(store_url) as runtime:
        yield runtime


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[srt.Runtime]:
    with srt.Runtime(str(tmp_path / "limited.db"), max_message_bytes=_LIMIT) as runtime:
        yield runtime


@pytest.mark.parametrize("bad", [m for _, m in _BAD], ids=[i for i, _ in _BAD])
def test_bad_input_leaves_the_store_unchanged(limited: srt.Runtime, bad: Any) -> None:
    s = limited.session("chat")
    s.append(*HISTORY)
    s.request(model="m")
    before = snapshot(limited.path)
    serialized = limited.serialized

    with pytest.raises(srt.InvalidMessageError):
        s.append(bad)
    assert snapshot(limited.path) == before

    # Only the last of several messages is bad: nothing at all is written.
    with pytest.raises(srt.InvalidMessageError):
        s.append(user("fine 1"), assistant("fine 2"), bad)
    assert snapshot(limited.path) == before
    with pytest.raises(srt.InvalidMessageError):
        s.append(user("fine 3"), bad, rebase=True)
    with pytest.raises(srt.InvalidMessageError):
        s.edit(1, bad)
    assert snapshot(limited.path) == before

    assert s.messages() == HISTORY
    assert limited.session("chat").messages() == HISTORY
    assert [i.name for i in limited.sessions()] == ["chat"]
    assert limited.serialized == serialized
    # The handle is still usable afterwards.
    s.append(user("after"))
    assert s.messages() == [*HISTORY, user("after")]


# -- dedup ------------------------------------------------------------------------------


def test_shared_system_prompt_is_stored_once(rt: srt.Runtime) -> None:
    """100 sessions x 50 turns, all starting with the same 4 KB system prompt.

    The prompt's row is counted with both of these queries; each must return 1::

        SELECT count(*) FROM messages WHERE body = ?          -- the canonical bytes
        SELECT count(*) FROM messages WHERE instr(body, ?) > 0 -- the prompt's UTF-8 bytes
    """
    rng = random.Random(7)
    prompt = "".join(rng.choice("abcdefghij klmnop ✓é") for _ in range(4096))
    system = {"role": "system", "content": prompt}
    for i in range(100):
        s = rt.session(f"user-{i}")
        s.append(system)
        for t in range(50):
            s.append(user(f"s{i} q{t}"), assistant(f"s{i} a{t}"))
        assert len(s) == 101

    body = canonicalize(system)[0]
    by_body = rows(rt.path, "SELECT count(*) FROM messages WHERE body = ?", (body,))[0][0]
    by_instr = sum(
        prompt.encode() in bytes(b) for (b,) in rows(rt.path, "SELECT body FROM messages")
    )
    total = rows(rt.path, "SELECT count(*) FROM messages")[0][0]
    roots = rows(rt.path, "SELECT count(*) FROM nodes WHERE depth = 1")[0][0]
    nodes = rows(rt.path, "SELECT count(*) FROM nodes")[0][0]
    assert by_body == 1
    assert by_instr == 1
    assert total == 1 + 100 * 50 * 2
    assert roots == 1  # the system prompt's node is shared too
    assert nodes == 1 + 100 * 50 * 2
    assert rt.session("user-42").messages()[0] == system


def test_identical_histories_share_node_rows(rt: srt.Runtime) -> None:
    convo = [
        HISTORY[0],
        *itertools.chain.from_iterable((user(f"q{t}"), assistant(f"a{t}")) for t in range(20)),
    ]
    a = rt.session("a")
    for msg in convo:
        a.append(msg)
    rows = {t: count(rt.path, t) for t in ("messages", "nodes")}
    b = rt.session("b")
    b.append(*convo[:10])
    b.append(*convo[10:])
    assert {t: count(rt.path, t) for t in ("messages", "nodes")} == rows
    assert a.head == b.head
    assert a.prefix_hash == b.prefix_hash
    assert b.messages() == convo
    # Diverging afterwards adds exactly one node and one message.
    b.append(user("only in b"))
    assert count(rt.path, "nodes") == rows["nodes"] + 1
    assert count(rt.path, "messages") == rows["messages"] + 1
    assert a.prefix_hash != b.prefix_hash


def test_repeated_message_in_one_session_is_stored_once(rt: srt.Runtime) -> None:
    s = rt.session("s")
    s.append(user("again"), user("again"), user("again"))
    assert s.messages() == [user("again")] * 3
    assert count(rt.path, "messages") == 1
    assert count(rt.path, "nodes") == 3


# -- fork, rewind, edit copy nothing --------------------------------------------------------


@pytest.fixture
def long_session(rt: srt.Runtime) -> tuple[srt.Session, list[dict[str, str]]]:
    msgs = [user(f"message {i}") if i % 2 else assistant(f"message {i}") for i in range(2000)]
    s = rt.session("long")
    for i in range(0, 2000, 250):
        s.append(*msgs[i : i + 250])
    return s, msgs


@pytest.mark.parametrize(("at", "keep"), [(None, 2000), (-1, 1999), (10, 10), (0, 0)])
def test_fork_copies_no_rows(
    rt: srt.Runtime,
    long_session: tuple[srt.Session, list[dict[str, str]]],
    at: int | None,
    keep: int,
) -> None:
    s, msgs = long_session
    before = {t: count(rt.path, t) for t in ("messages", "nodes", "sessions")}
    child = s.fork("child", at=at) if at is not None else s.fork("child")
    after = {t: count(rt.path, t) for t in ("messages", "nodes", "sessions")}
    assert after == {**before, "sessions": before["sessions"] + 1}
    assert child.messages() == msgs[:keep]
    assert len(child) == keep
    # The same from a fresh handle and a fresh runtime.
    assert rt.session("child", create=False).messages() == msgs[:keep]
    with srt.Runtime(rt.path) as other:
        assert other.session("child", create=False).messages() == msgs[:keep]
    assert s.messages() == msgs  # the parent is untouched


def test_fork_then_diverge(
    rt: srt.Runtime, long_session: tuple[srt.Session, list[dict[str, str]]]
) -> None:
    s, msgs = long_session
    child = s.fork("child", at=10)
    child.append(user("child turn"))
    s.append(user("parent turn"))
    assert child.messages() == [*msgs[:10], user("child turn")]
    assert s.messages() == [*msgs, user("parent turn")]
    with srt.Runtime(rt.path) as other:
        assert other.session("child").messages() == [*msgs[:10], user("child turn")]


def test_rewind_and_edit_copy_nothing_but_the_edit(
    rt: srt.Runtime, long_session: tuple[srt.Session, list[dict[str, str]]]
) -> None:
    s, msgs = long_session
    before = snapshot(rt.path)
    s.rewind(500)
    after = snapshot(rt.path)
    assert after["messages"] == before["messages"]
    assert after["nodes"] == before["nodes"]
    assert len(after["sessions"]) == len(before["sessions"])
    assert s.messages() == msgs[:1500]

    s.edit(100, user("edited"))
    edited = snapshot(rt.path)
    assert len(edited["messages"]) == len(before["messages"]) + 1
    assert len(edited["nodes"]) == len(before["nodes"]) + 1
    assert edited["messages"][: len(before["messages"])] == before["messages"]
    assert edited["nodes"][: len(before["nodes"])] == before["nodes"]
    assert s.messages() == [*msgs[:100], user("edited")]

    # Editing back to the original content reuses the original node: no new rows.
    s.edit(100, msgs[100])
    assert snapshot(rt.path)["nodes"] == edited["nodes"]
    assert s.messages() == msgs[:101]
    with srt.Runtime(rt.path) as other:
        assert other.session("long").messages() == msgs[:101]


def test_rewind_bounds(rt: srt.Runtime) -> None:
    s = rt.session("s")
    s.append(*HISTORY)
    with pytest.raises(IndexError):
        s.rewind(4)
    with pytest.raises(IndexError):
        s.rewind(-1)
    with pytest.raises(IndexError):
        s.edit(3, user("x"))
    with pytest.raises(IndexError):
        s.fork("f", at=4)
    s.rewind(0)
    assert s.messages() == HISTORY
    s.rewind(3)
    assert s.messages() == []
    assert s.head is None
    assert rt.session("s").messages() == []


def test_deleting_a_session_never_harms_its_forks(
    rt: srt.Runtime, long_session: tuple[srt.Session, list[dict[str, str]]]
) -> None:
    s, msgs = long_session
    s.fork("keep-all")
    s.fork("keep-some", at=-100)
    rt.delete("long")
    with pytest.raises(srt.SessionNotFoundError):
        rt.session("long", create=False)
    with pytest.raises(srt.SessionNotFoundError):
        s.append(user("into a deleted session"))
    rt.close()
    with srt.Runtime(rt.path) as other:
        assert other.session("keep-all", create=False).messages() == msgs
        assert other.session("keep-some", create=False).messages() == msgs[:-100]
        assert [i.name for i in other.sessions()] == ["keep-all", "keep-some"]
    with srt.Runtime(rt.path) as other:
        assert other.store.verify().ok


# -- request bytes ----------------------------------------------------------------------------

_texts = st.text() | st.lists(
    st.sampled_from(["\x00", "𝄞", "😀", "é", "a", '"', "\\", "\n", "\u2028", "\ufeff"])
).map("".join)
_conversations = st.lists(
    st.tuples(st.sampled_from(["system", "user", "assistant"]), _texts),
    min_size=0,
    max_size=8,
)
_params = st.fixed_dictionaries(
    {},
    optional={
        "temperature": st.floats(0, 2, allow_nan=False, allow_infinity=False),
        "max_tokens": st.integers(1, 2**31),
        "stream": st.booleans(),
        "top_p": st.floats(0, 1),
        "stop": st.lists(st.text(max_size=5), max_size=3),
        "user": st.text(max_size=20),
        "response_format": st.just({"type": "json_object"}),
        "seed": st.none() | st.integers(-(2**63), 2**63 - 1),
    },
)
_models = st.sampled_from(["gpt-4o-mini", "o3", "model/with\u00e9\x00"]) | st.text(min_size=1)


@pytest.fixture(scope="module")
def module_rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[srt.Runtime]:
    with srt.Runtime(str(tmp_path_factory.mktemp("req") / "req.db")) as runtime:
        yield runtime


_names = (f"conv-{i}" for i in itertools.count())


@settings(max_examples=200)
@given(_conversations, _models, _params)
def test_request_bytes_equal_json_dumps(
    module_rt: srt.Runtime, convo: list[tuple[str, str]], model: str, params: dict[str, Any]
) -> None:
    s = module_rt.session(next(_names))
    msgs = [{"role": r, "content": t} for r, t in convo]
    if msgs:
        s.append(*msgs)
    # cache=False: no cache hints (OpenAI's prompt_cache_key) are added to params.
    body = s.request(model=model, cache=False, **params)
    assert s.messages() == msgs
    assert body == compact({"model": model, "messages": s.messages(), **params})
    assert json.loads(body) == {"model": model, "messages": msgs, **params}
    assert s.last_build is not None
    assert s.last_build.nbytes == len(body)
    assert s.last_build.messages == len(msgs)
    assert s.last_build.serialized == 0
    assert s.last_build.format == "openai.chat"


def _messages_end(model: str, messages: list[dict[str, Any]]) -> int:
    """Offset just past the last message fragment of a Chat Completions body."""
    head = b'{"model":' + compact(model) + b',"messages":['
    return len(head) + len(b",".join(compact(m) for m in messages))


@settings(max_examples=100)
@given(
    st.lists(_conversations, min_size=1, max_size=6),
    _models,
    _params,
    st.booleans(),
)
def test_each_request_extends_the_previous_one_byte_for_byte(
    module_rt: srt.Runtime,
    turns: list[list[tuple[str, str]]],
    model: str,
    params: dict[str, Any],
    cache: bool,
) -> None:
    """Turn N+1's body starts with turn N's body minus its closing tail.

    The tail (``]`` and the parameters) is everything after turn N's last message
    fragment; it is found from ``json.dumps`` of the messages, not from srt.
    """
    s = module_rt.session(next(_names))
    previous: bytes | None = None
    previous_end = 0
    for turn in turns:
        added = [{"role": r, "content": t} for r, t in turn]
        s.append(*added)
        body = s.request(model=model, cache=cache, **params)
        end = _messages_end(model, s.messages())
        assert body[end : end + 1] == b"]"
        assert json.loads(body)["messages"] == s.messages()
        if previous is not None:
            kept = previous[:previous_end]
            assert body.startswith(kept)
            if added and len(s) > len(added):
                assert body[len(kept) : len(kept) + 1] == b","
            if not added:
                assert body == previous
        previous, previous_end = body, end
    if not cache:
        assert previous == compact({"model": model, "messages": s.messages(), **params})


def test_request_prefix_survives_reopen(rt: srt.Runtime) -> None:
    s = rt.session("s")
    previous: bytes | None = None
    for t in range(30):
        s.append(user(f"question {t} 𝄞"), assistant(f"answer {t}\x00"))
        body = s.request(model="m", temperature=0.2)
        if previous is not None:
            end = _messages_end("m", s.messages()[:-2])
            assert body.startswith(previous[:end] + b",")
        previous = body
    with srt.Runtime(rt.path) as other:
        assert other.session("s").request(model="m", temperature=0.2) == previous


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("", {}),
        (None, {}),
        ("m", {"messages": []}),
        ("\ud800", {}),
        ("m", {"user": "\ud800"}),
        ("m", {"temperature": float("nan")}),
        ("m", {"stop": {1, 2}}),
    ],
)
def test_bad_request_parameters(rt: srt.Runtime, model: Any, params: dict[str, Any]) -> None:
    s = rt.session("s")
    s.append(user("x"))
    with pytest.raises(srt.ConfigError):
        s.request(model=model, **params)


def test_unknown_wire_format(rt: srt.Runtime) -> None:
    with pytest.raises(srt.ConfigError):
        rt.session("s").request("nope.chat", model="m")


def test_request_serializes_nothing_already_stored(rt: srt.Runtime) -> None:
    s = rt.session("s")
    msgs = [user(f"u{i}") if i % 2 else assistant(f"a{i}") for i in range(200)]
    s.append(*msgs[:100])
    s.append(*msgs[100:])
    assert rt.serialized == 200
    first = s.request(model="m")
    assert s.last_build is not None
    assert s.last_build.serialized == 0
    assert s.last_build.reused == 200
    assert rt.serialized == 200

    before = rt.serialized
    s.append(user("new question"), assistant("new answer"))
    body = s.request(model="m")
    assert rt.serialized - before == 2
    assert s.last_build.serialized == 0
    assert s.last_build.messages == 202
    assert body.startswith(first[: _messages_end("m", msgs)] + b",")

    with srt.Runtime(rt.path) as fresh:
        again = fresh.session("s").request(model="m")
        assert fresh.serialized == 0
        assert again == body


# -- concurrency ---------------------------------------------------------------------------


def _race(handles: list[srt.Session], turns: list[tuple[dict[str, str], ...]]) -> list[Any]:
    """Append ``turns[i]`` through ``handles[i]``, all released by one barrier."""
    barrier = threading.Barrier(len(handles))
    results: list[Any] = [None] * len(handles)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = handles[i].append(*turns[i])
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(handles))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive()
    return results


def _check_one_winner(
    a: srt.Session, b: srt.Session, results: list[Any], turns: list[tuple[dict[str, str], ...]]
) -> None:
    conflicts = [i for i, r in enumerate(results) if isinstance(r, srt.ConflictError)]
    winners = [i for i, r in enumerate(results) if isinstance(r, int)]
    assert len(conflicts) == 1, results
    assert len(winners) == 1, results
    w, loser = winners[0], conflicts[0]
    handles = [a, b]
    assert handles[w].messages() == [*HISTORY, *turns[w]]
    assert handles[loser].messages() == HISTORY  # the loser wrote nothing
    handles[loser].append(*turns[loser], rebase=True)
    expected = [*HISTORY, *turns[w], *turns[loser]]
    assert handles[loser].messages() == expected
    handles[w].refresh()
    assert handles[w].messages() == expected


_TURNS = [
    (user("from A"), assistant("reply A")),
    (user("from B"), assistant("reply B")),
]


def test_two_threads_race_on_one_head(rt: srt.Runtime) -> None:
    for attempt in range(5):
        name = f"same-{attempt}"
        rt.session(name).append(*HISTORY)
        a = rt.session(name)
        b = rt.session(name)
        assert a.head == b.head is not None
        results = _race([a, b], list(_TURNS))
        _check_one_winner(a, b, results, list(_TURNS))
        assert rt.session(name).messages() == a.messages()


def test_two_runtimes_race_on_one_head(db_path: str) -> None:
    with srt.Runtime(db_path) as one, srt.Runtime(db_path) as two:
        one.session("same").append(*HISTORY)
        a = one.session("same")
        b = two.session("same")
        results = _race([a, b], list(_TURNS))
        _check_one_winner(a, b, results, list(_TURNS))
    with srt.Runtime(db_path) as three:
        assert len(three.session("same").messages()) == len(HISTORY) + 4


def test_stale_handle_conflicts_without_a_race(rt: srt.Runtime) -> None:
    a = rt.session("s")
    b = rt.session("s")
    a.append(user("first"))
    before = snapshot(rt.path)
    with pytest.raises(srt.ConflictError):
        b.append(user("second"))
    with pytest.raises(srt.ConflictError):
        b.rewind(0)
    assert snapshot(rt.path) == before
    b.refresh()
    b.append(user("second"))
    assert rt.session("s").messages() == [user("first"), user("second")]


def test_many_threads_rebase_onto_one_session(rt: srt.Runtime) -> None:
    rt.session("shared")
    n_threads, n_appends = 8, 50
    barrier = threading.Barrier(n_threads)
    errors: list[BaseException] = []

    def run(k: int) -> None:
        s = rt.session("shared")
        barrier.wait()
        try:
            for j in range(n_appends):
                s.append(user(f"t{k} m{j}"), rebase=True)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
        assert not t.is_alive()
    assert errors == []
    got = [m["content"] for m in rt.session("shared").messages()]
    assert len(got) == n_threads * n_appends
    expected = {f"t{k} m{j}" for k in range(n_threads) for j in range(n_appends)}
    assert sorted(got) == sorted(expected)
    # Each thread's own messages stay in its order.
    for k in range(n_threads):
        mine = [c for c in got if c.startswith(f"t{k} ")]
        assert mine == [f"t{k} m{j}" for j in range(n_appends)]


def test_many_processes_share_one_file(db_path: str) -> None:
    n_procs, turns = 4, 50
    # The file does not exist yet: the children also race to create and migrate it.
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=process_worker, args=(db_path, i, turns)) for i in range(n_procs)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * n_procs

    with srt.Runtime(db_path) as rt:
        shared = rt.session("shared", create=False).messages()
        assert len(shared) == n_procs * turns * 2
        for q, a in zip(shared[::2], shared[1::2], strict=True):
            # A turn is atomic: its answer follows its question directly.
            assert q["role"] == "user"
            assert a == assistant(q["content"].replace("question", "answer"))
        expected = {f"p{i} t{t} question" for i in range(n_procs) for t in range(turns)}
        assert {m["content"] for m in shared if m["role"] == "user"} == expected
        for i in range(n_procs):
            own = rt.session(f"own-{i}", create=False).messages()
            assert [m["content"] for m in own] == [
                f"p{i} t{t} {kind}" for t in range(turns) for kind in ("question", "answer")
            ]
    with connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").get == "ok"


# -- file identity ---------------------------------------------------------------------------


def _expect_refusal(path: str, error: type[srt.StoreError]) -> srt.StoreError:
    digest = sha256(path)
    listing = sorted(os.listdir(os.path.dirname(path)))
    with pytest.raises(srt.StoreError) as info:
        srt.Runtime(path)
    exc = info.value
    assert isinstance(exc, error), repr(exc)
    assert not isinstance(exc, apsw.Error)
    assert str(exc)
    assert sha256(path) == digest
    assert sorted(os.listdir(os.path.dirname(path))) == listing
    return exc


def test_foreign_sqlite_file_is_refused_and_untouched(db_path: str) -> None:
    with connect(db_path) as conn:
        conn.execute("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO notes(body) VALUES (?)", [(f"note {i}",) for i in range(50)])
    _expect_refusal(db_path, srt.NotAnSrtDatabaseError)
    with connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM notes").get == 50


def test_foreign_sqlite_file_with_only_pragmas_is_refused(db_path: str) -> None:
    with connect(db_path) as conn:
        conn.execute("PRAGMA user_version=1")
    _expect_refusal(db_path, srt.NotAnSrtDatabaseError)


def test_foreign_wal_file_is_refused(db_path: str) -> None:
    with connect(db_path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA application_id=42")
        conn.execute("CREATE TABLE t(x)")
    _expect_refusal(db_path, srt.NotAnSrtDatabaseError)


@pytest.mark.parametrize("size", [1, 99, 100, 4096, 65536])
def test_random_bytes_are_refused_and_untouched(db_path: str, size: int) -> None:
    Path(db_path).write_bytes(random.Random(size).randbytes(size))
    _expect_refusal(db_path, srt.CorruptionError)


def test_sqlite_magic_followed_by_garbage_is_refused(db_path: str) -> None:
    garbage = random.Random(3).randbytes(8192)
    Path(db_path).write_bytes(b"SQLite format 3\x00" + garbage[16:])
    _expect_refusal(db_path, srt.StoreError)


def test_text_file_is_refused(db_path: str) -> None:
    Path(db_path).write_text("these are my notes, not a database\n" * 20)
    _expect_refusal(db_path, srt.CorruptionError)


def test_newer_schema_is_refused_and_untouched(db_path: str) -> None:
    with srt.Runtime(db_path) as rt:
        rt.session("s").append(*HISTORY)
    with connect(db_path) as conn:
        assert conn.execute("PRAGMA user_version").get == _db.SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").get == _db.APPLICATION_ID
        conn.execute("PRAGMA user_version=99")
    exc = _expect_refusal(db_path, srt.SchemaVersionError)
    assert "99" in str(exc)


def test_truncated_file_is_refused_and_untouched(db_path: str) -> None:
    with srt.Runtime(db_path) as rt:
        for i in range(300):
            rt.session(f"s{i}").append(user(f"{i} " + "lorem ipsum " * 300))
    with connect(db_path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert not os.path.exists(db_path + "-wal") or os.path.getsize(db_path + "-wal") == 0
    size = os.path.getsize(db_path)
    assert size > 1_000_000
    os.truncate(db_path, size // 2)
    _expect_refusal(db_path, srt.CorruptionError)


@pytest.mark.parametrize(("offset", "value"), [(18, 0), (19, 0), (19, 3), (18, 7)])
def test_invalid_format_version_bytes_are_refused_and_untouched(
    db_path: str, offset: int, value: int
) -> None:
    """SQLite writes 1 or 2 at header bytes 18/19 and opens a file with other values;
    switching it to WAL would rewrite the damaged header, so srt refuses it."""
    with srt.Runtime(db_path) as rt:
        rt.session("s").append(*HISTORY)
    data = bytearray(Path(db_path).read_bytes())
    data[offset] = value
    Path(db_path).write_bytes(bytes(data))
    exc = _expect_refusal(db_path, srt.CorruptionError)
    assert "format version" in str(exc)


def test_rollback_journal_srt_file_still_opens(db_path: str) -> None:
    """A valid srt file another tool switched to a rollback journal (bytes 18/19 = 1)."""
    with srt.Runtime(db_path) as rt:
        rt.session("s").append(*HISTORY)
    with connect(db_path) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
    assert Path(db_path).read_bytes()[18:20] == b"\x01\x01"
    with srt.Runtime(db_path) as rt:
        assert len(rt.session("s").messages()) == len(HISTORY)


def test_empty_file_becomes_an_srt_database(db_path: str) -> None:
    Path(db_path).touch()
    with srt.Runtime(db_path) as rt:
        rt.session("s").append(user("x"))
    with connect(db_path) as conn:
        assert conn.execute("PRAGMA application_id").get == _db.APPLICATION_ID


def test_directory_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(srt.StoreError) as info:
        srt.Runtime(str(tmp_path))
    assert not isinstance(info.value, apsw.Error)


# -- permissions -----------------------------------------------------------------------------


def test_new_files_and_directories_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "a" / "b" / "c" / "srt.db"
        with srt.Runtime(str(path)) as rt:
            rt.session("s").append(user("secret"))
            present = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
            assert path in present
            assert len(present) == 3  # WAL mode: all three exist while a connection is open
            for p in present:
                assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
        for d in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
            assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(old)


# -- session names ----------------------------------------------------------------------------

_HOSTILE_OK = [
    "'); DROP TABLE sessions;--",
    "../../etc/passwd",
    "..",
    "/tmp/x",
    "名前 with spaces",
    "𝄞" * 256,
    "%s %d {0} ?1 :name",
]


@pytest.mark.parametrize("name", _HOSTILE_OK)
def test_hostile_names_are_plain_names(tmp_path: Path, name: str) -> None:
    path = tmp_path / "inner" / "srt.db"
    outside = sorted(os.listdir(tmp_path))
    with srt.Runtime(str(path)) as rt:
        rt.session(name).append(user("hi"))
        rt.session("other").append(user("hello"))
    with srt.Runtime(str(path)) as rt:
        assert rt.session(name, create=False).messages() == [user("hi")]
        assert sorted(i.name for i in rt.sessions()) == sorted([name, "other"])
        rt.rename(name, "renamed")
        assert rt.session("renamed", create=False).messages() == [user("hi")]
        rt.rename("renamed", name)
        assert rt.session(name, create=False).messages() == [user("hi")]
    assert sorted(os.listdir(tmp_path)) == sorted({*outside, "inner"})
    assert {p.name for p in (tmp_path / "inner").iterdir()} <= {
        "srt.db",
        "srt.db-wal",
        "srt.db-shm",
    }
    with connect(str(path)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
    assert {"heap", "nodes", "sessions"} <= tables


_BAD_NAMES: list[Any] = [
    "",
    "x" * 10_240,
    "x" * 257,
    "a\x00b",
    "line\nbreak",
    "tab\t",
    "del\x7f",
    "lone \ud800 surrogate",
    "\udfff",
    b"bytes",
    42,
    None,
    ["list"],
]


@pytest.mark.parametrize("name", _BAD_NAMES, ids=[repr(n)[:20] for n in _BAD_NAMES])
def test_invalid_session_names(rt: srt.Runtime, name: Any) -> None:
    s = rt.session("ok")
    s.append(user("x"))
    before = snapshot(rt.path)
    for call in (
        lambda: rt.session(name),
        lambda: rt.session(name, create=False),
        lambda: rt.delete(name),
        lambda: rt.rename("ok", name),
        lambda: rt.rename(name, "ok2"),
        lambda: s.fork(name),
    ):
        with pytest.raises(srt.InvalidSessionNameError) as info:
            call()
        assert isinstance(info.value, srt.SessionError)
        assert isinstance(info.value, ValueError)
    assert snapshot(rt.path) == before


def test_longest_allowed_name(rt: srt.Runtime) -> None:
    name = "n" * 256
    rt.session(name).append(user("x"))
    assert rt.session(name, create=False).messages() == [user("x")]


# -- session lookup, fork targets, delete and rename ------------------------------------------


def test_missing_session_with_create_false(rt: srt.Runtime) -> None:
    before = snapshot(rt.path)
    with pytest.raises(srt.SessionNotFoundError) as info:
        rt.session("missing", create=False)
    assert isinstance(info.value, LookupError)
    assert isinstance(info.value, srt.SessionError)
    assert snapshot(rt.path) == before
    assert rt.sessions() == []


def test_session_created_on_first_use(rt: srt.Runtime) -> None:
    s = rt.session("new")
    assert s.name == "new"
    assert len(s) == 0
    assert s.head is None
    assert s.prefix_hash is None
    assert s.messages() == []
    info = rt.sessions()
    assert [(i.name, i.messages, i.head_prefix) for i in info] == [("new", 0, None)]
    s.append(*HISTORY)
    [i] = rt.sessions()
    assert (i.name, i.messages, i.head_prefix) == ("new", 3, s.prefix_hash)
    assert i.updated >= i.created


def test_fork_onto_an_existing_name(rt: srt.Runtime) -> None:
    s = rt.session("a")
    s.append(*HISTORY)
    rt.session("b").append(user("b's own"))
    before = snapshot(rt.path)
    with pytest.raises(srt.SessionExistsError):
        s.fork("b")
    with pytest.raises(srt.SessionExistsError):
        s.fork("a")
    assert snapshot(rt.path) == before
    assert rt.session("b").messages() == [user("b's own")]


def test_delete(rt: srt.Runtime) -> None:
    with pytest.raises(srt.SessionNotFoundError):
        rt.delete("missing")
    rt.session("a").append(user("x"))
    rt.delete("a")
    assert rt.sessions() == []
    with pytest.raises(srt.SessionNotFoundError):
        rt.delete("a")
    # The name can be reused; the new session starts empty.
    assert rt.session("a").messages() == []


def test_rename(rt: srt.Runtime) -> None:
    rt.session("old").append(*HISTORY)
    rt.session("taken").append(user("mine"))
    rt.rename("old", "new")
    assert rt.session("new", create=False).messages() == HISTORY
    with pytest.raises(srt.SessionNotFoundError):
        rt.session("old", create=False)
    with pytest.raises(srt.SessionExistsError):
        rt.rename("new", "taken")
    with pytest.raises(srt.SessionNotFoundError):
        rt.rename("old", "newer")
    assert rt.session("taken").messages() == [user("mine")]
    assert [i.name for i in rt.sessions()] == ["new", "taken"]


def test_default_path_follows_srt_db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = str(tmp_path / "env.db")
    monkeypatch.setenv("SRT_DB", target)
    assert srt.default_path() == target
    with srt.Runtime() as runtime:
        assert runtime.path == target
        runtime.session("s").append(user("x"))
    assert os.path.exists(target)


def test_edit_and_rewind_are_seen_by_every_cached_assembly(rt: srt.Runtime) -> None:
    """Regression: an edit that keeps the length must not reuse the old fragment."""
    s = rt.session("edit-cache")
    s.append({"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"})
    for fmt in ("openai.chat", "anthropic.messages", "openai.responses"):
        s.request(fmt, model="m", cache=False)
    s.edit(1, {"role": "assistant", "content": "EDITED"})
    for fmt in ("openai.chat", "anthropic.messages", "openai.responses"):
        body = s.request(fmt, model="m", cache=False)
        assert b"EDITED" in body and b'"a1"' not in body, fmt
    s.rewind(1)
    s.append({"role": "assistant", "content": "again"})
    assert b"again" in s.request(model="m", cache=False)


def test_a_damaged_head_that_names_another_node_is_refused(tmp_path: Path) -> None:
    """A session row keeps its head's prefix hash: a head id damaged into the id of another
    stored node (here the first node of another session, a chain that checks out on its
    own) is refused with CorruptionError instead of being read as the session."""
    path = str(tmp_path / "h.db")
    with srt.Runtime(path) as rt:
        for name in ("a", "b"):
            rt.session(name).append(
                {"role": "user", "content": f"q {name}"}, {"role": "assistant", "content": "r"}
            )
    with connect(path) as conn:
        b_root = conn.execute(
            "SELECT id FROM nodes WHERE parent IS NULL ORDER BY id DESC LIMIT 1"
        ).get
        conn.execute("UPDATE sessions SET head = ? WHERE name = 'a'", (b_root,))
    with srt.Runtime(path) as rt:
        with pytest.raises(srt.CorruptionError, match="a head that is not its own"):
            rt.session("a", create=False).messages()
        assert rt.session("b").messages()[0] == {"role": "user", "content": "q b"}


def test_a_sessions_page_that_lost_its_rows_is_refused(tmp_path: Path) -> None:
    """A damaged page header that empties the sessions' name index (its cell count zeroed)
    would list no sessions, as the listing walks that index; the table still holds them,
    so listing raises CorruptionError."""
    path = str(tmp_path / "p.db")
    with srt.Runtime(path) as rt:
        for name in ("a", "b", "c"):
            rt.session(name).append({"role": "user", "content": name})
    with connect(path) as conn:
        page = conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'sqlite_autoindex_sessions_1'"
        ).get
        size = conn.execute("PRAGMA page_size").get
    data = bytearray(Path(path).read_bytes())
    header = (page - 1) * size + (100 if page == 1 else 0)
    assert data[header + 3 : header + 5] == b"\x00\x03"  # the b-tree page's cell count
    data[header + 4] = 0
    Path(path).write_bytes(bytes(data))
    with srt.Runtime(path) as rt, pytest.raises(srt.CorruptionError, match="disagree"):
        rt.sessions()


def test_a_connection_has_bestpractice_settings(tmp_path: Path) -> None:
    """WAL, and double-quoted strings refused, as ``apsw.bestpractice``'s connection_wal
    and connection_dqs set them (written out in ``db._configure``)."""
    path = str(tmp_path / "s.db")
    conn = _db.connect(path, threading.Lock(), migrate=True)
    try:
        assert conn.execute("PRAGMA journal_mode").get == "wal"
        with pytest.raises(apsw.SQLError, match="no such column"):
            conn.execute('SELECT "not a string"').get  # noqa: B018 - the query is the test
        assert conn.execute("SELECT 'a string'").get == "a string"
    finally:
        conn.close()
