"""``srt chat`` driven for real under a pseudo-terminal, and ``srt prompt``, against the
local provider server (``srt.testing.ProviderServer``) on 127.0.0.1.

The chat runs as ``python -m srt chat`` in its own session with the pty as its
controlling terminal, so a ``\\x03`` typed into the pty is a real Ctrl-C: the
terminal driver sends SIGINT to the chat, exactly as when a person presses it.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import srt
from srt.testing import ProviderServer
from support import cli_env

KEY = "sk-srt-cli-test"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]")

# Opening the pty (stdin's tty) as a session leader without a controlling terminal
# makes it the controlling terminal, so the line discipline turns ^C into SIGINT.
_TAKE_TTY = (
    "import os, sys; os.close(os.open(os.ttyname(0), os.O_RDWR)); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


class Pty:
    """A command on a pseudo-terminal: type into it and wait for its output."""

    def __init__(
        self, argv: list[str], env: dict[str, str], cols: int = 80, cwd: str | None = None
    ) -> None:
        import fcntl
        import pty
        import struct
        import termios

        self.fd, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
        # A ^C makes the terminal driver flush its queues by default; output the chat
        # writes in answer to the signal can race that flush and vanish. NOFLSH keeps
        # it, so what the test reads is everything the chat wrote.
        attrs = termios.tcgetattr(slave)
        attrs[3] |= termios.NOFLSH
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _TAKE_TTY, *argv],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            cwd=cwd,
        )
        os.close(slave)
        self.raw = b""
        self.pos = 0  # where the next expect() starts looking, in ``text``

    @property
    def text(self) -> str:
        """Everything the terminal showed, escape sequences removed, lines ending in \\n."""
        shown = self.raw.decode("utf-8", "replace").replace("\r\n", "\n")
        return ANSI.sub("", shown)

    def _read(self, deadline: float) -> bool:
        wait = deadline - time.monotonic()
        if wait <= 0:
            return False
        ready, _, _ = select.select([self.fd], [], [], wait)
        if not ready:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the other side is closed
            data = b""
        if not data:
            return False
        self.raw += data
        return True

    def expect(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait for ``pattern`` (a regex) after the previous match; return the match."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.compile(pattern).search(self.text, self.pos)
            if m:
                self.pos = m.end()
                return m
            if not self._read(deadline):
                raise AssertionError(
                    f"never saw {pattern!r}; the terminal shows:\n{self.text}\nraw tail: "
                    f"{self.raw[-200:]!r}\n{self._state()}"
                )

    def _state(self) -> str:
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
            wchan = Path(f"/proc/{self.proc.pid}/wchan").read_text()
        except OSError as exc:
            return f"process state unknown: {exc}"
        sig = [ln for ln in status.splitlines() if ln.startswith(("State", "Sig", "Shd"))]
        return f"wchan {wchan}; " + "; ".join(sig)

    def ready(self, timeout: float = 20.0) -> None:
        """Wait until the chat shows its prompt, ready for input: typing earlier would
        race the terminal's switch between line mode and readline's raw mode."""
        deadline = time.monotonic() + timeout
        while not self.text.endswith("\n> "):
            if not self._read(deadline):
                raise AssertionError(f"no prompt; the terminal shows:\n{self.text}")
        self.pos = len(self.text)

    def ask(self, line: str) -> None:
        """Type ``line`` at the next prompt."""
        self.ready()
        self.sendline(line)

    def send(self, data: str) -> None:
        os.write(self.fd, data.encode("utf-8"))

    def sendline(self, line: str) -> None:
        self.send(line + "\r")

    def ctrl_c(self) -> None:
        self.send("\x03")

    def ctrl_d(self) -> None:
        self.send("\x04")

    def wait(self, timeout: float = 20.0) -> int:
        """Read until the command exits; its exit status."""
        deadline = time.monotonic() + timeout
        while self._read(deadline):
            pass
        return self.proc.wait(max(deadline - time.monotonic(), 0.1))

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        os.close(self.fd)


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path / "chat.db", SRT_TEST_KEY=KEY)


def chat_argv(srv: ProviderServer, *more: str) -> list[str]:
    return [
        "-m",
        "srt",
        "chat",
        "--provider",
        "openai",
        "--base-url",
        srv.url + "/v1",
        "--key-env",
        "SRT_TEST_KEY",
        *more,
    ]


@pytest.fixture
def spawn(env: dict[str, str]) -> Iterator[Callable[[list[str]], Pty]]:
    started: list[Pty] = []

    def start(argv: list[str], cwd: str | None = None) -> Pty:
        p = Pty(argv, env, cwd=cwd)
        started.append(p)
        return p

    yield start
    for p in started:
        p.close()


def statuses(db: str, name: str) -> list[tuple[str, str | None]]:
    """(role, status) of each message of session ``name``, read in this process."""
    with srt.Runtime(db) as rt:
        session = rt.session(name, create=False)
        rows = rt.store.chain(session.head)
    return [(json.loads(r[2])["role"], r[4]) for r in rows]


def test_chat_turns_slash_commands_and_ctrl_c(
    srv: ProviderServer, env: dict[str, str], spawn: Any
) -> None:
    db = env["SRT_DB"]
    srv.script("openai", ["Blue, like the sea.", "Green: leaves."])
    chat = spawn(chat_argv(srv, "--session", "colours", "--system", "Answer in one line."))
    chat.expect(r"srt chat: session colours \(new\), gpt-4o-mini via openai\.")
    chat.expect(r"\n> $")
    chat.ask("Name a colour.")
    chat.expect(r"Blue, like the sea\.\n\[\d+ in · 0 cached \(0%\) · \d+ out\]\n> $")
    chat.ask("Another?")
    chat.expect(r"Green: leaves\.\n")
    chat.expect(r"\n> $")

    # Ctrl-C in the middle of a reply: the stream sends its first events, then only
    # keep-alives, so the reply can only end by the interrupt.
    srv.fault("openai", "endless", interval=0.05, after=4)
    chat.ask("Tell me a very long story.")
    chat.expect(r"reply \d+ to Tell me a very long")  # the first deltas arrived
    chat.ctrl_c()
    chat.expect(r"\[cancelled: the partial reply is kept, marked cancelled")
    chat.expect(r"\n> $")
    assert srv.wait_streams_closed(5.0)
    assert statuses(db, "colours")[-2:] == [("user", None), ("assistant", "cancelled")]

    # The chat goes on; the partial reply is left out of the next request.
    chat.ask("/retry")
    chat.expect(r"reply \d+ to Tell me a very long : a deterministic answer")
    chat.expect(r"\n> $")
    sent = srv.log[-1].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "cancelled" not in json.dumps(sent) and sent[-1]["content"].startswith("Tell me")

    # Ctrl-C at the prompt only clears the line. (CPython's readline loop can miss a
    # SIGINT that lands between two of its select() calls until the next key; a person
    # presses again, and so does this test.)
    chat.ready()
    chat.send("half a thought")
    chat.expect(r"half a thought$")
    for _ in range(5):
        chat.ctrl_c()
        try:
            chat.expect(r"\^C \(Ctrl-D or /quit leaves\)\n> $", timeout=2.0)
            break
        except AssertionError:
            continue
    else:
        raise AssertionError(f"Ctrl-C at the prompt was not answered:\n{chat.text}")

    chat.ask("/explain")
    chat.expect(r"next request \(openai\.chat, gpt-4o-mini\): \w+\n  cached prefix: \d+ of 8")
    chat.ask("/stats")
    chat.expect(r"requests +4 \(1 cancelled\)\n")
    chat.expect(r"cache reads")
    chat.ask("/fork colours-b")
    chat.expect(r"\[now in colours-b: 8 messages shared with colours")
    chat.ask("/rewind 2")
    chat.expect(r"\[dropped 5 messages; 3 left\]")
    srv.script("openai", ["Red, edited."])
    chat.ask("/edit Name a warm colour.")
    chat.expect(r"\[edited; the previous version is kept as session colours-b~1\]\n")
    chat.expect(r"Red, edited\.\n")
    chat.ask("/save warm")
    chat.expect(r"\[renamed colours-b to warm\]")
    # /edit without text offers the last message for editing on the input line.
    srv.script("openai", ["Teal, edited again."])
    chat.ask("/edit")
    chat.expect(r"edit> Name a warm colour\.$")
    chat.send("\x15Name a cool colour.\r")  # Ctrl-U clears the line
    chat.expect(r"kept as session warm~1\]\nTeal, edited again\.\n")
    chat.ask("/bogus")
    chat.expect(r"unknown command /bogus; /help lists them")
    chat.ask("/help")
    chat.expect(r"/fork NAME .*\n.*/rewind \[N\]")
    chat.ready()
    chat.ctrl_d()
    assert chat.wait() == 0

    with srt.Runtime(db) as rt:
        names = [i.name for i in rt.sessions()]
        assert names == ["colours", "colours-b~1", "warm", "warm~1"]
        assert rt.session("colours", create=False).messages()[-1]["content"].startswith("reply")
        warm = rt.session("warm", create=False).messages()
        assert [m["content"] for m in warm] == [
            "Answer in one line.",
            "Name a cool colour.",
            "Teal, edited again.",
        ]
        assert rt.session("warm~1", create=False).messages()[1:] == [
            {"role": "user", "content": "Name a warm colour."},
            {"role": "assistant", "content": "Red, edited."},
        ]
        kept = rt.session("colours-b~1", create=False).messages()
        assert [m["content"] for m in kept[:3]] == [
            "Answer in one line.",
            "Name a colour.",
            "Blue, like the sea.",
        ]
    # The transcript marks the partial reply.
    shown = subprocess.run(
        [sys.executable, "-m", "srt", "show", "colours"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "\n\nassistant [cancelled]: reply 3 to Tell me a very long" in shown


def test_chat_continue_and_provider_errors(
    srv: ProviderServer, env: dict[str, str], spawn: Any
) -> None:
    srv.script("openai", ["First."])
    chat = spawn(chat_argv(srv, "--session", "a"))
    chat.expect(r"\n> $")
    chat.ask("hello")
    chat.expect(r"First\.\n")
    chat.expect(r"\n> $")
    # A provider error is one line; the message is kept and /retry asks again.
    srv.fault("openai", "status", code=401, message="Incorrect API key provided")
    chat.ask("again")
    chat.expect(r"error: .*401.*\n\[the request failed: your message is kept; /retry asks")
    chat.ready()
    chat.ctrl_d()
    assert chat.wait() == 0

    srv.script("openai", ["Second."])
    again = spawn(chat_argv(srv, "-c"))
    again.expect(r"srt chat: session a \(3 messages\)")
    again.ask("/retry")
    again.expect(r"Second\.\n")
    again.ask("/quit")
    assert again.wait() == 0
    assert [r for r, _ in statuses(env["SRT_DB"], "a")] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    # The key never reaches the database, its WAL, or the terminal.
    for path in Path(env["SRT_DB"]).parent.glob("chat.db*"):
        assert KEY.encode() not in path.read_bytes()
    assert KEY not in chat.text + again.text


def run(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "srt", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_prompt_one_shot(srv: ProviderServer, env: dict[str, str]) -> None:
    base = ["--provider", "openai", "--base-url", srv.url + "/v1", "--key-env", "SRT_TEST_KEY"]
    srv.script("openai", ["Paris.", "About 2.1 million.", "Lyon."])
    r = run(env, "prompt", *base, "--session", "geo", "Capital of France?")
    assert (r.returncode, r.stdout, r.stderr) == (0, "Paris.\n", "")
    r = run(env, "prompt", *base, "-c", "-", stdin="How many people live there?")
    assert (r.returncode, r.stdout, r.stderr) == (0, "About 2.1 million.\n", "")
    assert [m["role"] for m in srv.log[-1].body["messages"]] == ["user", "assistant", "user"]
    r = run(env, "prompt", *base, "Second city?")  # a new session of its own
    assert r.stdout == "Lyon.\n"
    with srt.Runtime(env["SRT_DB"]) as rt:
        names = [i.name for i in rt.sessions()]
        assert len(rt.session("geo", create=False)) == 4
    assert len(names) == 2 and re.fullmatch(r"prompt-\d{8}-\d{6}", names[1])

    r = run(env, "prompt", *base, "--key-env", "NOT_SET_ANYWHERE", "hi")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == (
        "srt: error: --key-env NOT_SET_ANYWHERE: that environment variable is not set or empty\n"
    )
    r = run(env, "prompt", *base, "--session", "geo", "--system", "Be brief.", "hi")
    assert r.returncode == 1 and "--system applies to a new session" in r.stderr


def test_prompt_ctrl_c_keeps_the_partial_reply(
    srv: ProviderServer, env: dict[str, str], spawn: Any
) -> None:
    srv.fault("openai", "endless", interval=0.05, after=4)
    p = spawn(
        [
            "-m",
            "srt",
            "prompt",
            "--provider",
            "openai",
            "--base-url",
            srv.url + "/v1",
            "--key-env",
            "SRT_TEST_KEY",
            "--session",
            "s",
            "Write a novel.",
        ]
    )
    p.expect(r"reply 1 to Write a novel")
    p.ctrl_c()
    p.expect(r"srt: cancelled: the partial reply is kept in session s, marked cancelled")
    assert p.wait() == 130
    assert statuses(env["SRT_DB"], "s") == [("user", None), ("assistant", "cancelled")]
    assert srv.wait_streams_closed(5.0)


TOOLS_MODULE = """
import os


