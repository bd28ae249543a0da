"""Audit 27, secrets: the code added since 2026-12-06 read as an attacker and a careless
user would, with a canary in each secret and every sink searched for it.

* the Agents SDK's compaction session over ``SrtSession`` (``_agcompact``, ``_agreplace``,
  the ledger rows it writes) run against ``srt.testing``'s ``/v1/responses/compact`` with a
  canary API key, debug logging on everywhere, a wrong key too;
* PostgreSQL's batched gc, its search index built ``CONCURRENTLY`` under an advisory lock,
  ``verify`` and the usage ledger's unmetered rows, on a server whose password is a canary:
  the API, ``repr`` of each object and the CLI (``gc``, ``search``, ``verify``);
* the local provider's child process: what its command line and environment carry (an
  allow-listed environment: no provider key, cloud credential or database password).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import stat
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from agents import Agent, OpenAIResponsesModel, Runner, set_tracing_disabled
from openai import AsyncOpenAI

import srt
from pg_support import scram_server
from srt.integrations.agents import SrtCompactionSession, SrtSession
from srt.local import child as local_child
from srt.testing import ProviderServer
from srt.testing.pgserver import PgServer
from support import NOTHING, found_in_files, run_cli

set_tracing_disabled(True)

KEY = "sk-CANARY-audit27-" + secrets.token_hex(16)
PASSWORD = "Canary27pw" + secrets.token_hex(8)
_LOGGERS = ("", "srt", "httpx", "httpcore", "openai", "openai.agents", "psycopg", "psycopg.pool")


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG (srt's, httpx's, the SDKs', psycopg's), captured."""
    old = {name: logging.getLogger(name).level for name in _LOGGERS}
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG):
            yield caplog
    finally:
        for name, level in old.items():
            logging.getLogger(name).setLevel(level)


def _text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


# -- the Agents SDK's compaction session ---------------------------------------------------


