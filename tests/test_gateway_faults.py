"""A gateway worker killed mid-stream (a real process, SIGKILL).

The client gets a clean error, the response is stored as ``incomplete`` with the text
that had arrived (checkpointed while streaming), and another conversation is untouched.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

import srt
import srt.gateway
from gateway_support import UPSTREAM_KEY, config, free_port, serving
from srt.testing import ProviderServer


def _config(tmp_path: Path, srv: ProviderServer, port: int, server: str) -> Path:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        f"[server]\nport = {port}\n{server}\n\n"
        f'[upstreams.up]\nkind = "openai"\napi_key_env = "SRT_GW_UP_KEY"\n'
        f'base_url = "{srv.url}/v1"\n\n[[routes]]\nmodel = "*"\nupstream = "up"\n'
    )
    return cfg


def _start(cfg: Path, db: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SRT_GW_UP_KEY": UPSTREAM_KEY}
    proc = subprocess.Popen(
        [sys.executable, "-m", "srt", "--db", db, "serve", "--config", str(cfg)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
        assert proc.poll() is None, "the gateway exited"
    raise AssertionError("the gateway did not start")


def test_kill_a_worker_mid_stream(tmp_path: Path) -> None:
    port = free_port()
    db = str(tmp_path / "gw.db")
    with ProviderServer(api_key=UPSTREAM_KEY) as srv:
        cfg = _config(tmp_path, srv, port, "open = true")
        proc = _start(cfg, db, port)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
        try:
            other = client.conversations.create()
            client.responses.create(model="m", input="untouched", conversation=other.id)
            before = [i.id for i in client.conversations.items.list(other.id).data]
            srv.fault("*", "slow", interval=0.01)  # one byte every 10 ms: a long stream
            stream = client.responses.create(model="m", input="tell me a story", stream=True)
            seen, rid = [], None
            with pytest.raises((openai.APIConnectionError, httpx.TransportError)):
                t0 = time.monotonic()
                for event in stream:
                    if event.type == "response.created":
                        rid = event.response.id
                    if event.type == "response.output_text.delta":
                        seen.append(event.delta)
                    if len(seen) >= 3 and time.monotonic() - t0 > 1.5:
                        os.kill(proc.pid, signal.SIGKILL)
                        proc.wait(10)
            assert rid is not None and proc.returncode == -signal.SIGKILL
        finally:
            client.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        srv.clear()
        proc = _start(cfg, db, port)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
        try:
            stored = client.responses.retrieve(rid)
            assert stored.status == "incomplete"
            partial = stored.output_text
            assert partial and "".join(seen).startswith(partial[: len("".join(seen)) // 2])
            assert [i.id for i in client.conversations.items.list(other.id).data] == before
            again = client.responses.create(model="m", input="still fine", conversation=other.id)
            assert again.status == "completed"
            assert len(client.conversations.items.list(other.id).data) == 4
        finally:
            client.close()
            proc.terminate()
            proc.wait(10)


def test_two_workers_share_one_database(tmp_path: Path) -> None:
    """``srt serve --workers 2``: turns of one conversation land on either worker."""
    port = free_port()
    db = str(tmp_path / "gw.db")
    with ProviderServer(api_key=UPSTREAM_KEY) as srv:
        cfg = _config(tmp_path, srv, port, "workers = 2")
        env = {**os.environ, "SRT_GW_UP_KEY": UPSTREAM_KEY}
        key = subprocess.run(
            [
                sys.executable,
                "-m",
                "srt",
                "--db",
                db,
                "serve",
                "--config",
                str(cfg),
                "--new-key",
                "acme",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        proc = _start(cfg, db, port)
        pids = set()
        try:
            with openai.OpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0
            ) as client:
                conv = client.conversations.create()
                for i in range(8):
                    # a new connection each time, so the kernel spreads them over the workers
                    with httpx.Client() as h:
                        r = h.post(
                            f"http://127.0.0.1:{port}/v1/responses",
                            json={"model": "m", "input": f"turn {i}", "conversation": conv.id},
                            headers={"authorization": f"Bearer {key}"},
                        )
                        assert r.status_code == 200, r.text
                items = client.conversations.items.list(conv.id, order="asc", limit=100).data
                assert [i.role for i in items] == ["user", "assistant"] * 8
                assert [i.content[0].text for i in items[::2]] == [f"turn {i}" for i in range(8)]
            children = subprocess.run(
                ["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True
            ).stdout.split()
            pids = {int(p) for p in children}
            assert len(pids) >= 2
        finally:
            proc.terminate()
            proc.wait(30)


def test_a_mounted_gateway_beats_without_a_lifespan(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starlette runs no lifespan of a mounted app: its first request starts the worker's
    heartbeat, which tells other workers an in-progress response of this one is alive."""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    monkeypatch.setenv("SRT_GW_UP_KEY", UPSTREAM_KEY)
    with ProviderServer(api_key=UPSTREAM_KEY) as srv, srt.Runtime(db_path) as rt:
        inner = srt.gateway.app(config(srv, open=True), rt)
        outer = Starlette(routes=[Mount("/gw", app=inner)])
        with serving(outer) as url:
            assert rt.store.list_objects("gw.worker", socket.gethostname()) == []
            base = url.removesuffix("/v1") + "/gw/v1"
            with openai.OpenAI(base_url=base, api_key="k") as c:
                r = c.responses.create(model="gpt-4o-mini", input="hi")
            assert r.status == "completed"
            assert len(rt.store.list_objects("gw.worker", socket.gethostname())) == 1


