"""The gateway on a loopback port (uvicorn in a thread), for tests driven by real clients."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import uvicorn

import srt
import srt.gateway
from srt.gateway.config import Config, Route, Upstream
from srt.gateway.texts import GRACE_S, TEXT
from srt.testing import ProviderServer
from support import cli_env, connect

__all__ = [
    "UPSTREAM_KEY",
    "Harness",
    "age_texts",
    "config",
    "count",
    "dump",
    "harness",
    "last_sent",
    "refused_400",
    "serving",
]

UPSTREAM_KEY = "sk-upstream-0123456789abcdef0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 until the block ends; yields the base URL (``.../v1``)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the gateway did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(10)


def config(srv: ProviderServer, window: int | None = None, **server: Any) -> Config:
    """Every provider of the test server as an upstream; model names pick one
    (``window``: the context window of the catch-all route, for truncation "auto")."""
    base = srv.url
    ups = {
        "chat": Upstream("chat", "openai", api_key_env="SRT_GW_UP_KEY", base_url=base + "/v1"),
        "resp": Upstream("resp", "responses", api_key_env="SRT_GW_UP_KEY", base_url=base + "/v1"),
        "compat": Upstream(
            "compat", "compatible", api_key_env="SRT_GW_UP_KEY", base_url=base + "/v1"
        ),
        "azure": Upstream("azure", "azure", api_key_env="SRT_GW_UP_KEY", base_url=base),
        "claude": Upstream("claude", "anthropic", api_key_env="SRT_GW_UP_KEY", base_url=base),
        "bedrock": Upstream(
            "bedrock", "bedrock", api_key_env="SRT_GW_UP_KEY", base_url=base, region="us-east-1"
        ),
    }
    routes = (
        Route("claude-*", "claude"),
        Route("bedrock/*", "bedrock"),
        Route("responses/*", "resp", context_window=server.pop("context_window", None)),
        Route("azure/*", "azure"),
        Route("compat/*", "compat"),
        # srt counts with the model's tokenizer, the test server with 4 bytes a token
        Route("*", "chat", context_window=window // 2 if window else None),
    )
    return Config(upstreams=ups, routes=routes, **server)


class Harness:
    """A test server upstream, a runtime, and the gateway serving them."""

    def __init__(self, srv: ProviderServer, rt: srt.Runtime, url: str, app: Any) -> None:
        self.srv, self.rt, self.url, self.app = srv, rt, url, app
        self.clients: list[Any] = []

    def client(self, key: str = "sk-any", **kw: Any) -> openai.OpenAI:
        c = openai.OpenAI(base_url=self.url, api_key=key, max_retries=0, **kw)
        self.clients.append(c)
        return c

    def close(self) -> None:
        for c in self.clients:
            c.close()

    @property
    def gateway(self) -> Any:
        return self.app.state.srt.gw


@contextlib.contextmanager
def harness(
    db_path: str, monkeypatch: Any, window: int | None = None, **server: Any
) -> Iterator[Harness]:
    """``window``: the upstream's context window (the server refuses longer prompts)."""
    monkeypatch.setenv("SRT_GW_UP_KEY", UPSTREAM_KEY)
    server.setdefault("open", True)
    srv = ProviderServer(api_key=UPSTREAM_KEY, context_window=window)
    with srv, srt.Runtime(db_path) as rt:
        app = srt.gateway.app(config(srv, window, **server), rt)
        with serving(app) as url:
            h = Harness(srv, rt, url, app)
            try:
                yield h
            finally:
                h.close()


def count(path: str, table: str) -> int:
    with connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").get)


def dump(path: str, table: str) -> str:
    """Every row of ``table`` as text (to look for strings that must not be there)."""
    with connect(path) as conn:
        try:
            rows = conn.execute(f"SELECT * FROM {table}").fetchall()
        except Exception:  # the objects table is made by the first object written
            return ""
    return repr(rows)


def age_texts(db: str, monkeypatch: Any, *values: str) -> None:
    """As if the gateway texts holding ``values`` (JSON) were last used two grace
    periods ago: each written again (the same bytes) with the clock moved back."""
    then = time.time() - 2 * GRACE_S
    with srt.Runtime(db) as rt:
        store = rt.store
        for row in list(store.scan_objects(kind=TEXT)):
            if bytes(row.value).decode("utf-8") in values:
                with monkeypatch.context() as m:
                    m.setattr(time, "time", lambda: then)
                    store.put_object(TEXT, row.scope, row.key, row.value)
                again = store.get_object(TEXT, row.scope, row.key)
                assert again is not None and again.updated == then


def srt_cli(db: str, home: str | os.PathLike[str], *args: str) -> str:
    """``srt --db DB ARGS`` in a child process (its default database under ``home``):
    its stdout; it must succeed quietly."""
    proc = subprocess.run(
        [sys.executable, "-m", "srt", "--db", db, *args],
        capture_output=True,
        env=cli_env(Path(home) / "cli" / "srt.db"),
        timeout=120,
    )
    assert (proc.returncode, proc.stderr) == (0, b""), proc
    return proc.stdout.decode("utf-8")


def last_sent(h: Harness) -> dict[str, Any]:
    """The body of the last request the upstream received."""
    body: dict[str, Any] = h.srv.log[-1].body
    return body


def refused_400(h: Harness, param: str, code: str, **fields: Any) -> openai.BadRequestError:
    """``responses.create(**fields)`` (model gpt-4o-mini and input "hi" unless given) is
    a 400 naming ``param`` with ``code``, and nothing was sent upstream or stored."""
    before = h.srv.requests.total()
    fields.setdefault("model", "gpt-4o-mini")
    fields.setdefault("input", "hi")
    with pytest.raises(openai.BadRequestError) as caught:
        h.client().responses.create(**fields)
    err = caught.value
    assert (err.status_code, err.param, err.code) == (400, param, code), err.body
    assert isinstance(err.body, dict) and err.body["type"] == "invalid_request_error"
    assert h.srv.requests.total() == before
    assert count(h.rt.path, "messages") == 0
    return err


def canary_tool(canary: str) -> list[dict[str, Any]]:
    """A Responses function tool whose description holds ``canary`` (a tool's text must
    go with what deletes it)."""
    return [
        {
            "type": "function",
            "name": "lookup",
            "description": f"looks up {canary}",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        }
    ]