def test_a_compacting_agents_run_keeps_the_api_key_out_of_every_sink(
    tmp_path: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "agents.db"
    seen: list[str] = []
    with ProviderServer(api_key=KEY) as server:
        server.script("responses", ["one", "two", "three"])

        async def go(rt: srt.Runtime, key: str) -> list[Any]:
            under = SrtSession("c", rt, model="gpt-4o-mini")
            async with AsyncOpenAI(base_url=server.url + "/v1", api_key=key) as client:
                session = SrtCompactionSession(
                    "c",
                    under,
                    client=client,
                    should_trigger_compaction=lambda ctx: len(ctx["session_items"]) >= 2,
                )
                seen.extend([repr(under), str(under), repr(session), str(session)])
                agent = Agent(name="h", model=OpenAIResponsesModel("gpt-4o-mini", client))
                for question in ("q1", "q2"):
                    await Runner.run(agent, question, session=session)
                await session.run_compaction({"force": True})
                return await session.get_items()

        with srt.Runtime(db) as rt:
            items = asyncio.run(go(rt, KEY))
            assert items[-1]["type"] == "compaction"
            seen += [repr(rt), str(rt), repr(rt.usage()), repr(rt.calls(session_name="c"))]
            # A wrong key: the SDK's error, and the compaction's ledger write after it.
            with pytest.raises(openai.AuthenticationError) as wrong:
                asyncio.run(go(rt, KEY[:-4] + "XXXX"))
            seen.append(_text(wrong.value))
        billed = [r.endpoint for r in server.log]
    assert "openai.compact" in billed  # (the compaction really ran)
    code, out, err = run_cli("--db", str(db), "show", "c")
    assert code == 0
    seen += [out, err]
    assert [KEY[:20] in s for s in seen] == [False] * len(seen)
    assert KEY[:20] not in debug_logs.text
    assert found_in_files(db, KEY[:20].encode()) == NOTHING
    assert found_in_files(db, b"q2") != NOTHING  # (the files searched are the store's)


# -- PostgreSQL: batched gc, the search index build, verify, the ledger --------------------


@pytest.fixture(scope="module")
def scram() -> Iterator[PgServer]:
    with scram_server(PASSWORD) as pg:
        yield pg


def test_postgres_gc_search_build_and_verify_keep_the_password_out(
    scram: PgServer, debug_logs: pytest.LogCaptureFixture
) -> None:
    url = f"postgresql://srt:{PASSWORD}@127.0.0.1:{scram.port}/postgres?sslmode=disable&pool_timeout=3"
    seen: list[str] = []
    with ProviderServer() as server, srt.Runtime(url) as rt:
        provider = srt.OpenAI(api_key=KEY, base_url=server.url + "/v1")
        for i in range(30):
            s = rt.session(f"s{i}")
            s.append({"role": "user", "content": f"hello pelican number {i}"})
        s = rt.session("billed")
        s.append({"role": "user", "content": "hi"})
        s.send(provider, model="gpt-4o-mini")
        for i in range(20):
            rt.delete(f"s{i}")
        report = rt.gc()  # the batched gc (store/postgres/gc.py)
        assert report.nodes >= 20
        hits = rt.store.search("pelican")  # builds the index CONCURRENTLY under its lock
        assert len(hits) == 10
        verified = rt.store.verify()
        assert verified.faults == ()
        seen += [repr(rt), str(rt), repr(rt.store), repr(report), repr(verified), repr(hits)]
        seen += [repr(rt.usage()), repr(rt.savings()), repr(provider), repr(s)]
        pool = getattr(rt.store, "_pool", None) or getattr(rt.store, "pool", None)
        seen.append(repr(pool))
        provider.close()
    for args in (("gc",), ("search", "pelican"), ("verify",), ("stats",), ("ls",)):
        code, out, err = run_cli("--db", url, *args)
        assert code == 0, (args, err)
        seen += [out, err]
    # A gc and a search on a server that has gone away: typed errors without the password.
    rt = srt.Runtime(url)
    rt.session("x").append({"role": "user", "content": "y"})
    scram.stop("immediate", remove=False)
    try:
        for action in (rt.gc, lambda: rt.store.search("pelican"), rt.store.verify):
            with pytest.raises(srt.SrtError) as gone:
                action()
            seen.append(_text(gone.value))
    finally:
        rt.close()
        scram.start()
    assert [PASSWORD in s for s in seen] == [False] * len(seen)
    assert PASSWORD not in debug_logs.text and KEY not in debug_logs.text


# -- the local provider's child process -----------------------------------------------------


def test_the_local_servers_command_line_log_and_states_hold_no_secret_and_stay_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, debug_logs: pytest.LogCaptureFixture
) -> None:
    """Under umask 000, with provider keys in the environment and a server killed and
    started again before the next turn (the restart of 2bc1f82): nothing on the child's
    command line but the interpreter and child.py, no key in its log, srt's logs or
    ``repr``, and the log, the state folders and every saved state private."""
    from srt.providers.local import LocalProvider
    from support import local_model

    model = local_model()
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AZURE_OPENAI_API_KEY"):
        monkeypatch.setenv(name, KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEY)
    monkeypatch.setenv("PGPASSWORD", KEY)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u:{KEY}@db/x")
    monkeypatch.setenv("LLAMA_API_KEY", KEY)  # (under a kept prefix: would lock srt out)
    log = tmp_path / "logs" / "llama.log"
    log.parent.mkdir(mode=0o700)
    states = tmp_path / "cache" / "states"
    old = os.umask(0o000)
    try:
        p = LocalProvider(
            model, ctx_size=512, slots=1, threads=1, state_dir=states, log_path=log
        ).start()
        try:
            with srt.Runtime(tmp_path / "l.db") as rt:
                s, t = rt.session("one"), rt.session("two")
                commands, pids, environs = [], [], []
                for turn in range(2):
                    for sess in (s, t):  # (two sessions, one slot: the first is saved)
                        sess.append({"role": "user", "content": f"say ok {turn}"})
                        sess.send(p, model=p.model_name, max_tokens=4, **p.params_for(sess))
                    assert p.pid is not None
                    pids.append(p.pid)
                    with open(f"/proc/{p.pid}/cmdline", "rb") as f:
                        commands.append(f.read().split(b"\0")[:-1])
                    with open(f"/proc/{p.pid}/environ", "rb") as f:
                        environs.append(f.read())
                    if turn == 0:
                        pid = p.pid
                        os.kill(pid, signal.SIGKILL)  # the next turn starts it again
                        _wait_gone(pid)
                seen = [repr(p), str(p), repr(rt), repr(p.stats())]
        finally:
            p.close()
    finally:
        os.umask(old)
    child = os.path.abspath(local_child.__file__).encode()
    assert commands == [[sys.executable.encode(), child]] * 2 and pids[0] != pids[1]
    assert [KEY in s for s in seen] == [False] * len(seen)
    # The child's environment (readable by the user's other processes) holds no key, and
    # still what it runs by.
    assert [KEY.encode() in e for e in environs] == [False, False]
    assert [b"PATH=" + os.environ["PATH"].encode() in e for e in environs] == [True, True]
    assert KEY not in debug_logs.text
    assert log.read_bytes() and KEY.encode() not in log.read_bytes()
    modes = {
        str(e.relative_to(tmp_path)): stat.filemode(e.lstat().st_mode) for e in tmp_path.rglob("*")
    }
    assert [name for name in modes if name.endswith(".bin")], "no state was saved"
    assert {name: m for name, m in modes.items() if m not in ("drwx------", "-rw-------")} == {}


def _wait_gone(pid: int) -> None:
    for _ in range(400):  # (a wait for an event, not a timed assertion)
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
                    return
        except FileNotFoundError:
            return
        time.sleep(0.025)


def test_the_child_environment_keeps_what_llama_cpp_runs_by_and_no_secret() -> None:
    from srt.local.server import child_env

    kept = {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "LC_ALL": "C.UTF-8",
        "CUDA_VISIBLE_DEVICES": "0",
        "GGML_VK_VISIBLE_DEVICES": "1",
        "OMP_NUM_THREADS": "2",
        "PYTHONPATH": "/src",
    }
    secret_names = (
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SESSION_TOKEN",
        "PGPASSWORD",
        "DATABASE_URL",
        "SRT_TEST_PG_URL",
        "LLAMA_API_KEY",  # (under a kept prefix)
        "CUDA_AUTH_TOKEN",
        "GITHUB_TOKEN",
    )
    assert child_env({**kept, **dict.fromkeys(secret_names, KEY)}) == kept