def test_an_app_closes_the_runtime_it_opened(db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``srt.gateway.app(config)`` without a runtime opens its own (each worker of ``srt
    serve --workers N``) and closes it when its lifespan ends: the store then cuts the
    heap's preallocated last row to the pages its bytes use."""
    import dataclasses

    monkeypatch.setenv("SRT_GW_UP_KEY", UPSTREAM_KEY)
    with ProviderServer(api_key=UPSTREAM_KEY) as srv:
        app = srt.gateway.app(dataclasses.replace(config(srv, open=True), db=db_path))
        with serving(app) as url, openai.OpenAI(base_url=url, api_key="k") as c:
            prev = None
            for i in range(6):
                prev = c.responses.create(
                    model="gpt-4o-mini",
                    input=f"turn {i} " + "words " * 500,
                    previous_response_id=prev,
                ).id
    _assert_heap_tail_cut(db_path)


_MOUNTED = """
import dataclasses, sys, types
sys.path.insert(0, {tests!r})
import openai, srt, srt.gateway
from starlette.applications import Starlette
from starlette.routing import Mount
from gateway_support import config, serving

cfg = dataclasses.replace(config(types.SimpleNamespace(url={base!r}), open=True), db={db!r})
outer = Starlette(routes=[Mount("/gw", app=srt.gateway.app(cfg))])  # its lifespan only
with serving(outer) as url, openai.OpenAI(
    base_url=url.removesuffix("/v1") + "/gw/v1", api_key="k"
) as c:
    prev = None
    for i in range(6):
        prev = c.responses.create(
            model="gpt-4o-mini", input=f"turn {{i}} " + "words " * 500, previous_response_id=prev
        ).id
print("served")
"""


def test_a_mounted_app_closes_the_runtime_it_opened_at_exit(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mounted, an app that opened its own runtime gets no lifespan end (Starlette passes
    none to mounted apps), so it closes the runtime when the interpreter exits: the
    store cuts the heap's preallocated last row, as a lifespan's end would."""

    tests = str(Path(__file__).parent)
    with ProviderServer(api_key=UPSTREAM_KEY) as srv:
        script = _MOUNTED.format(tests=tests, base=srv.url, db=db_path)
        env = {**os.environ, "SRT_GW_UP_KEY": UPSTREAM_KEY}
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "served" and "Traceback" not in done.stderr
    _assert_heap_tail_cut(db_path)


def _assert_heap_tail_cut(db_path: str) -> None:
    """The store was closed after appending: the heap's last row holds only the pages its
    bytes use (the preallocated tail was cut)."""
    import apsw

    conn = apsw.Connection(db_path)
    try:
        page = conn.execute("PRAGMA page_size").get
        size, used = conn.execute(
            "SELECT length(data), instr(data, zeroblob(1)) - 1 FROM heap ORDER BY id DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    assert used > 0 and size - used < page  # only the last page's end is left unused
