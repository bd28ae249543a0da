"""``srt chat`` (an interactive, streaming chat) and ``srt prompt`` (one question).

Ctrl-C while a reply streams stops it: what arrived is stored as a partial reply
with status ``cancelled`` (left out of later requests), and the chat goes on. A
Ctrl-C that lands while srt is saving a reply or a tool's result waits until it is
saved (a tool round then stops), so a turn is never half-written and a tool that ran
never reads as interrupted. Ctrl-C at the prompt clears the line; Ctrl-D quits.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from types import CodeType, FrameType
from typing import TYPE_CHECKING, TextIO

from .. import drivers, exchange
from .._task_session import MAX_STEPS
from ..errors import ConflictError, ProviderError, SrtError
from ..message import canonicalize
from ..runtime import Runtime
from ..session import Session
from ..store.heads import delete_session
from ._chat_commands import Commands
from ._common import (
    CommandError,
    escape_line,
    escape_text,
    latest_session,
    read_stdin,
    refuse_empty,
    runtime,
    tty,
)
from ._providers import make_provider
from ._tools import ask_approval, describe, load_tools, outcome

if TYPE_CHECKING:
    from .._task import TaskEvent
    from ..providers import Provider
    from ..tools import Tool

__all__ = ["Chat", "chat", "prompt"]

# The frames of a reply being saved: a Ctrl-C that lands there waits for the save.
_SAVING = frozenset(
    f.__code__ for f in (exchange.Call.persist, exchange.Call.end_stream, exchange.Call.fail)
)


def _tool_saving() -> frozenset[CodeType]:
    """``_SAVING`` and the frame of a tool's result being saved (``Task.commit``)."""
    from .._task import Task  # (here: srt._task loads with a chat's first tool round)

    return _SAVING | {Task.commit.__code__}


def _saving(frame: FrameType | None, codes: frozenset[CodeType]) -> bool:
    while frame is not None:
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False


class _Sigint:
    """What Ctrl-C did while a reply streamed: ``pressed`` (at all) and ``raised`` (a
    ``KeyboardInterrupt`` was raised for it)."""

    __slots__ = ("pressed", "raised")

    def __init__(self) -> None:
        self.pressed = False
        self.raised = False

    def deferred(self) -> bool:
        """Whether a Ctrl-C came while something was being saved and is still to be
        acted on: true once, for the caller to raise it now that the save is done."""
        if self.pressed and not self.raised:
            self.raised = True
            return True
        return False


@contextlib.contextmanager
def _interruptible(saving: frozenset[CodeType] = _SAVING) -> Iterator[_Sigint]:
    """While a reply streams: a Ctrl-C raises ``KeyboardInterrupt``, unless what is
    running is being saved (a frame of ``saving``: a reply, or with ``_tool_saving()`` a
    tool's result) at that moment; then it waits for the save (``_Sigint.deferred``).
    Once one was raised, later ones only set a flag."""
    state = _Sigint()

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        state.pressed = True
        if not state.raised and not _saving(frame, saving):
            state.raised = True
            raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread: leave Ctrl-C alone
        yield state
        return
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, old)


def _new_name(rt: Runtime, prefix: str) -> str:
    base = time.strftime(f"{prefix}-%Y%m%d-%H%M%S")
    taken = {info.name for info in rt.sessions()}
    name, k = base, 2
    while name in taken:
        name, k = f"{base}-{k}", k + 1
    return name


def open_session(rt: Runtime, args: argparse.Namespace, prefix: str) -> tuple[Session, bool]:
    """The session named by --session or -c, or a new one; and whether it is new."""
    if args.cont:
        if not rt.sessions():
            raise CommandError("there is no session to continue")
        return rt.session(latest_session(rt), create=False), False
    if args.session:
        session = rt.session(args.session)
        return session, len(session) == 0
    return rt.session(_new_name(rt, prefix)), True


def set_system(session: Session, system: str | None) -> None:
    if system is None:
        return
    if len(session) == 0:
        session.append({"role": "system", "content": system})
        return
    first = session.messages()[0]
    if first.get("role") != "system" or first.get("content") != system:
        raise CommandError(
            f"session {session.name!r} already has messages; --system applies to a new "
            "session (fork one, or start another)"
        )


def _dim(text: str, on: bool) -> str:
    return f"\x1b[2m{text}\x1b[0m" if on else text


