"""A canary key through every provider and every error path: it must show nowhere.

``test_rel_secrets`` runs the OpenAI, Anthropic and Bedrock (API key) providers through
sent and streamed calls, 401/429/500 replies echoing the key, a cut stream, an idle
timeout and a refused connection, and a mid-stream error event in every wire format.
Here the table is completed: every provider that takes a key (OpenAI Chat and Responses,
Azure, an OpenAI-compatible server, Anthropic, Bedrock with an API key and Bedrock with
AWS credentials: access key, secret key and session token), each through every error
path that can be provoked over loopback, sync and async:

* refused by the server for its key (``srt.testing`` knows another one): a real 401;
* 401 and 403 replies quoting the key, 429 and 500 until the retries are exhausted;
* a redirect (307, whose ``Location`` quotes the key: srt follows none);
* the connection reset before the headers, a connection refused;
* no headers within the total timeout, a stream idle past the idle timeout, a stream cut;
* a base URL and a proxy URL that hold the key as their password (refused, or failing).

After each, the key (and every 8-character piece of it) must be in neither ``str``,
``repr`` nor the formatted traceback of the error and its ``__cause__``/``__context__``
chain (nor anything reachable from them), ``repr`` of the provider, its transports, the
credentials, the runtime and the session, any log record (every logger at DEBUG) or
warning, the ledger rows, the database file, its ``-wal`` and ``-shm`` (while open and
after close), nor ``srt prompt``'s stdout and stderr; through the gateway, neither its
answers, its log (access log included) nor its files. (The local provider takes no key.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import PIPE
from typing import Any

import httpx
import openai
import pytest

import gateway_support
import srt
import srt.gateway
from srt.cli import main as cli
from srt.gateway.records import Records
from srt.providers import Bedrock, Provider
from srt.providers.policy import RetryPolicy, Timeouts
from srt.providers.sigv4 import AwsCredentials
from srt.testing import ProviderServer
from support import cli_env, provider_on
from test_rel_secrets import db_files, log_texts, pieces, texts_of, traces

KEY = "sk-CANARY-sweep-" + secrets.token_hex(16)
AWS_ID = "AKIA" + secrets.token_hex(8).upper()
AWS_SECRET = "CANARY/secret+" + secrets.token_hex(14)
AWS_TOKEN = "CANARY/token+" + secrets.token_hex(24)
#: What must show nowhere (not the access key id: ``AwsCredentials``' repr shows it).
SECRETS = (KEY, AWS_SECRET, AWS_TOKEN)


def echo(kind: str) -> str:
    """An error message quoting the provider's secrets (as a key-checking proxy's may)."""
    if kind == "bedrock-aws":
        return f"The security token {AWS_TOKEN} is invalid; secret {AWS_SECRET} ({AWS_ID})."
    return f"Incorrect API key provided: {KEY}. Check it."


KINDS = ("openai", "responses", "azure", "compatible", "anthropic", "bedrock", "bedrock-aws")
MODELS = {"anthropic": "claude-sonnet-4-6", "bedrock": "anthropic.claude-x"}
TIMEOUTS = Timeouts(connect=2.0, idle=0.5, total=1.0)
RETRY = RetryPolicy(max_retries=1, initial_delay=0.01, max_delay=0.01, jitter=0)


#: Reprs made while building providers (searched with the rest).
SHOWN: list[str] = []


def model_of(kind: str) -> str:
    return MODELS.get(kind.removesuffix("-aws"), "gpt-4o")


def provider(kind: str, url: str, **kw: Any) -> Provider:
    kw = {"timeouts": TIMEOUTS, "retry": RETRY, "trust_env": False, **kw}
    if kind == "bedrock-aws":
        creds = AwsCredentials(AWS_ID, AWS_SECRET, AWS_TOKEN)
        SHOWN.append(repr(creds))
        return Bedrock(region="us-east-1", credentials=creds, endpoint_url=url, **kw)
    return provider_on(kind, url, KEY, **kw)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: (name, how the server misbehaves, whether the call streams). The server is the one
#: that knows the canary key unless the name says otherwise.
FAULTS: list[tuple[str, dict[str, Any], bool]] = [
    ("401 echoing the key", {"kind": "status", "code": 401, "message": "<echo>"}, False),
    ("403 echoing the key", {"kind": "status", "code": 403, "message": "<echo>"}, True),
    ("429 retries exhausted", {"kind": "status", "code": 429, "message": "<echo>"}, False),
    ("500 retries exhausted", {"kind": "status", "code": 500, "message": "<echo>"}, True),
    (
        "307 redirect",
        {
            "kind": "status",
            "code": 307,
            "headers": {"Location": "/x?key=" + KEY},
            "message": "<echo>",
        },
        False,
    ),
    ("reset before headers", {"kind": "reset_before_headers"}, False),
    ("no headers in time", {"kind": "delay", "seconds": 1.5}, False),
    ("idle stream", {"kind": "slow", "interval": 1.5}, True),
    ("cut stream", {"kind": "reset_after_events", "n": 2}, True),
]


def where(secret: str, text: str) -> str:
    """The first place ``text`` holds ``secret`` or an 8-character piece of it, with
    what surrounds it ("" if nowhere)."""
    at = min((i for p in pieces(secret) if (i := text.find(p)) >= 0), default=-1)
    return "" if at < 0 else f"{secret[:12]}: ...{text[max(0, at - 150) : at + 40]!r}"


def reachable(root: object, depth: int = 6) -> list[str]:
    """The text of every string, bytes and object reachable from ``root`` through
    attributes (``__dict__``, ``__slots__``), mappings (an httpx ``Headers`` too),
    sequences and an exception's cause and context: what code holding an srt error can
    print (``exc.__context__.request.headers``, say), not only what srt shows."""
    out: list[str] = []
    seen: set[int] = set()
    stack: list[tuple[object, int]] = [(root, 0)]
    while stack:
        obj, d = stack.pop()
        if id(obj) in seen or d > depth or obj is None or isinstance(obj, (int, float, bool)):
            continue
        seen.add(id(obj))
        if isinstance(obj, (str, bytes, bytearray)):
            out.append(obj if isinstance(obj, str) else bytes(obj).decode("latin-1"))
            continue
        if isinstance(obj, type) or (callable(obj) and not isinstance(obj, BaseException)):
            continue
        out.append(repr(obj))
        kids: list[object] = []
        if hasattr(obj, "items") and callable(obj.items):
            with contextlib.suppress(Exception):
                kids += [x for kv in obj.items() for x in kv]
        elif isinstance(obj, (list, tuple, set, frozenset)):
            kids += list(obj)
        kids += list(getattr(obj, "__dict__", {}).values())
        for cls in type(obj).__mro__:
            for name in getattr(cls, "__slots__", ()):
                kids.append(getattr(obj, name, None))
        if isinstance(obj, BaseException):
            kids += [obj.__cause__, obj.__context__, *obj.args]
        stack += [(k, d + 1) for k in kids]
    return out


class Sweep:
    """What one run produced, to search: texts (errors, reprs, ledger rows) and files."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.rt = srt.Runtime(self.path)
        self.texts: list[str] = [repr(self.rt)]
        self.errors: list[str] = []

    def attempt(self, what: str, fn: Callable[[], Any]) -> None:
        try:
            with warnings.catch_warnings(record=True) as warned:
                warnings.simplefilter("always")
                try:
                    got = fn()
                finally:
                    self.texts += [f"{w.category.__name__}: {w.message}" for w in warned]
        except srt.SrtError as exc:
            self.errors.append(f"{what}: {type(exc).__name__}")
            self.texts.extend(texts_of(exc) + reachable(exc))
        else:
            self.errors.append(f"{what}: no error")
            self.texts.append(repr(got))

    def call(self, what: str, p: Provider, kind: str, stream: bool, aio: bool = False) -> None:
        s = self.rt.session(f"{kind}-{len(self.errors)}")
        s.append({"role": "user", "content": f"question for {what}"})
        m = model_of(kind)
        if aio:

            async def go() -> Any:
                if stream:
                    return await s.astream(p, model=m).text()
                return await s.asend(p, model=m)

            self.attempt(f"{kind} {what} async", lambda: asyncio.run(go()))
        elif stream:
            self.attempt(f"{kind} {what}", lambda: s.stream(p, model=m).text())
        else:
            self.attempt(f"{kind} {what}", lambda: s.send(p, model=m))
        self.texts += [repr(s), repr(p), repr(p.transport), repr(p.async_transport)]
        self.texts += [repr(c) for c in s.calls()]

    def search(self, caplog: pytest.LogCaptureFixture) -> list[str]:
        open_files = db_files(self.path)
        self.rt.close()
        closed = {f"{n} after close": b for n, b in db_files(self.path).items()}
        texts = self.texts + log_texts(caplog) + SHOWN
        assert caplog.records, "no log record to search"  # (httpcore's, at DEBUG, at least)
        assert open_files.get(Path(self.path).name + "-wal"), "no WAL to search"
        found = [f"{s[:12]}: {t}" for s in SECRETS for t in traces(s, [], open_files | closed)]
        return found + [where(s, t) for s in SECRETS for t in texts if where(s, t)]


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server


