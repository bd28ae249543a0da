"""tasks31: ``/retry`` in ``srt chat`` that gets no new reply gives the user back the reply
it replaced. ``/retry`` rewinds a complete last reply before it asks again; when that
request failed (an error status, a stream cut off) or was stopped with Ctrl-C, the old
reply was left only among the session's earlier heads, and the chat went on without it.

The chat runs in this process (``srt.cli._chat.Chat``) against the local provider
server; the fault for the retried request is queued as the user types ``/retry``, and
the Ctrl-C is a real SIGINT raised as the retried reply's first text is shown."""

from __future__ import annotations

import io
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import srt
from srt.cli._chat import Chat
from srt.testing import ProviderServer
from task_support import make, server

QUESTION = {"role": "user", "content": "Name a colour."}
BLUE = {"role": "assistant", "content": "Blue."}


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with server() as s:
        yield s


class _Out(io.StringIO):
    """The chat's output; ``on_text`` runs at each write while it is set."""

    on_text: Callable[[str], None] | None = None

    def write(self, s: str) -> int:
        n = super().write(s)
        if self.on_text is not None and s.strip() and not s.startswith("["):
            self.on_text(s)
        return n


def _chat(rt: srt.Runtime, srv: ProviderServer, p: Any, before_retry: Callable[[], None]) -> str:
    """Ask, get "Blue.", then /retry with ``before_retry`` run as it is typed; the output."""
    lines = iter(["Name a colour.", "/retry"])
    out = _Out()

    def read(prompt: str) -> str:
        line = next(lines, None)
        if line is None:
            raise EOFError
        if line == "/retry":
            before_retry()
        return line

    srv.script("openai.chat", ["Blue."])
    session = rt.session("c")
    chat = Chat(rt, session, p, "gpt-4o", out=out, read=read, interactive=False)
    assert chat.run() == 0
    return out.getvalue()


@pytest.mark.parametrize("how", ["status-400", "stream-cut"])
def test_a_failed_retry_gives_the_reply_back(
    rt: srt.Runtime, srv: ProviderServer, how: str
) -> None:
    p = make("openai", srv.url)

    def fail() -> None:
        if how == "status-400":
            srv.fault("openai.chat", "status", code=400, message="no more colours")
        else:
            srv.script("openai.chat", ["Green is a colour of leaves."])
            srv.fault("openai.chat", "reset_after_events", n=2)

    try:
        shown = _chat(rt, srv, p, fail)
    finally:
        p.close()
    s = rt.session("c", create=False)
    assert s.messages() == [QUESTION, BLUE]  # (before: [QUESTION] and maybe a partial)
    assert "[the last reply is replaced; it stays in srt log]" in shown
    assert "[no new reply: the reply you had is back]" in shown, shown
    assert [e.partial for e in s.entries()] == [False, False]
    # The retried request was the question again, not a second reply's.
    bodies = [r.body for r in srv.log if r.body is not None]
    assert len(bodies) == (1 if how == "status-400" else 2)
    assert bodies[-1]["messages"] == [QUESTION]
    # What the retry left (nothing, or a partial reply) is an earlier head in turn.
    assert [r.action for r in s.history()][:2] == ["restore", "rewind"]


def test_a_retry_stopped_with_ctrl_c_gives_the_reply_back(
    rt: srt.Runtime, srv: ProviderServer
) -> None:
    p = make("openai", srv.url)

    def slow_reply() -> None:
        srv.script("openai.chat", ["Green, the colour of leaves and of grass in spring."])
        srv.fault("openai.chat", "endless", interval=0.05, after=3)  # text, then no end

    lines = iter(["Name a colour.", "/retry"])
    out = _Out()
    interrupted: list[str] = []

    def ctrl_c(text: str) -> None:
        if not interrupted:  # the retried reply's first text: a real Ctrl-C now
            interrupted.append(text)
            signal.raise_signal(signal.SIGINT)

    def read(prompt: str) -> str:
        line = next(lines, None)
        if line is None:
            raise EOFError
        if line == "/retry":
            slow_reply()
            out.on_text = ctrl_c
        return line

    srv.script("openai.chat", ["Blue."])
    chat = Chat(rt, rt.session("c"), p, "gpt-4o", out=out, read=read, interactive=False)
    try:
        assert chat.run() == 0
    finally:
        p.close()
    shown = out.getvalue()
    assert interrupted, "the retried reply showed no text"
    s = rt.session("c", create=False)
    assert s.messages() == [QUESTION, BLUE]
    assert "[no new reply: the reply you had is back]" in shown, shown
    # the cancelled partial reply is kept among the earlier heads, not lost
    restored_from = s.history()[0]
    assert restored_from.action == "restore"
    assert restored_from.messages == 2


def test_a_retry_that_answers_keeps_the_new_reply(rt: srt.Runtime, srv: ProviderServer) -> None:
    p = make("openai", srv.url)
    try:
        shown = _chat(rt, srv, p, lambda: srv.script("openai.chat", ["Green."]))
    finally:
        p.close()
    assert "no new reply" not in shown
    assert rt.session("c", create=False).messages() == [
        QUESTION,
        {"role": "assistant", "content": "Green."},
    ]