class Chat(Commands):
    """The read-eval-print loop of ``srt chat`` on one runtime and provider."""

    def __init__(
        self,
        rt: Runtime,
        session: Session,
        provider: Provider,
        model: str,
        *,
        out: TextIO,
        read: Callable[[str], str],
        interactive: bool,
        tools: Sequence[Tool] = (),
        yes: bool = False,
    ) -> None:
        self.rt = rt
        self.session = session
        self.provider = provider
        self.model = model
        self.out = out
        self.read = read
        self.interactive = interactive
        # NO_COLOR (no-color.org): present and not empty turns off the dim status lines.
        self.color = tty(out) and not os.environ.get("NO_COLOR")
        self.tools = list(tools)
        self.yes = yes

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        self.say(_dim(text, self.color))

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        while True:
            try:
                line = self._line("> ")
            except EOFError:
                if self.interactive:
                    self.say("")
                return 0
            except KeyboardInterrupt:
                self.say("^C (Ctrl-D or /quit leaves)")
                continue
            text = line.strip()
            if not text:
                continue
            try:
                if text.startswith("/") and not text.startswith("//"):
                    if not self.command(text):
                        return 0
                else:
                    self.turn(line[1:] if line.startswith("//") else line)
            except KeyboardInterrupt:
                self.note("[interrupted: nothing was changed]")
            except SrtError as exc:
                self.say(f"error: {escape_line(str(exc))}")

    def _line(self, prompt: str) -> str:
        line = self.read(prompt if self.interactive else "")
        while line.endswith("\\"):
            line = line[:-1] + "\n" + self.read("... " if self.interactive else "")
        return line

    # -- turns ---------------------------------------------------------------------------

    def turn(self, text: str) -> None:
        if self.tools:
            self.task(max_steps=0)  # calls left by an interrupted turn get their results
        self.session.append({"role": "user", "content": text})
        self.reply()

    def reply(self) -> None:
        """Stream a reply to the conversation as it stands."""
        if self.tools:
            self.task()
            return
        stream = self.session.stream(self.provider, model=self.model)
        shown = False
        with _interruptible() as sigint:
            try:
                for delta in stream:
                    self.out.write(escape_text(delta))
                    self.out.flush()
                    shown = shown or bool(delta)
            except KeyboardInterrupt:
                stream.close()  # a stream paused between deltas stores its partial reply now
            except ProviderError as exc:
                if shown:
                    self.say("")
                self.say(f"error: {escape_line(str(exc))}")
                self._after(stream, interrupted=False)
                return
        if shown:
            self.say("")
        self._after(stream, interrupted=sigint.pressed)

    def _after(self, stream: drivers.ReplyStream, *, interrupted: bool) -> None:
        status = stream.status
        reply = stream.reply
        if reply is None:
            why = (
                "the request failed" if status == "error" else "interrupted before the reply began"
            )
            self.note(f"[{why}: your message is kept; /retry asks again]")
            return
        if status != "ok":
            self.note(
                f"[{status}: the partial reply is kept, marked {status}, and left out of "
                "the next request; /retry asks again]"
            )
            return
        if interrupted:
            self.note("[Ctrl-C came as the reply was being saved: it was saved complete]")
        if reply is not None:
            u = reply.usage
            share = f" ({u.cache_read_tokens / u.input_tokens:.0%})" if u.input_tokens else ""
            self.note(
                f"[{u.input_tokens:,} in · {u.cache_read_tokens:,} cached{share} · "
                f"{u.output_tokens:,} out]"
            )

    def _ask(self, prompt: str) -> str:
        return self.read(prompt if self.interactive else "")

    def _show(self, event: TaskEvent, midline: bool) -> bool:
        """Show one event of a task's stream; whether the output now ends mid-line."""
        if event.kind == "text":
            self.out.write(escape_text(event.text))
            self.out.flush()
            return bool(event.text) and not event.text.endswith("\n")
        if midline and event.kind != "done":
            self.say("")
            midline = False
        if event.kind == "tool_call" and self.yes and event.call is not None:
            self.note(f"[tool call] {describe(event.call)}")
        elif event.kind == "tool_result" and event.run is not None:
            self.note(f"[{outcome(event.run)}]")
        return midline

    def task(self, max_steps: int | None = MAX_STEPS) -> None:
        """Run the model and the tools it calls until it answers (``Session.run``)."""
        approve = None if self.yes else ask_approval(self._ask, self.note)
        stream = self.session.run_stream(
            self.provider, model=self.model, tools=self.tools, approve=approve, max_steps=max_steps
        )
        midline = False
        with _interruptible(_tool_saving()) as sigint:
            try:
                for event in stream:
                    midline = self._show(event, midline)
                    if event.kind != "done" and sigint.deferred():
                        # A Ctrl-C came while a reply or a tool's result was being
                        # saved: it is saved, so the turn stops here.
                        raise KeyboardInterrupt
            except KeyboardInterrupt:
                stream.close()
                if midline:
                    self.say("")
                self.note("[interrupted: what arrived is kept; /retry goes on]")
                return
            except ProviderError as exc:
                if midline:
                    self.say("")
                self.say(f"error: {escape_line(str(exc))}")
                self.note("[your message is kept; /retry asks again]")
                return
        if midline:
            self.say("")
        result = stream.result
        if result is None or (result.steps == 0 and not result.tool_runs):
            return
        u = result.usage
        self.note(
            f"[{result.steps} model calls · {len(result.tool_runs)} tool calls · "
            f"{u.input_tokens:,} in · {u.cache_read_tokens:,} cached · {u.output_tokens:,} out]"
        )
        if result.stopped not in ("done", "max_steps") or (
            result.stopped == "max_steps" and max_steps
        ):
            self.note(f"[stopped: {result.stopped}; /retry goes on]")


# -- the commands ----------------------------------------------------------------------------