@pytest.fixture
def other() -> Iterator[ProviderServer]:
    """A server that knows another key: it refuses the canary with its own 401."""
    with ProviderServer(api_key="sk-someone-else-0000000000000000") as server:
        yield server


@pytest.mark.parametrize("kind", KINDS)
def test_no_error_path_shows_the_key(
    kind: str,
    srv: ProviderServer,
    other: ProviderServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="srt")
    sweep = Sweep(tmp_path / "sweep.db")
    p = provider(kind, srv.url)
    sweep.call("sent", p, kind, stream=False)  # it works: the key is the right one
    sweep.call("streamed", p, kind, stream=True)
    assert sweep.errors == [f"{kind} sent: no error", f"{kind} streamed: no error"]
    for what, fault, stream in FAULTS:
        f = {k: echo(kind) if v == "<echo>" else v for k, v in fault.items()}
        srv.fault("*", f.pop("kind"), count=None, **f)
        sweep.call(what, p, kind, stream)
        sweep.call(what, p, kind, stream, aio=True)
        srv.clear()
    p.close()
    if kind != "bedrock-aws":  # (srt.testing checks a SigV4 header's form, not its signature)
        wrong = provider(kind, other.url)
        sweep.call("refused key", wrong, kind, stream=False)
        sweep.call("refused key", wrong, kind, stream=True, aio=True)
        wrong.close()
    port = closed_port()
    for what, url, kw in (
        ("connection refused", f"http://127.0.0.1:{port}", {}),
        ("key in the URL", f"http://user:{KEY}@127.0.0.1:{port}", {}),
        ("key in the proxy URL", srv.url, {"proxy": f"http://user:{KEY}@127.0.0.1:{port}"}),
    ):
        try:
            bad = provider(kind, url, **kw)
        except srt.SrtError as exc:  # refused as it is made
            sweep.errors.append(f"{kind} {what}: {type(exc).__name__} (made)")
            sweep.texts.extend(texts_of(exc) + reachable(exc))
            continue
        sweep.call(what, bad, kind, stream=False)
        sweep.call(what, bad, kind, stream=True, aio=True)
        bad.close()
    found = sweep.search(caplog)
    assert [e for e in sweep.errors[2:] if e.endswith("no error")] == []  # each one failed
    assert len(sweep.errors) >= 2 + 2 * len(FAULTS) + 2 * 2
    assert found == [], found


