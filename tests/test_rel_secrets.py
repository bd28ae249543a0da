"""Secrets and files: a canary API key and a pasted canary secret, and file modes.

The canary key ``sk-CANARY-...`` is every provider's API key (providers never store
keys) while each provider runs the paths ``test_providers`` does not: streams that
finish, are cut, time out; 429/500/401 replies echoing the key; a refused
connection; and (a test of its own) an ``event: error`` mid-stream echoing it.
Afterwards the key must appear nowhere: not in the database, its ``-wal`` or
``-shm`` (read while the runtime is still open, and again after close), the log
records, the text, ``repr()`` or traceback of any exception (with every
``__cause__`` and ``__context__``), or the ``repr()`` of any srt object.

The mid-stream error event is tried in every wire format (OpenAI Chat and Responses,
Anthropic, Bedrock), also with the key where the ledger cuts its error text; no
8-character piece of the key may remain either.

A pasted canary secret is message text that the runtime's redaction hook
(``Runtime(redact=...)``, a user-supplied callable) scrubs before storage; with the
hook in place it must appear nowhere either: not in what is stored, not in what
is sent (the fake provider's default reply quotes the user's text back). The hook
also covers what comes back: a reply whose text and tool-call arguments hold the
secret, sent and streamed, is stored without it. Without a hook, prompts are stored
as given but never logged: with every logger at DEBUG, no record holds one.

File modes: under umask 022 (and 000), a database srt creates is 0600 with its
``-wal`` and ``-shm``, also when another process recreates them after a clean close
and after a SIGKILL; every directory srt creates is 0700.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import stat
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import srt
from rel_support.common import child_env, emit
from srt.providers import Anthropic, Bedrock, OpenAI, Provider
from srt.providers.transport import RetryPolicy, Timeouts, Transport
from srt.testing import ProviderServer

KEY = "sk-CANARY-" + secrets.token_hex(16)
PASTED = "CANARY-PASTED-" + secrets.token_hex(12)
MODELS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-6", "bedrock": "anthropic.claude-x"}
#: Every wire format: OpenAI Chat ("openai"), OpenAI Responses, Anthropic, Bedrock Converse.
ALL_MODELS = {"openai": "gpt-4o", "responses": "gpt-4o", **MODELS}


def make(kind: str, url: str, **kw: Any) -> Provider:
    timeouts = Timeouts(connect=2.0, idle=1.0, total=5.0)
    retry = RetryPolicy(max_retries=1)
    transport = Transport(timeouts=timeouts, retry=retry, sleep=lambda _s: None, rand=lambda: 0.5)
    kw = {"transport": transport, "timeouts": timeouts, "retry": retry, **kw}
    if kind in ("openai", "responses"):
        api = "chat" if kind == "openai" else "responses"
        return OpenAI(KEY, base_url=url + "/v1", api=api, **kw)
    if kind == "anthropic":
        return Anthropic(KEY, base_url=url, **kw)
    return Bedrock(region="us-east-1", api_key=KEY, endpoint_url=url, **kw)


def texts_of(exc: BaseException) -> list[str]:
    """str, repr and the formatted traceback of ``exc`` and of every chained exception."""
    out: list[str] = []
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        out += [str(e), repr(e), "".join(traceback.format_exception(e))]
        out += [repr(v) for v in vars(e).values()] if hasattr(e, "__dict__") else []
        stack += [e.__cause__, e.__context__]
    return out


def occurrences(needle: str, blobs: dict[str, bytes]) -> dict[str, int]:
    raw = needle.encode()
    return {name: b.count(raw) for name, b in blobs.items() if b.count(raw)}


def db_files(path: str) -> dict[str, bytes]:
    return {
        os.path.basename(path + s): Path(path + s).read_bytes()
        for s in ("", "-wal", "-shm")
        if os.path.exists(path + s)
    }


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server


def test_canary_key_and_pasted_secret(
    srv: ProviderServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: Any,
    tmp_path_factory: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    path = str(tmp_path / "canary" / "srt.db")
    scrubbed: list[int] = [0]

    def scrub(text: str) -> str:  # the user's redaction callable
        if PASTED in text:
            scrubbed[0] += 1
        return text.replace(PASTED, "[secret removed]")

    rt = srt.Runtime(path, redact=scrub)
    texts: list[str] = [repr(rt)]
    errors: list[str] = []
    paths: list[str] = []

    def attempt(what: str, fn: Any) -> None:
        paths.append(what)
        try:
            fn()
        except srt.SrtError as exc:
            errors.append(f"{what}: {type(exc).__name__}")
            texts.extend(texts_of(exc))

    for kind, model in MODELS.items():
        p = make(kind, srv.url)
        texts += [repr(p), repr(p.transport)]
        s = rt.session(f"canary-{kind}")
        texts.append(repr(s))
        s.append({"role": "user", "content": f"my password is {PASTED}, keep it safe"})
        attempt(
            f"{kind} send",
            lambda s=s, p=p, m=model, out=texts: out.append(repr(s.send(p, model=m))),
        )
        attempt(f"{kind} stream", lambda s=s, p=p, m=model: s.stream(p, model=m).text())
        echo = f"bad key {KEY}"
        for code in (401, 429, 500):
            srv.fault("*", "status", count=None, code=code, message=echo)
            attempt(f"{kind} {code}", lambda s=s, p=p, m=model: s.send(p, model=m))
            srv.clear()
        srv.fault("*", "reset_after_events", count=1, n=2)
        attempt(f"{kind} cut stream", lambda s=s, p=p, m=model: s.stream(p, model=m).text())
        srv.fault("*", "slow", count=1, interval=5)
        attempt(f"{kind} idle timeout", lambda s=s, p=p, m=model: s.stream(p, model=m).text())
        srv.clear()
        texts += [repr(c) for c in s.calls()]
        p.close()
    # A refused connection: nothing listens on the port any more.
    closed = make("openai", "http://127.0.0.1:9")
    s = rt.session("canary-refused")
    attempt("refused connection", lambda: s.send(closed, model="gpt-4o"))
    closed.close()

    open_files = db_files(path)  # while the runtime (and its WAL) is open
    rt.close()
    closed_files = db_files(path)
    texts.append(caplog.text)
    texts += [r.getMessage() + repr(r.args) for r in caplog.records]

    key_in_texts = sum(t.count(KEY) for t in texts)
    key_in_files = {**occurrences(KEY, open_files), **occurrences(KEY, closed_files)}
    pasted_in_texts = sum(t.count(PASTED) for t in texts)
    pasted_in_files_open = occurrences(PASTED, open_files)
    pasted_in_files_closed = occurrences(PASTED, closed_files)
    figures = {
        "paths_run": len(paths),
        "typed_errors": len(errors),
        "texts_checked": len(texts),
        "log_records": len(caplog.records),
        "canary_key_occurrences_in_text_logs_repr": key_in_texts,
        "canary_key_occurrences_in_db_wal_shm": key_in_files,
        "pasted_secret_occurrences_in_text_logs_repr": pasted_in_texts,
        "pasted_secret_occurrences_in_db_wal_shm_while_open": pasted_in_files_open,
        "pasted_secret_occurrences_in_db_after_close": pasted_in_files_closed,
        "strings_scrubbed_by_the_redaction_hook": scrubbed[0],
        "wal_bytes_checked_while_open": len(open_files.get("srt.db-wal", b"")),
        "errors": errors,
    }
    emit("secrets_canary", figures, capsys, tmp_path_factory.getbasetemp())
    assert len(errors) >= 5 * len(MODELS)
    assert open_files.get("srt.db-wal"), "the WAL was not there to check"
    assert scrubbed[0] >= len(MODELS)
    assert key_in_texts == 0
    assert key_in_files == {}
    assert pasted_in_texts == 0
    assert pasted_in_files_open == {}
    assert pasted_in_files_closed == {}


# -- file modes ------------------------------------------------------------------------------


def _mode(p: str | Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


_REOPEN = """
import os, sys, srt
os.umask(int(sys.argv[2], 8))
rt = srt.Runtime(sys.argv[1])
rt.session("s").append({"role": "user", "content": "from a child"})
print("ready", flush=True)
if sys.argv[3] == "hang":
    import time
    time.sleep(60)
