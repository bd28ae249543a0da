"""``srt copy SRC DEST`` and ``srt.store.copy.copy_store``: SQLite to PostgreSQL and back,
with sessions, forks, the ledger and objects, checked by hashes, resumable."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import srt
from rel_support.waits import ended
from srt.store import CallRecord, Store
from srt.store.copy import SCRATCH, copy_store


def _fill(rt: srt.Runtime) -> None:
    """Three sessions, two of them forks sharing a prefix, a ledger and objects."""
    a = rt.session("a")
    a.append(
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi", "metadata": {"pinned": True}},
        {"role": "assistant", "content": "hello"},
    )
    b = a.fork("b", at=2)
    b.append({"role": "assistant", "content": "bonjour"})
    c = a.fork("c")
    c.append({"role": "user", "content": [{"type": "text", "text": "and now?"}]})
    rt.session("empty")
    for i, s in enumerate((a, b, c)):
        rt.store.record_call(
            CallRecord(
                at=1_700_000_000.0 + i,
                session=rt.store.get_session(s.name).id,  # type: ignore[union-attr]
                session_name=s.name,
                node=s.head,
                provider="openai",
                model="gpt-4o-mini",
                format="openai.chat",
                body_hash=bytes([i]) * 16,
                body_bytes=100 + i,
                messages=len(s),
                input_tokens=10 * i,
            )
        )
    rt.store.put_object("checkpoint", "thread-1", "c1", b"state", node=b.head)
    rt.store.put_object("response", "", "r1", b"\x00\x01 raw")
    rt.store.put_object("response", "", "gone", b"x", expires=time.time() - 1)


def _state(store: Store) -> dict[str, Any]:
    """Everything a copy must keep, in engine-independent terms."""
    sessions = {}
    for info in store.list_sessions():
        row = store.get_session(info.name)
        assert row is not None
        sessions[info.name] = (
            info.head_prefix,
            [(r[2], r[4], r[5]) for r in store.chain(row.head)],
        )
    calls = sorted(
        (
            repr(dataclasses.replace(c, id=None, session=None, node=None)),
            store.node_prefix(c.node) if c.node is not None else None,
        )
        for c in store.calls()
    )
    objects = [
        (o.kind, o.scope, o.key, o.value, store.node_prefix(o.node) if o.node else None)
        for o in store.scan_objects()
    ]
    return {"sessions": sessions, "calls": calls, "objects": objects}


def _meta_bytes(state: dict[str, Any]) -> dict[str, Any]:
    for _prefix, rows in state["sessions"].values():
        rows[:] = [(b, s, m.encode() if isinstance(m, str) else m) for b, s, m in rows]
    return state


def test_sqlite_to_postgres_and_back(tmp_path: Path, pg_url: str) -> None:
    src_path = str(tmp_path / "src.db")
    back_path = str(tmp_path / "back.db")
    with srt.Runtime(src_path) as src:
        _fill(src)
        want = _meta_bytes(_state(src.store))
        with srt.Runtime(pg_url) as pg:
            report = copy_store(src.store, pg.store)
            assert report.verified and report.sessions_copied == 3 and report.calls_copied == 3
            assert report.objects_copied == 2
            assert _meta_bytes(_state(pg.store)) == want
            assert pg.store.verify().ok
            # forks share their nodes in the copy as in the original
            assert pg.store.verify().nodes == src.store.verify().nodes
            assert [s.name for s in pg.sessions()] == ["a", "b", "c", "empty"]
            with srt.Runtime(back_path) as back:
                copy_store(pg.store, back.store)
                assert _meta_bytes(_state(back.store)) == want
                assert back.session("c").request("openai.chat", model="m") == src.session(
                    "c"
                ).request("openai.chat", model="m")


def test_a_second_copy_finds_everything_there(tmp_path: Path, pg_url: str) -> None:
    with srt.Runtime(str(tmp_path / "src.db")) as src, srt.Runtime(pg_url) as pg:
        _fill(src)
        copy_store(src.store, pg.store)
        again = copy_store(src.store, pg.store)
        assert (again.sessions_copied, again.sessions_present) == (0, 4)  # "empty" too
        assert (again.calls_copied, again.calls_present) == (0, 3)
        assert len(pg.store.calls()) == 3


def test_an_interrupted_copy_resumes(tmp_path: Path, pg_url: str, monkeypatch: Any) -> None:
    with srt.Runtime(str(tmp_path / "src.db")) as src, srt.Runtime(pg_url) as pg:
        _fill(src)
        for k in range(20):
            src.session(f"more-{k:02d}").append({"role": "user", "content": f"m{k}"})
        want = _meta_bytes(_state(src.store))
        real_record = pg.store.record_call
        seen = {"appends": 0, "calls": 0}
        real_append = pg.store.append

        def failing_append(*args: Any, **kw: Any) -> list[int]:
            seen["appends"] += 1
            if seen["appends"] == 9:
                raise srt.StoreUnavailableError("the connection broke (injected)")
            return real_append(*args, **kw)

        def failing_record(call: CallRecord) -> int:
            seen["calls"] += 1
            if seen["calls"] == 2:
                raise srt.StoreUnavailableError("the connection broke (injected)")
            return real_record(call)

        monkeypatch.setattr(pg.store, "append", failing_append)
        with pytest.raises(srt.StoreUnavailableError):
            copy_store(src.store, pg.store)
        monkeypatch.setattr(pg.store, "append", real_append)
        monkeypatch.setattr(pg.store, "record_call", failing_record)
        with pytest.raises(srt.StoreUnavailableError):
            copy_store(src.store, pg.store)
        monkeypatch.setattr(pg.store, "record_call", real_record)
        report = copy_store(src.store, pg.store)
        assert report.verified and report.sessions_present >= 8
        assert _meta_bytes(_state(pg.store)) == want
        assert len(pg.store.calls()) == 3  # none written twice
        assert not [s for s in pg.sessions() if s.name.startswith(SCRATCH)]


def test_a_destination_session_with_other_messages_stops_the_copy(
    tmp_path: Path, pg_url: str
) -> None:
    with srt.Runtime(str(tmp_path / "src.db")) as src, srt.Runtime(pg_url) as pg:
        _fill(src)
        pg.session("b").append({"role": "user", "content": "something else"})
        with pytest.raises(srt.SessionExistsError):
            copy_store(src.store, pg.store)


def test_the_cli_copies_and_a_killed_copy_resumes(tmp_path: Path, pg_url: str) -> None:
    src_path = str(tmp_path / "src.db")
    with srt.Runtime(src_path) as src:
        _fill(src)
        for k in range(300):
            src.session(f"bulk-{k:03d}").append(
                {"role": "user", "content": f"bulk {k} " + "x" * 2000}
            )
        want = _meta_bytes(_state(src.store))
    env = {k: v for k, v in os.environ.items() if k != "SRT_DB"}
    cmd = [sys.executable, "-m", "srt", "copy", src_path, pg_url]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with srt.Runtime(pg_url) as pg:
        deadline = time.monotonic() + 60
        while len(pg.sessions()) < 20 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
    proc.kill()
    ended(proc)
    with srt.Runtime(pg_url) as pg:
        assert 20 <= len(pg.sessions()) < 304  # killed in the middle of the copy
    done = subprocess.run([*cmd, "--json"], env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert b"verified" in done.stdout
    with srt.Runtime(pg_url) as pg:
        assert _meta_bytes(_state(pg.store)) == want
        assert pg.store.verify().ok
    missing = subprocess.run(
        [sys.executable, "-m", "srt", "copy", str(tmp_path / "nope.db"), pg_url],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert missing.returncode == 1 and b"no database at" in missing.stderr


def _dest_url(tmp_path: Path, engine: str, request: pytest.FixtureRequest) -> str:
    if engine == "sqlite":
        return str(tmp_path / "dest.db")
    url: str = request.getfixturevalue("pg_url")
    return url


def _heads(store: Store) -> list[tuple[str, str, str]]:
    """Each earlier-head record: (its session's name, key, action)."""
    names = {}
    for info in store.list_sessions():
        row = store.get_session(info.name)
        assert row is not None
        names[str(row.id)] = info.name
    return sorted(
        (names.get(o.scope, f"<no session {o.scope}>"), o.key, o.value.decode())
        for o in store.scan_objects()
        if o.kind == "srt.head"
    )


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_earlier_heads_follow_their_session_and_go_with_its_delete(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    """A session's records of earlier heads are filed under its id, which differs in the
    destination: the copy files them under the copy's id, so ``history()`` lists them
    there and a delete through the API removes them (was: left under the source's id,
    listed by no session, or by another one that had that id)."""
    dest_url = _dest_url(tmp_path, engine, request)
    with srt.Runtime(str(tmp_path / "src.db")) as src, srt.Runtime(dest_url) as dest:
        for name in ("x", "y", "z"):  # in the destination first: the ids differ
            dest.session(name).append({"role": "user", "content": f"{name} of dest"})
        _fill(src)
        for name in ("a", "b"):
            s = src.session(name)
            s.append({"role": "user", "content": f"more for {name}"})
            s.rewind(1)
        want = _heads(src.store)
        assert len(want) == 2
        copy_store(src.store, dest.store)
        assert _heads(dest.store) == want
        for name in ("a", "b"):
            assert [h.key for h in dest.session(name).history()] == [
                h.key for h in src.session(name).history()
            ]
            dest.session(name).restore(dest.session(name).history()[0])
        assert [h.action for h in dest.session("x").history()] == []
        dest.delete("a")
        dest.delete("b")
        assert _heads(dest.store) == []  # as a delete through the API leaves them
        assert copy_store(src.store, dest.store).verified  # a second copy brings them back
        assert len(_heads(dest.store)) == 2


class _Crash(BaseException):
    """Stops a run inside a tool, leaving its call started (a process that died)."""


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_a_started_tool_call_stays_started_in_the_copy(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    """A task's record that a tool call started is filed under its session's id: in the
    copy it is filed under the copy's, so a run resumed there reports the call
    interrupted (was: not found under the new id, so the tool ran a second time)."""
    from srt.testing import ProviderServer
    from task_support import KEY, make

    ran: list[str] = []

    def act(x: str) -> str:
        ran.append(x)
        if len(ran) == 1:
            raise _Crash
        return "acted"

    dest_url = _dest_url(tmp_path, engine, request)
    with (
        ProviderServer(api_key=KEY) as srv,
        srt.Runtime(str(tmp_path / "src.db")) as src,
        srt.Runtime(dest_url) as dest,
    ):
        for name in ("x", "y", "z"):  # in the destination first: the ids differ
            dest.session(name).append({"role": "user", "content": f"{name} of dest"})
        p = make("openai", srv.url)
        s = src.session("task")
        s.append(
            {"role": "user", "content": "act"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "act", "arguments": '{"x": "1"}'}}]},
        )  # fmt: skip
        with pytest.raises(_Crash):
            s.run(p, model="gpt-4o", tools=[act])
        assert copy_store(src.store, dest.store).verified
        srv.script("*", ["done"])
        result = dest.session("task").run(p, model="gpt-4o", tools=[act])
        p.close()
        assert [(r.call.id, r.status) for r in result.tool_runs] == [("c1", "interrupted")]
        assert ran == ["1"]  # not run twice