def _close(provider: Provider) -> None:
    with contextlib.suppress(Exception):
        provider.close()


def chat(args: argparse.Namespace) -> int:
    tools = load_tools(args.tool or ())
    provider, model = make_provider(args)
    try:
        with runtime(args, create=True) as rt:
            made = not args.cont and (
                args.session is None or rt.store.get_session(args.session) is None
            )
            session, new = open_session(rt, args, "chat")
            try:
                return _chat(rt, session, new, provider, model, args, tools)
            finally:
                if made:
                    _drop_unused(rt, session.name, args.system)
    finally:
        _close(provider)


def _drop_unused(rt: Runtime, name: str, system: str | None) -> None:
    """Delete session ``name``, which this chat created, if it was left without a turn (no
    message, or only ``--system``'s): ``srt chat -c`` then goes on with the last real
    conversation, not an empty one. A session renamed (``/save NAME``) is kept, and so
    is this one when the store fails (the chat's own error is the one to show). The
    delete holds only while the head is the one checked (a compare-and-swap): a turn
    another process adds to the session meanwhile keeps it (``ConflictError``)."""
    with contextlib.suppress(SrtError):
        session = rt.session(name, create=False)
        head, messages = session.head, session.messages()
        if not messages or messages == [{"role": "system", "content": system}]:
            delete_session(rt.store, name, if_head=head)


def _chat(rt: Runtime, session: Session, new: bool, provider: Provider, model: str,
          args: argparse.Namespace, tools: list[Tool]) -> int:  # fmt: skip
    set_system(session, args.system)
    interactive = tty(sys.stdin)
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
    state = "new" if new else f"{len(session)} messages"
    print(
        f"srt chat: session {escape_line(session.name)} ({state}), {model} via "
        f"{provider.name}. /help lists commands; Ctrl-D quits.",
        flush=True,
    )
    if tools:
        how = "each call runs at once" if args.yes else "each call asks first"
        names = ", ".join(escape_line(t.name) for t in tools)
        print(f"tools: {names} ({how})", flush=True)
    return Chat(
        rt,
        session,
        provider,
        model,
        out=sys.stdout,
        read=input,
        interactive=interactive,
        tools=tools,
        yes=args.yes,
    ).run()


def prompt(args: argparse.Namespace) -> int:
    text = args.text
    if text is None or text == "-":
        if text is None and tty(sys.stdin):
            raise CommandError("give the prompt as an argument, or '-' to read it from stdin")
        data = read_stdin()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CommandError(f"the prompt is not UTF-8 (byte {exc.start})") from None
    refuse_empty(text, "the prompt")
    question = {"role": "user", "content": text}
    # A bad message is refused before any file or session is created.
    canonicalize(question)
    if args.system is not None:
        canonicalize({"role": "system", "content": args.system})
    provider, model = make_provider(args)
    try:
        with runtime(args, create=True) as rt:
            existed = bool(args.cont) or (
                args.session is not None and rt.store.get_session(args.session) is not None
            )
            session, _new = open_session(rt, args, "prompt")
            before = len(session)
            stream = None
            try:
                set_system(session, args.system)
                session.append(question)
                stream = session.stream(provider, model=model)
                ended = ""
                with _interruptible():
                    try:
                        for delta in stream:
                            sys.stdout.write(escape_text(delta))
                            sys.stdout.flush()
                            ended = delta[-1:] or ended
                    except KeyboardInterrupt:
                        stream.close()
            except BaseException:
                # No reply stored (a provider error, a bad --model or --base-url, ...):
                # the session is left as it was.
                if stream is None or stream.reply is None:
                    _unask(rt, session, before if existed else None)
                raise
            if stream.reply is None:
                _unask(rt, session, before if existed else None)
            if ended != "\n":
                print()
            if stream.reply is None and stream.status != "ok":
                # (cancelled while waiting for the reply's first byte: nothing is kept)
                print(
                    "srt: interrupted before the reply began; the session was left as it was",
                    file=sys.stderr,
                )
                return 130 if stream.status in (None, "cancelled") else 1
            if stream.status not in ("ok", None):
                print(
                    f"srt: {stream.status}: the partial reply is kept in session "
                    f"{escape_line(session.name)}, marked {stream.status}",
                    file=sys.stderr,
                )
                return 130 if stream.status == "cancelled" else 1
            return 0
    finally:
        _close(provider)


def _unask(rt: Runtime, session: Session, before: int | None) -> None:
    """Leave the session as it was before ``srt prompt`` (no reply was stored): a session
    the prompt created is deleted, an existing one loses the unanswered message (which
    ``srt log`` lists as an earlier head while the history retention lasts). The request
    stays in the ledger. Both are compare-and-swaps on the head this prompt left: a
    session another writer added to meanwhile is kept as it is, and said so."""
    try:
        if before is None:
            delete_session(rt.store, session.name, if_head=session.head)
        elif len(session) > before:
            session.rewind(len(session) - before)
    except ConflictError:
        print(
            f"srt: session {escape_line(session.name)} was kept with the unanswered "
            "message: another writer added to it meanwhile",
            file=sys.stderr,
        )