sys.stdin.readline()  # the parent has read the modes; only then close (and remove -wal)
rt.close()
"""


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_file_modes(umask: int, tmp_path: Path, capsys: Any, tmp_path_factory: Any) -> None:
    old = os.umask(umask)
    try:
        path = tmp_path / "x" / "y" / "srt.db"
        modes: dict[str, str] = {}
        with srt.Runtime(str(path)) as rt:
            rt.session("s").append({"role": "user", "content": "hi"})
            for suffix in ("", "-wal", "-shm"):
                modes[f"open{suffix}"] = oct(_mode(f"{path}{suffix}"))
        modes["after close"] = oct(_mode(path))
        assert not os.path.exists(f"{path}-wal")  # the last close removed them
        # Another process (same umask) recreates -wal and -shm; then one is SIGKILLed.
        for how in ("close", "hang"):
            # stdin holds the "close" child open until its files' modes are read: it used to
            # close (and remove -wal) while the parent was still reading them.
            with subprocess.Popen(
                [sys.executable, "-c", _REOPEN, str(path), oct(umask), how],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=child_env(),
                text=True,
            ) as child:
                try:
                    assert child.stdin is not None and child.stdout is not None
                    assert child.stdout.readline().strip() == "ready"
                    for suffix in ("", "-wal", "-shm"):
                        modes[f"child {how}{suffix}"] = oct(_mode(f"{path}{suffix}"))
                    if how == "hang":
                        child.send_signal(signal.SIGKILL)
                    else:
                        child.stdin.write("\n")
                        child.stdin.flush()
                    assert child.wait(30) == (-signal.SIGKILL if how == "hang" else 0)
                finally:
                    if child.poll() is None:
                        child.kill()
        with srt.Runtime(str(path)) as rt:  # recovery after the kill
            assert len(rt.session("s").messages()) == 3
            for suffix in ("", "-wal", "-shm"):
                modes[f"after kill{suffix}"] = oct(_mode(f"{path}{suffix}"))
        for d in (tmp_path / "x", tmp_path / "x" / "y"):
            modes[f"dir {d.name}"] = oct(_mode(d))
    finally:
        os.umask(old)
    emit(f"file_modes_umask_{umask:03o}", modes, capsys, tmp_path_factory.getbasetemp())
    for name, mode in modes.items():
        assert mode == ("0o700" if name.startswith("dir") else "0o600"), (name, mode)


def test_the_redaction_hook_scrubs_a_pasted_secret_before_storage(
    srv: ProviderServer, tmp_path: Path
) -> None:
    path = str(tmp_path / "srt.db")

    def scrub(text: str) -> str:
        return text.replace(PASTED, "[secret removed]")

    with srt.Runtime(path, redact=scrub) as rt:
        p = make("openai", srv.url)
        s = rt.session("s")
        s.append({"role": "user", "content": [{"type": "text", "text": f"my key is {PASTED}"}]})
        s.send(p, model=MODELS["openai"])
        body = srv.log[-1].body
        p.close()
        files = db_files(path)
    assert PASTED not in json.dumps(body) and "[secret removed]" in json.dumps(body)
    assert occurrences(PASTED, files) == {}


# -- a mid-stream error event that echoes the key ------------------------------------------


def pieces(secret: str, n: int = 8) -> set[str]:
    """Every ``n``-character piece of ``secret`` (what a cut or a partial redaction leaves)."""
    return {secret[i : i + n] for i in range(len(secret) - n + 1)}


def traces(secret: str, texts: list[str], files: dict[str, bytes]) -> list[str]:
    """Where ``secret``, or any 8-character piece of it, appears in ``texts`` and ``files``."""
    found = [f"text {i}: {p!r}" for i, t in enumerate(texts) for p in pieces(secret) if p in t]
    found += [
        f"{name}: {p!r}" for name, b in files.items() for p in pieces(secret) if p.encode() in b
    ]
    return found


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every captured record's message, its unformatted ``msg`` and ``args``, and the
    formatted log (with any exception text a record carries)."""
    out = [caplog.text]
    for r in caplog.records:
        out += [r.getMessage(), str(r.msg), repr(r.args), str(r.exc_text or "")]
    return out


