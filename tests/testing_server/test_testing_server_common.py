"""What the local provider server does for every protocol: rendering and the request
counters under concurrent clients; the context window's refusals.
"""

from __future__ import annotations

import threading

import anthropic
import httpx
import openai
import pytest
from testing_server_support import (
    CHAT,
    CLAUDE,
    MESSAGES,
    OPENAI_H,
    claude,
    oai,
    system_cached,
)

from rel_support.waits import joined
from srt.testing import (
    ProviderServer,
    ntokens,
    render,
)


def test_render_and_counters(srv: ProviderServer, http: httpx.Client) -> None:
    prep = render("anthropic.messages", {**MESSAGES, "system": system_cached("abc")})
    assert prep.labels == ["system:0", "message:0.0"] and prep.breakpoints == [(0, "5m")]
    assert prep.units[0] == '{"type":"text","text":"abc"}' and prep.units[1].startswith("user:")
    assert ntokens("abcd") == 1 and ntokens("abcde") == 2 and ntokens("é") == 1

    def call() -> None:
        with httpx.Client(timeout=10) as c:
            for _ in range(5):
                assert (
                    c.post(
                        srv.url + "/v1/chat/completions", json=CHAT, headers=OPENAI_H
                    ).status_code
                    == 200
                )

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    joined(*threads)
    assert srv.requests["openai.chat"] == 30 and len(srv.log) == 30
    assert [rec.seq for rec in srv.log] == list(range(1, 31))
    replies = {rec.reply.text.split(":")[0] for rec in srv.log if rec.reply}
    assert replies == {f"reply {n} to hello" for n in range(1, 31)}


def test_context_window() -> None:
    with ProviderServer(context_window=100) as small:
        big = [{"role": "user", "content": "x" * 500}]
        with pytest.raises(openai.BadRequestError) as info:
            oai(small).chat.completions.create(model="gpt-4o", messages=big)  # type: ignore[arg-type]
        assert info.value.code == "context_length_exceeded"
        with pytest.raises(anthropic.BadRequestError, match="prompt is too long"):
            claude(small).messages.create(model=CLAUDE, max_tokens=8, messages=big)  # type: ignore[arg-type]
        items = [{"role": "user", "content": "y" * 200} for _ in range(3)]
        r = oai(small).responses.create(model="gpt-4o", input=items, truncation="auto")  # type: ignore[arg-type]
        assert r.status == "completed" and small.log[-1].labels == ["item:2"]
        with pytest.raises(openai.BadRequestError):
            oai(small).responses.create(model="gpt-4o", input=items)  # type: ignore[arg-type]
        assert small.errors == []
