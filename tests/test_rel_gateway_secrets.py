"""The gateway's two kinds of key, searched for in every byte it leaves behind.

``test_gateway_security`` reads the ``objects`` and ``calls`` tables for the keys. Here
the whole files are searched (the database, its ``-wal`` and ``-shm``, while the gateway
runs and after it stops), with every log record at DEBUG, the text of every error the
official ``openai`` SDK raised, and the ``repr`` of the runtime and the app, for:

* a tenant's API key (``Records.create_key``: stored hashed), used by streaming and
  non-streaming calls and for a conversation, and a wrong key that was refused;
* the upstream's key, which the upstream echoes in a 400 and in a mid-stream error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from gateway_support import UPSTREAM_KEY, Harness, harness
from srt.gateway.records import Records

WRONG = "sk-srt-CANARY-wrong-0123456789abcdef"


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch, open=False) as h:
        yield h


def _files(path: str) -> bytes:
    return b"".join(
        Path(path + s).read_bytes() for s in ("", "-wal", "-shm") if os.path.exists(path + s)
    )


def test_no_key_reaches_the_files_logs_or_errors(
    gw: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = Records(gw.rt.store).create_key("acme")
    c = gw.client(key)
    texts: list[str] = []
    r = c.responses.create(model="gpt-4o-mini", input="hello")
    assert r.status == "completed"
    with c.responses.create(model="gpt-4o-mini", input="more", stream=True) as events:
        assert [e.type for e in events][-1] == "response.completed"
    chat = c.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.choices[0].message.content
    c.conversations.create(items=[{"role": "user", "content": "kept"}])
    with pytest.raises(openai.AuthenticationError) as refused:
        gw.client(WRONG).responses.create(model="gpt-4o-mini", input="x")
    texts += [str(refused.value), repr(refused.value), refused.value.response.text]
    gw.srv.fault("*", "status", count=1, code=400, message=f"bad key {UPSTREAM_KEY} echoed")
    with pytest.raises(openai.BadRequestError) as echoed:
        c.responses.create(model="gpt-4o-mini", input="x")
    texts += [str(echoed.value), repr(echoed.value), echoed.value.response.text]
    gw.srv.fault(
        "*",
        "malformed_sse",
        count=1,
        variant="error_event",
        after=3,
        message=f"overloaded {UPSTREAM_KEY}",
    )
    with c.responses.create(model="gpt-4o-mini", input="y", stream=True) as events:
        seen = list(events)
    texts += [repr(e) for e in seen]
    assert seen[-1].type in ("response.failed", "error")
    texts += [repr(gw.rt), repr(gw.app), repr(gw.rt.store)]
    while_open = _files(gw.rt.path)
    gw.rt.close()
    after = _files(gw.rt.path)
    for secret in (key, WRONG, UPSTREAM_KEY):
        raw = secret.encode()
        assert raw not in while_open and raw not in after, secret[:10]
        assert secret not in caplog.text, secret[:10]
        assert not [t for t in texts if secret in t], secret[:10]
    # The searches searched: the files hold the conversation, the log has records.
    assert b"hello" in while_open + after and caplog.records