def test_srt_prompt_shows_no_key(
    srv: ProviderServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``srt prompt`` with the key in ``--key-env``'s variable: a reply, then a 401 and a
    500 quoting the key, then a refused connection; stdout, stderr and the file."""
    monkeypatch.setenv("SWEEP_KEY", KEY)
    db = tmp_path / "cli.db"
    base = ["--db", str(db), "prompt", "--provider", "openai", "--key-env", "SWEEP_KEY"]
    url = ["--base-url", srv.url + "/v1"]
    outs: list[str] = []
    codes = [cli([*base, *url, "--session", "s", "hello"])]
    for code in (401, 500):
        srv.fault("*", "status", count=None, code=code, message=echo("openai"))
        codes.append(cli([*base, *url, "--session", "s", "again"]))
        srv.clear()
    refused = ["--base-url", f"http://127.0.0.1:{closed_port()}/v1"]
    codes.append(cli([*base, *refused, "--session", "s", "once more"]))
    out = capsys.readouterr()
    outs += [out.out, out.err]
    assert codes[0] == 0 and all(c != 0 for c in codes[1:]), (codes, outs)
    assert "srt: error" in out.err
    assert traces(KEY, outs, db_files(str(db))) == []


# -- the gateway: its upstreams' key and its tenants' keys -----------------------------------

GW_MODELS = ("gpt-4o-mini", "responses/gpt-4o", "compat/m", "azure/gpt-4o", "claude-x", "bedrock/x")


def answered(exc: openai.APIError) -> list[str]:
    """What the gateway answered, as the ``openai`` SDK's error shows it: its text, its
    ``repr``, the status and the body (not the SDK's own request, holding the client's
    key in its headers)."""
    response = getattr(exc, "response", None)
    got = [str(exc), repr(exc), repr(exc.body)]
    if response is not None:
        got += [str(response.status_code), response.text, repr(dict(response.headers))]
    return got


def test_no_gateway_error_path_shows_a_key(
    db_path: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Through ``srt serve``'s app, on every kind of upstream: the upstream's key echoed
    in a 401, in a 429 and a 500 once retries are exhausted and in a redirect, the
    upstream's connection reset, and an upstream nothing listens on; the tenant's key and
    the upstream's must reach neither the responses (status, body, the ``openai`` SDK's
    error), the log records (the access log included, every logger at DEBUG) nor the
    database's files."""
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    with gateway_support.harness(db_path, monkeypatch, open=False) as gw:
        tenant = Records(gw.rt.store).create_key("acme")
        c = gw.client(tenant)
        up = gateway_support.UPSTREAM_KEY
        # (fault, models, streamed too): what the gateway retries, on two kinds of upstream
        every, two = GW_MODELS, ("gpt-4o-mini", "claude-x")
        faults: list[tuple[dict[str, Any], tuple[str, ...], bool]] = [
            ({"kind": "status", "code": 401, "message": f"Incorrect API key: {up}"}, every, True),
            ({"kind": "status", "code": 307, "headers": {"Location": "/x?k=" + up}}, every, True),
            ({"kind": "status", "code": 429, "message": f"slow down, {up}"}, two, False),
            ({"kind": "status", "code": 500, "message": f"oops {up}"}, two, False),
            ({"kind": "reset_before_headers"}, two, False),
        ]
        for fault, models, streamed in faults:
            for model in models:
                f = dict(fault)
                gw.srv.fault("*", f.pop("kind"), count=None, **f)
                for stream in (False, True) if streamed else (False,):
                    with pytest.raises(openai.APIError) as info:
                        r = c.responses.create(model=model, input="hello", stream=stream)
                        texts += [repr(e) for e in r] if stream else [repr(r)]  # type: ignore[union-attr]
                    texts += answered(info.value)
                gw.srv.clear()
        texts += [repr(gw.rt), repr(gw.app), repr(gw.rt.store)]
        while_open = db_files(gw.rt.path)
    dead = gateway_support.Config(
        upstreams={
            "dead": gateway_support.Upstream(
                "dead",
                "openai",
                api_key_env="SRT_GW_UP_KEY",
                base_url=f"http://127.0.0.1:{closed_port()}/v1",
            )
        },
        routes=(gateway_support.Route("*", "dead"),),
        open=True,
    )
    with srt.Runtime(db_path) as rt, gateway_support.serving(srt.gateway.app(dead, rt)) as url:
        c = openai.OpenAI(base_url=url, api_key=tenant, max_retries=0)
        with pytest.raises(openai.APIError) as info:
            c.responses.create(model="gpt-4o", input="hello")
        texts += answered(info.value)
        c.close()
    after = db_files(db_path)
    texts += log_texts(caplog)
    assert any("uvicorn" in r.name or "srt" in r.name for r in caplog.records)
    files = while_open | {f"{n} after close": b for n, b in after.items()}
    # A tenant key's first 11 characters (``sk-srt-`` and 4 of its 43 random ones) are
    # stored to name it in listings (``Records.create_key``); the rest never is. The
    # upstream key's pieces are searched in its digits (its "upstream" is everywhere).
    hidden = (tenant[11:], up.removeprefix("sk-upstream-"))
    found = [f"{s[:12]}: {t}" for s in hidden for t in traces(s, [], files)]
    found += [where(s, t) for s in hidden for t in texts if where(s, t)]
    assert found == []


def test_srt_serve_output_shows_no_key(srv: ProviderServer, tmp_path: Path) -> None:
    """``srt serve`` in a child process, its upstream's key in ``api_key_env``'s
    variable: the upstream refuses it with a 401 quoting it, and a client's key comes
    with the request. Neither is in the answer, the child's stdout and stderr (its
    traceback of the refusal, the access log) nor the database's files."""
    client_key = "sk-client-CANARY-" + secrets.token_hex(12)
    port = closed_port()
    cfg = tmp_path / "gw.toml"
    cfg.write_text(
        f"[server]\nport = {port}\nopen = true\n\n"
        f'[upstreams.chat]\nkind = "openai"\napi_key_env = "SWEEP_UP_KEY"\n'
        f'base_url = "{srv.url}/v1"\n\n[[routes]]\nmodel = "*"\nupstream = "chat"\n'
    )
    db = tmp_path / "gw.db"
    argv = [sys.executable, "-m", "srt", "--db", str(db), "serve", "--config", str(cfg)]
    env = cli_env(db, SWEEP_UP_KEY=KEY)
    url = f"http://127.0.0.1:{port}"
    srv.fault("*", "status", count=None, code=401, message=echo("openai"))
    with subprocess.Popen(argv, env=env, stdout=PIPE, stderr=PIPE, text=True) as child:
        try:
            for _ in range(600):  # (up to a minute to start)
                try:
                    if httpx.get(url + "/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            auth = {"Authorization": f"Bearer {client_key}"}
            r = httpx.post(url + "/v1/responses", json={"model": "m", "input": "hi"}, headers=auth)
        finally:
            child.terminate()
            out, err = child.communicate(timeout=30)
    assert r.status_code == 502 and "refused the gateway's credentials" in r.text, r.text
    assert "ProviderAuthError" in err  # the refusal was logged, with its traceback
    texts = [r.text, repr(dict(r.headers)), out, err]
    assert traces(KEY, texts, db_files(str(db))) == []
    assert traces(client_key, texts, db_files(str(db))) == []
