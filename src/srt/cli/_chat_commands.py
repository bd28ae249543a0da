"""``srt chat``'s slash commands (``/fork``, ``/rewind``, ``/edit``, ``/retry``,
``/explain``, ``/stats``, ``/save``, ``/help``): a base of :class:`srt.cli._chat.Chat`,
which gives them the conversation's session, the output and a reply."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..cache import CacheExplain
from ..errors import SrtError
from ..history import HeadRecord
from ..runtime import Runtime
from ..session import Session
from ._common import escape_line
from ._stats import usage_summary

if TYPE_CHECKING:
    from ..providers import Provider

__all__ = ["HELP", "Commands", "explain_lines"]

HELP = """\
/fork NAME     continue in a new session NAME that shares this conversation
/rewind [N]    drop the last N turns (default 1): a user message and its replies
/edit [TEXT]   change your last message; the old version is kept as session NAME~K
/retry         ask for the last reply again (it replaces a complete one)
/explain       what the provider's prompt cache should serve for the next request
/stats         requests, tokens, cache hit share and cost of this session
/save [NAME]   every turn is already stored; with NAME, rename the session
/help          this list
/quit          leave (or Ctrl-D)
A line ending in \\ continues on the next line; //text sends /text."""


class Commands(ABC):
    """The slash commands of a chat; :class:`~srt.cli._chat.Chat` gives the rest."""

    rt: Runtime
    session: Session
    provider: Provider
    model: str
    interactive: bool

    @abstractmethod
    def say(self, text: str) -> None: ...

    @abstractmethod
    def note(self, text: str) -> None: ...

    @abstractmethod
    def reply(self) -> None: ...

    @abstractmethod
    def _line(self, prompt: str) -> str: ...

    def command(self, text: str) -> bool:
        """Run a slash command; False to leave the chat."""
        name, _, arg = text.partition(" ")
        arg = arg.strip()
        handler: Callable[[str], None] | None = {
            "/fork": self.fork,
            "/rewind": self.rewind,
            "/edit": self.edit,
            "/retry": self.retry,
            "/explain": self.explain,
            "/stats": self.stats,
            "/save": self.save,
            "/help": self.help,
        }.get(name)
        if name in ("/quit", "/exit", "/q"):
            return False
        if handler is None:
            self.say(f"unknown command {escape_line(name)}; /help lists them")
        else:
            handler(arg)
        return True

    def help(self, arg: str) -> None:
        self.say(HELP)

    def fork(self, arg: str) -> None:
        if not arg:
            self.say("usage: /fork NAME")
            return
        old = self.session
        self.session = old.fork(arg)
        self.note(
            f"[now in {escape_line(arg)}: {len(self.session)} messages shared with "
            f"{escape_line(old.name)}, which stays as it was]"
        )

    def _user_turns(self) -> list[int]:
        return [i for i, m in enumerate(self.session.messages()) if m.get("role") == "user"]

    def rewind(self, arg: str) -> None:
        try:
            n = int(arg) if arg else 1
        except ValueError:
            n = -1
        if n < 1:
            self.say("usage: /rewind [N], N a number of turns, 1 or more")
            return
        turns = self._user_turns()
        if len(turns) < n:
            self.say(f"there are only {len(turns)} turns to rewind")
            return
        drop = len(self.session) - turns[-n]
        self.session.rewind(drop)
        self.note(f"[dropped {drop} messages; {len(self.session)} left]")

    def edit(self, arg: str) -> None:
        turns = self._user_turns()
        if not turns:
            self.say("there is no message of yours to edit")
            return
        index = turns[-1]
        old = self.session.messages()[index]
        text = arg or self._edit_line(old.get("content"))
        if not text.strip():
            self.note("[edit cancelled]")
            return
        keep = self._keep_name()
        self._edit_keeping(keep, index, {"role": "user", "content": text})
        self.note(f"[edited; the previous version is kept as session {escape_line(keep)}]")
        self.reply()

    def _edit_keeping(self, keep: str, index: int, message: dict[str, Any]) -> None:
        """Fork the session to ``keep``, then edit message ``index``; an edit refused (bad
        input, a conflict) or interrupted before it was stored takes its fork with it."""
        self.session.fork(keep)
        before = self.session.head
        try:
            self.session.edit(index, message)
        except BaseException:
            with contextlib.suppress(SrtError):
                row = self.rt.store.get_session(self.session.name)
                if row is not None and row.head == before:  # (the edit was not stored)
                    self.rt.delete(keep)
            raise

    def _keep_name(self) -> str:
        taken = {info.name for info in self.rt.sessions()}
        k = 1
        while f"{self.session.name}~{k}" in taken:
            k += 1
        return f"{self.session.name}~{k}"

    def _edit_line(self, content: Any) -> str:
        old = content if isinstance(content, str) else ""
        if not self.interactive:
            return self._line("")
        try:
            import readline
        except ImportError:  # no line editing here: type the new text
            return self._line("edit> ")
        readline.set_startup_hook(lambda: readline.insert_text(old.replace("\n", " ")))
        try:
            return self._line("edit> ")
        finally:
            readline.set_startup_hook(None)

    def retry(self, arg: str) -> None:
        """Ask again. A complete last reply is replaced: the session is rewound to before
        it (it stays among the session's earlier heads, ``srt log``), so the model never
        sees two replies in a row; if no complete new message comes (the request fails,
        Ctrl-C), that reply is put back. After an error, an interruption or a partial
        reply (left out of requests), or amid a tool round, it asks again from there."""
        entries = self.session.entries()
        if not entries:
            self.say("there is nothing to reply to")
            return
        last = entries[-1]
        if (
            last.message.get("role") != "assistant"
            or last.partial
            or last.message.get("tool_calls")
        ):
            self.reply()
            return
        before = self.session.head
        self.session.rewind(1)
        record = next((r for r in self.session.history() if r.head == before), None)
        kept = "it stays in srt log" if record is not None else "history retention is off"
        self.note(f"[the last reply is replaced; {kept}]")
        try:
            self.reply()
        finally:
            if all(e.partial for e in self.session.entries()[len(entries) - 1 :]):
                self._put_back(record)

    def _put_back(self, record: HeadRecord | None) -> None:
        """``/retry`` got no complete new message: the reply it replaced is the head
        again (``Session.restore``; what the retry left, a partial reply, becomes an
        earlier head), or the chat says where that reply is."""
        name = escape_line(self.session.name)
        if record is None:
            self.note("[no new reply; the replaced one was not kept (history retention off)]")
            return
        try:
            self.session.restore(record)
        except SrtError as exc:
            self.note(
                f"[no new reply, and the replaced one could not be put back "
                f"({escape_line(str(exc))}); it is among session {name}'s earlier heads: "
                f"srt log {name}]"
            )
            return
        self.note("[no new reply: the reply you had is back]")

    def explain(self, arg: str) -> None:
        report = self.session.explain(self.provider.format, model=self.model)
        for line in explain_lines(report):
            self.say(line)

    def stats(self, arg: str) -> None:
        for line in usage_summary(self.session.calls(), self.rt):
            self.say(line)

    def save(self, arg: str) -> None:
        if not arg:
            self.note(
                f"[every turn is already stored, in session {escape_line(self.session.name)} "
                f"of {escape_line(self.rt.path)}; /save NAME renames it]"
            )
            return
        old = self.session.name
        self.rt.rename(old, arg)
        self.session = self.rt.session(arg, create=False)
        self.note(f"[renamed {escape_line(old)} to {escape_line(arg)}]")


def explain_lines(report: CacheExplain) -> list[str]:
    """The cache explain, as ``/explain`` prints it."""
    total = report.total_tokens
    share = f" ({report.cached_tokens / total:.0%})" if total else ""
    lines = [
        f"next request ({report.format}, {report.model}): {report.reason}",
        f"  cached prefix: {report.cached_messages} of {report.total_messages} messages, "
        f"~{report.cached_tokens:,} of ~{total:,} tokens{share}",
    ]
    if report.detail:
        lines.append(f"  {report.detail}")
    if report.diverged_at is not None:
        lines.append(
            f"  first difference: message {report.diverged_at + 1} ({report.diverged_role})"
        )
    for bp in report.breakpoints:
        lines.append(f"  breakpoint: {bp.where} {bp.index + 1}, ttl {bp.ttl} ({bp.reason})")
    return lines