def weather(city: str, unit: str = "C") -> str:
    \"\"\"The weather in a city now.

    Args:
        city: The city's name.
        unit: C or F.
    \"\"\"
    with open(os.environ["SRT_TEST_RUNS"], "a") as f:
        f.write(f"weather {city}\\n")
    return f"{city}: 21 {unit}, sunny"


def add(a: int, b: int) -> int:
    \"\"\"Add two numbers.\"\"\"
    with open(os.environ["SRT_TEST_RUNS"], "a") as f:
        f.write(f"add {a} {b}\\n")
    return a + b
"""


def test_chat_with_tools_shows_and_confirms_each_call(
    srv: ProviderServer, env: dict[str, str], spawn: Any, tmp_path: Path
) -> None:
    (tmp_path / "mytools.py").write_text(TOOLS_MODULE)
    runs = tmp_path / "runs.log"
    env["SRT_TEST_RUNS"] = str(runs)
    srt_script = str(Path(sys.executable).with_name("srt"))  # the console script
    both = [
        {"name": "weather", "arguments": {"city": "Paris"}},
        {"name": "add", "arguments": {"a": 2, "b": 3}},
    ]
    srv.script("openai", [{"tool_calls": both}, "Paris is sunny; I did not add."])
    argv = [srt_script, *chat_argv(srv, "--session", "t", "--tool", "mytools:weather")[2:]]
    chat = spawn([*argv, "--tool", "mytools:add"], cwd=str(tmp_path))
    chat.expect(r"tools: weather, add \(each call asks first\)")
    chat.ask("Weather in Paris, and 2+3?")
    chat.expect(r'\[tool call\] weather\(city="Paris"\)\nrun it\? \[y/N\] $')
    chat.sendline("y")
    chat.expect(r"\[tool call\] add\(a=2, b=3\)\nrun it\? \[y/N\] $")
    chat.sendline("n")
    chat.expect(r"\[add denied: The user denied this tool call\.\]")
    chat.expect(r"\[weather ok: Paris: 21 C, sunny\]")
    chat.expect(r"Paris is sunny; I did not add\.\n\[2 model calls · 2 tool calls · ")
    chat.ready()
    chat.ctrl_d()
    assert chat.wait() == 0
    assert runs.read_text() == "weather Paris\n"  # the denied call never ran
    first, second = srv.log[-2].body, srv.log[-1].body
    (weather_def,) = [t for t in first["tools"] if t["function"]["name"] == "weather"]
    assert weather_def["function"]["parameters"]["properties"]["city"] == {
        "type": "string",
        "description": "The city's name.",
    }
    results = {m["tool_call_id"]: m["content"] for m in second["messages"] if m["role"] == "tool"}
    assert sorted(results.values()) == ["Paris: 21 C, sunny", "The user denied this tool call."]

    # --yes: each call is shown and runs without a question.
    srv.script("openai", [{"tool_calls": both[1:]}, "5."])
    chat = spawn([*argv, "--tool", "mytools:add", "--yes"], cwd=str(tmp_path))
    chat.expect(r"\(each call runs at once\)")
    chat.ask("2+3?")
    chat.expect(r"\[tool call\] add\(a=2, b=3\)\n\[add ok: 5\]\n5\.\n")
    chat.ready()
    chat.ctrl_d()
    assert chat.wait() == 0
    assert runs.read_text() == "weather Paris\nadd 2 3\n"


def test_chat_tool_options_are_checked(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "mytools.py").write_text(TOOLS_MODULE + "\nnot_callable = 3\n")
    base = [
        sys.executable,
        "-m",
        "srt",
        "chat",
        "--provider",
        "openai",
        "--key-env",
        "SRT_TEST_KEY",
    ]
    for spec, message in [
        ("mytools", "give it as module:function"),
        ("nosuchmodule:f", "cannot import 'nosuchmodule'"),
        ("mytools:nope", "mytools has no 'nope'"),
        ("mytools:not_callable", "'not_callable' is not a function"),
    ]:
        r = subprocess.run(
            [*base, "--tool", spec],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert r.returncode == 1 and message in r.stderr, (spec, r.stderr)


# A tool whose call, once it has run, pauses the chat just as srt starts saving its
# result (the call of srt._task.Task.commit, seen by a profile function): it writes
# "paused" to the test's pipe and waits there for the test's SIGINT, so the chat's own
# handler (passed the frame the signal landed in, as always) runs at exactly that moment,
# every time. (A relay in front of the handler only notes that the signal came.)
PAUSING_TOOL = """
import os, signal, sys, time