def test_the_copy_knows_the_kinds_filed_under_a_session() -> None:
    """The kinds are declared where they are defined (``srt._task``, ``srt.store.heads``),
    and importing any part of the store imports ``srt`` and so both: a fresh process
    that imports only the copy knows them."""
    code = (
        "import srt.store.copy\n"
        "from srt.store.owners import session_kinds\n"
        "print(','.join(session_kinds()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.split() == ["srt.head,srt.tool_call"]


def _schema_exists(url: str) -> bool:
    import psycopg

    from pg_support import server_url

    schema = url.rpartition("schema=")[2]
    with psycopg.connect(server_url()) as conn:
        row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        return row.fetchone() is not None


def test_a_copy_from_a_schema_without_a_store_creates_nothing(tmp_path: Path, pg_url: str) -> None:
    """A mistyped ``?schema=`` as the source: refused, the schema not created on the
    server, the destination not created (it had copied an empty store and said so)."""
    from support import run_cli

    dest = tmp_path / "dest.db"
    code, out, err = run_cli("copy", pg_url, str(dest))
    assert code == 1 and out == "", err
    assert "holds no srt store" in err and "nothing was created" in err
    assert not dest.exists() and not _schema_exists(pg_url)
    with srt.Runtime(pg_url) as rt:  # a store there: the source opens without create
        _fill(rt)
        want = _meta_bytes(_state(rt.store))
    code, out, err = run_cli("copy", pg_url, str(dest))
    assert code == 0 and "verified by hashes" in out, err
    with srt.Runtime(str(dest)) as copied:
        assert _meta_bytes(_state(copied.store)) == want


def test_a_copy_into_its_own_store_is_refused(tmp_path: Path, pg_url: str) -> None:
    from support import run_cli

    path = tmp_path / "a.db"
    with srt.Runtime(str(path)) as rt:
        _fill(rt)
    link = tmp_path / "link.db"
    link.symlink_to(path)
    before = path.read_bytes()
    for src, dest in [(path, path), (path, link), (f"sqlite:///{path}", path), (pg_url, pg_url)]:
        code, _out, err = run_cli("copy", str(src), str(dest))
        assert code == 1 and "both the source and the destination" in err, (src, dest, err)
    assert path.read_bytes() == before