@pytest.mark.parametrize("kind", list(ALL_MODELS))
def test_a_mid_stream_error_event_echoing_the_key_leaves_no_trace(
    kind: str,
    srv: ProviderServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stream that has delivered text fails with the provider's error event, whose
    message quotes the API key (as a key-rejecting or logging proxy's may): the key, or
    any 8 characters of it, must reach neither the exception (``str``, ``repr``,
    traceback, causes), the ledger row, the file and its ``-wal``, nor the logs.

    Two messages each: a short one, and one placing the key across the 2,000-character
    cut of the ledger's error text (the row must hold ``[redacted]``, not a key's start).
    """
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="srt")
    path = str(tmp_path / "srt.db")
    rt = srt.Runtime(path)
    p = make(kind, srv.url)
    s = rt.session(f"mid-stream-{kind}")
    texts: list[str] = []

    def fail_mid_stream(message: str) -> dict[str, Any]:
        """Stream a reply that the error event quoting ``message`` cuts; its ledger row."""
        srv.fault("*", "malformed_sse", count=1, variant="error_event", after=5, message=message)
        s.append({"role": "user", "content": f"question {len(texts)}"})
        stream = s.stream(p, model=ALL_MODELS[kind])
        deltas: list[str] = []
        with pytest.raises(srt.ProviderError) as info:
            for delta in stream:
                deltas.append(delta)
        exc = info.value
        row = s.calls()[-1]
        assert srv.log[-1].fault == "malformed_sse:error_event"
        assert deltas, "the error came before any text: not mid-stream"
        # The event did quote the key, and srt replaced it (in the exception and the row).
        assert "[redacted]" in str(exc)
        assert row["status"] == "error" and "[redacted]" in row["error"]
        texts.extend([str(exc), repr(exc), *texts_of(exc), row["error"], repr(row), repr(stream)])
        return row

    row = fail_mid_stream(f"Incorrect API key provided: {KEY}. Check the key you sent.")
    # Again, with the key beginning 12 characters before the 2,000 the row's error keeps.
    before = row["error"][: row["error"].index("Incorrect API key provided")]
    row = fail_mid_stream("x" * (2000 - len(before) - 12) + KEY + " (the rest)")
    assert len(row["error"]) == 2000  # cut where the key was
    texts += [repr(c) for c in s.calls()] + [json.dumps(s.messages())]
    p.close()
    open_files = db_files(path)
    rt.close()
    closed_files = db_files(path)
    texts += log_texts(caplog)
    assert open_files.get("srt.db-wal"), "the WAL was not there to check"
    files = {**open_files, **{f"{name} after close": b for name, b in closed_files.items()}}
    assert traces(KEY, texts, files) == []


# -- prompts are not logged; the redaction hook covers replies and tool calls ---------------


def test_prompts_are_not_logged_by_default(
    srv: ProviderServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With every logger at DEBUG and no redaction hook, a prompt (and the reply quoting
    it) is sent, streamed, refused with a 400 and cut mid-stream through every wire
    format: no log record holds it, in its message or its arguments."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="srt")
    marker = "PROMPT-" + secrets.token_hex(6)  # 19 characters: the fake's reply quotes 20
    # The capture does see srt's loggers at DEBUG (a record they made would be checked).
    logging.getLogger("srt.providers.transport").debug("capture probe %s", "srt-probe")
    with srt.Runtime(str(tmp_path / "srt.db")) as rt:
        assert rt.redact is None
        for kind, model in ALL_MODELS.items():
            p = make(kind, srv.url)
            s = rt.session(f"plain-{kind}")
            s.append({"role": "user", "content": f"{marker} is in this prompt"})
            assert marker in s.send(p, model=model).message["content"]
            s.append({"role": "user", "content": f"{marker} again, streamed"})
            assert marker in s.stream(p, model=model).text()
            s.append({"role": "user", "content": f"{marker} refused"})
            srv.fault("*", "status", count=1, code=400, message="bad request")
            with pytest.raises(srt.ProviderError):
                s.send(p, model=model)
            srv.fault("*", "reset_after_events", count=1, n=3)
            with pytest.raises(srt.ProviderError):
                s.stream(p, model=model).text()
            srv.clear()
            assert marker in json.dumps(srv.log[-1].body)  # it was sent each time
            p.close()
        stored = json.dumps([rt.session(f"plain-{k}").messages() for k in ALL_MODELS])
    assert stored.count(marker) >= 4 * 3  # no hook: the prompts and replies are stored
    assert any(r.getMessage() == "capture probe srt-probe" for r in caplog.records)
    logged = [t for t in log_texts(caplog) if marker in t]
    assert logged == []


def ask(s: srt.Session, p: Provider, how: str, **kw: Any) -> None:
    """``s.send(p, ...)``, or ``s.stream(p, ...)`` read to its end."""
    if how == "send":
        s.send(p, **kw)
    else:
        s.stream(p, **kw).text()


def test_the_redaction_hook_covers_replies_and_tool_calls(
    srv: ProviderServer, tmp_path: Path
) -> None:
    """A reply whose text and tool-call arguments hold a pasted secret, sent and
    streamed through every wire format: the runtime's hook scrubs it from what is
    stored, so it is in neither the stored messages, the file nor its ``-wal``."""
    path = str(tmp_path / "srt.db")
    seen: list[str] = []

    def scrub(text: str) -> str:
        if PASTED in text:
            seen.append(text)
        return text.replace(PASTED, "[secret removed]")

    tools = [
        {
            "type": "function",
            "function": {
                "name": "remember",
                "description": "Store a credential",
                "parameters": {
                    "type": "object",
                    "properties": {"token": {"type": "string"}, "note": {"type": "string"}},
                },
            },
        }
    ]
    arguments = {"token": PASTED, "note": f"the user pasted {PASTED} here"}
    with srt.Runtime(path, redact=scrub) as rt:
        for kind, model in ALL_MODELS.items():
            p = make(kind, srv.url)
            for how in ("send", "stream"):
                s = rt.session(f"reply-{kind}-{how}")
                s.append({"role": "user", "content": "please keep my token"})
                call = {"name": "remember", "arguments": arguments}
                srv.script("*", [{"text": f"Keeping {PASTED} for you.", "tool_calls": [call]}])
                ask(s, p, how, model=model, tools=tools)
                assert PASTED in srv.log[-1].reply.text  # the provider did send it back
                (stored_call,) = s.messages()[-1]["tool_calls"]
                assert json.loads(stored_call["function"]["arguments"]) == {
                    "token": "[secret removed]",
                    "note": "the user pasted [secret removed] here",
                }
                s.append({"role": "tool", "tool_call_id": stored_call["id"], "content": "ok"})
                srv.script("*", [f"Done: {PASTED} is kept."])
                ask(s, p, how, model=model, tools=tools)
                text = [m.get("content") for m in s.messages() if m["role"] == "assistant"]
                assert text[0] and "Keeping [secret removed] for you." in json.dumps(text[0])
                assert text[-1] == "Done: [secret removed] is kept.", (kind, how)
            p.close()
        stored = json.dumps([rt.session(i.name).messages() for i in rt.sessions()])
        open_files = db_files(path)
    closed_files = db_files(path)
    assert len(seen) >= len(ALL_MODELS) * 2 * 3  # reply text, arguments, the final reply
    assert PASTED not in stored
    assert open_files.get("srt.db-wal"), "the WAL was not there to check"
    assert occurrences(PASTED, open_files) == {}
    assert occurrences(PASTED, closed_files) == {}


def test_no_request_class_shows_its_headers() -> None:
    """A provider's request holds its key in a header; ``HTTPRequest``'s repr shows the
    method, the URL without secrets and the size. A dataclass subclass gets a repr of its
    own unless told not to (the local provider's showed ``Authorization: Bearer <key>``)."""
    import srt.providers.local  # noqa: F401  (its request class)
    from srt.providers.transport import HTTPRequest

    key = "sk-canary-repr-0123456789abcdef"
    classes = [HTTPRequest, *HTTPRequest.__subclasses__()]
    assert len(classes) >= 2
    for cls in classes:
        req = cls(
            "POST",
            "http://127.0.0.1:1/v1/chat/completions",
            {"Authorization": f"Bearer {key}", "x-api-key": key},
            b"{}",
            secrets=(key,),
        )
        assert key not in repr(req) and key not in str(req), cls


def test_the_documentation_shows_no_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``help()`` and pydoc print every default value: a default of ``os.environ``
    printed every variable of the environment, secrets included
    (``AwsCredentials.from_env``). No public name's documentation may hold one."""
    import pydoc

    import srt.providers.sigv4

    canary = "AKIA-CANARY-" + secrets.token_hex(8)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", canary)
    public = [getattr(srt, name) for name in srt.__all__]
    docs = [pydoc.render_doc(x, renderer=pydoc.plaintext) for x in public if callable(x)]
    docs.append(pydoc.render_doc(srt.providers.sigv4, renderer=pydoc.plaintext))
    assert len(docs) > 10 and any("from_env" in d for d in docs)
    assert not [d[:80] for d in docs if canary in d]