def _pause(frame, event, arg):
    code = frame.f_code
    if event != "call" or code.co_name != "commit" or not code.co_filename.endswith("_task.py"):
        return
    sys.setprofile(None)
    handler = signal.getsignal(signal.SIGINT)
    came = []

    def relay(signum, frame):
        came.append(signum)
        handler(signum, frame)

    signal.signal(signal.SIGINT, relay)
    try:
        fd = int(os.environ["SRT_TEST_PAUSE_FD"])
        os.write(fd, b"paused\\n")
        os.close(fd)
        deadline = time.monotonic() + 60
        while not came:  # (the handler runs in this frame, within commit's call)
            if time.monotonic() > deadline:
                raise SystemExit("the test's SIGINT never came")
            time.sleep(0.01)
    finally:
        signal.signal(signal.SIGINT, handler)


def weather(city: str) -> str:
    \"\"\"The weather in a city now.

    Args:
        city: The city's name.
    \"\"\"
    sys.setprofile(_pause)
    return f"{city}: 21 C, sunny"
"""


def test_ctrl_c_while_a_tool_result_is_saved_keeps_the_result(
    srv: ProviderServer, env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "pausing.py").write_text(PAUSING_TOOL)
    call = {"name": "weather", "arguments": {"city": "Paris"}}
    srv.script("openai", [{"tool_calls": [call]}, "Paris is sunny."])
    (tmp_path / "typed.txt").write_text("Weather in Paris?\n")
    read, write = os.pipe()
    argv = chat_argv(srv, "--session", "t", "--tool", "pausing:weather", "--yes")
    try:
        with open(tmp_path / "typed.txt", "rb") as typed:
            p = subprocess.Popen(
                [sys.executable, *argv],
                env={**env, "SRT_TEST_PAUSE_FD": str(write)},
                pass_fds=(write,),
                cwd=tmp_path,
                stdin=typed,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
    finally:
        os.close(write)
    try:
        with os.fdopen(read, "rb") as pipe:
            line = pipe.readline()  # (empty: the chat ended without saving a result)
        if line == b"paused\n":
            p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    shown = out.decode("utf-8", "replace")
    assert line == b"paused\n", (shown, err)
    assert p.returncode == 0, err
    # The result was saved whole before the turn stopped (before: it was lost, and the
    # call read "interrupted" on the next turn though the tool had run).
    with srt.Runtime(env["SRT_DB"]) as rt:
        entries = rt.session("t", create=False).entries()
    assert [e.message["role"] for e in entries] == ["user", "assistant", "tool"]
    assert "[weather ok: Paris: 21 C, sunny]\n[interrupted: what arrived is kept" in shown
    assert entries[-1].message["content"] == "Paris: 21 C, sunny"
    assert entries[-1].tool is not None and entries[-1].tool["status"] == "ok"
    # /retry goes on from the saved result: the model is given it, not "interrupted".
    again = subprocess.run(
        [sys.executable, *argv], env=env, cwd=tmp_path, input=b"/retry\n",
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "Paris is sunny." in again.stdout.decode()
    results = [m for m in srv.log[-1].body["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in results] == ["Paris: 21 C, sunny"]
