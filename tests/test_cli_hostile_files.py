"""``srt import`` and ``srt export`` against hostile files, and the CLI's own input and
output when they fail (a full disk behind stdout, a closed stdin or stdout).

Every failure is one ``srt: error:`` line with status 1 and no session created. The
round trip export -> import is checked over random sessions (hypothesis): the same
messages come back. The in-process runs go through ``srt.cli.main`` against real
SQLite files; the stdio cases run ``python -m srt`` with the real file descriptors.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import srt
from srt.cli import main
from test_cli_hostile import Result
from test_cli_hostile import Srt as _Srt


class Srt(_Srt):
    """``test_cli_hostile``'s runner, whose ``ok`` here also wants nothing on stderr."""

    def ok(self, *args: str, stdin: bytes = b"") -> str:
        r = self(*args, stdin=stdin)
        assert r.code == 0 and r.err == "", r
        return r.out

    def names(self) -> list[str]:
        with srt.Runtime(str(self.db)) as rt:
            return sorted(i.name for i in rt.sessions())


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Srt:
    for var in ("SRT_DB", "SRT_PROVIDER", "SRT_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    c = Srt(tmp_path / "srt.db", capsys, monkeypatch)
    c.ok("append", "a", "--role", "user", "Where is my order?")
    return c


def _import_file(cli: Srt, tmp_path: Path, data: bytes, *args: str) -> Result:
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    return cli("import", str(path), *args)


# -- import: what JSON lines may hold -----------------------------------------------------


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\x85"])
def test_jsonl_export_import_keeps_unicode_line_separators_in_text(
    cli: Srt, tmp_path: Path, sep: str
) -> None:
    # JSON keeps U+2028, U+2029 and U+0085 unescaped inside a string, and srt export
    # writes them so; the import split lines at them too (str.splitlines) and refused
    # its own export of any session of two or more messages.
    cli.ok("append", "s", "--role", "user", f"one{sep}two")
    cli.ok("append", "s", "--role", "assistant", f"three{sep}four")
    (tmp_path / "s.jsonl").write_bytes(cli.ok("export", "s").encode("utf-8"))
    assert cli.ok("import", str(tmp_path / "s.jsonl"), "--name", "t") == "t: 2 messages\n"
    assert json.loads(cli.ok("show", "--json", "t")) == json.loads(cli.ok("show", "--json", "s"))


def test_a_byte_order_mark_is_not_part_of_the_file(cli: Srt, tmp_path: Path) -> None:
    # Windows editors and PowerShell start UTF-8 files with one; it was refused as
    # "neither JSON nor JSON lines".
    line = b'{"role":"user","content":"hi"}\n'
    r = _import_file(cli, tmp_path, b"\xef\xbb\xbf" + line + line, "--name", "bom")
    assert (r.code, r.out, r.err) == (0, "bom: 2 messages\n", "")
    r = _import_file(cli, tmp_path, b"\xef\xbb\xbf" + line, "--name", "bom1")
    assert (r.code, r.out) == (0, "bom1: 1 messages\n")


def test_a_bad_json_line_is_named_by_its_line_number(cli: Srt, tmp_path: Path) -> None:
    # Each line was parsed alone and the error said "line 1" of whichever line failed.
    data = b'{"role":"user","content":"x"}\n\n{"role":"assistant","content":"y"'
    r = _import_file(cli, tmp_path, data)
    assert r.code == 1 and "line 3" in r.err and "line 1" not in r.err, r
    assert cli.names() == ["a"]


@pytest.mark.parametrize(
    ("line", "says"),
    [(b"null", "got null"), (b"42", "got a number"), (b'"hi"', "got a string")],
)
def test_a_json_line_that_is_not_a_message_says_which_line(
    cli: Srt, tmp_path: Path, line: bytes, says: str
) -> None:
    data = b'{"role":"user","content":"x"}\n' + line + b"\n"
    err = _import_file(cli, tmp_path, data).err
    assert err == f"srt: error: line 2: expected a message (a JSON object), {says}\n"
    assert cli.names() == ["a"]


def test_a_number_of_more_digits_than_python_reads_is_a_clean_error(
    cli: Srt, tmp_path: Path
) -> None:
    data = b'{"role":"user","content":"x"}\n' + b"1" * 5000 + b"\n"
    err = _import_file(cli, tmp_path, data).err
    assert err == "srt: error: line 2: a number has too many digits\n"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\xff\xfe{\x00", "not UTF-8"),
        (b'{"role":"user","content":"h\x00i"}', "neither JSON nor JSON lines"),
        (b'{"role":"wizard","content":"hi"}', "unknown role"),
        (b'{"role":"user","content":"\\ud800"}', "lone surrogate"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"role":"user","content":[1]}\n{"role":"user","content":"x"}', "content part"),
    ],
)
def test_hostile_input_is_refused_and_creates_nothing(
    cli: Srt, tmp_path: Path, data: bytes, says: str
) -> None:
    r = _import_file(cli, tmp_path, data)
    assert r.code == 1 and says in r.err and r.err.count("\n") == 1, r
    assert cli.names() == ["a"]


@pytest.mark.parametrize("kind", ["directory", "dangling symlink"])
def test_a_file_that_cannot_be_read_is_named(cli: Srt, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "odd.jsonl"
    if kind == "directory":
        path.mkdir()
    else:
        path.symlink_to(tmp_path / "nowhere")
    assert cli.fails("import", str(path)).startswith(f"srt: error: cannot read {path}: ")
    assert cli.names() == ["a"]


# -- export -> import over random sessions ----------------------------------------------

_TEXT = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), min_size=1
).filter(lambda t: t.strip() != "")
_ROLES = st.sampled_from(["user", "assistant", "system", "developer"])
_CALL = st.builds(
    lambda n, args: {
        "id": f"call_{n}",
        "type": "function",
        "function": {"name": f"f{n}", "arguments": json.dumps({"a": args})},
    },
    st.integers(0, 10**6),
    _TEXT,
)
_COUNTER = itertools.count()


def _message(draw: st.DrawFn) -> list[dict[str, Any]]:
    if draw(st.booleans()):
        message: dict[str, Any] = {"role": draw(_ROLES), "content": draw(_TEXT)}
        if draw(st.booleans()):  # (kept beside the message: not exported, not compared)
            message["metadata"] = {"tag": draw(_TEXT)}
        return [message]
    call = draw(_CALL)
    return [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": draw(_TEXT)},
    ]


@st.composite
def _sessions(draw: st.DrawFn) -> list[dict[str, Any]]:
    return [m for _ in range(draw(st.integers(1, 6))) for m in _message(draw)]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(messages=_sessions())
def test_export_then_import_gives_the_same_messages(
    cli: Srt, tmp_path: Path, messages: list[dict[str, Any]]
) -> None:
    n = next(_COUNTER)
    with srt.Runtime(str(cli.db)) as rt:
        session = rt.session(f"src{n}")
        session.append(*messages)
        want = session.messages()
    for fmt in ("jsonl", "openai.chat"):
        path = tmp_path / f"out{n}.{fmt}"
        path.write_bytes(cli.ok("export", f"src{n}", "--format", fmt).encode("utf-8"))
        out = cli.ok("import", str(path), "--name", f"{fmt}{n}")
        assert out == f"{fmt}{n}: {len(want)} messages\n"
        with srt.Runtime(str(cli.db)) as rt:
            assert rt.session(f"{fmt}{n}", create=False).messages() == want, fmt


# -- stdin and stdout that fail ----------------------------------------------------------


def _srt(db: Path, *args: str, shell: str = "", stdout: Any = subprocess.PIPE) -> Result:
    """``python -m srt --db DB ARGS`` with real file descriptors; ``shell`` redirections
    (``<&-``, ``>&-``) are applied by ``sh``."""
    cmd = " ".join([sys.executable, "-m", "srt", "--db", str(db), *args])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SRT_", "OPENAI_"))}
    p = subprocess.run(
        ["sh", "-c", f"exec {cmd} {shell}"],
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=env,
        timeout=120,
    )
    out = p.stdout.decode() if isinstance(p.stdout, bytes) else ""
    return Result(p.returncode, out, p.stderr.decode())


#: Commands that print: small outputs (one write, at the flush) and large ones (writes
#: while the command runs: session "big" is about 200 KB).
PRINTS = [
    ("ls",),
    ("ls", "--json"),
    ("show", "a"),
    ("show", "big"),
    ("show", "--json", "big"),
    ("export", "a"),
    ("export", "big"),
    ("export", "big", "--format", "markdown"),
    ("export", "big", "--format", "openai.chat"),
    ("--version",),
    ("export", "--help"),
]


@pytest.fixture
def big(cli: Srt) -> Srt:
    with srt.Runtime(str(cli.db)) as rt:
        rt.session("big").append(
            *({"role": "user", "content": f"{n} " + "x" * 2000} for n in range(100))
        )
    return cli


@pytest.mark.parametrize("args", PRINTS)
def test_output_to_a_full_disk_is_one_write_error_line(big: Srt, args: tuple[str, ...]) -> None:
    # /dev/full fails every write with ENOSPC: a traceback (OSError) before, and
    # --help, --version exited 0 (argparse drops the error).
    with open("/dev/full", "wb") as full:
        r = _srt(big.db, *args, stdout=full)
    assert (r.code, r.err) == (1, "srt: write error: No space left on device\n"), r


@pytest.mark.parametrize("args", PRINTS)
def test_output_to_a_closed_stdout_is_one_write_error_line(big: Srt, args: tuple[str, ...]) -> None:
    # sys.stdout is None then: print wrote nothing and `srt ls >&-` exited 0.
    r = _srt(big.db, *args, shell=">&-")
    assert (r.code, r.err) == (1, "srt: write error: Bad file descriptor\n"), r


@pytest.mark.parametrize("args", PRINTS)
def test_output_to_a_pipe_closed_early_ends_quietly(big: Srt, args: tuple[str, ...]) -> None:
    # The read end is closed before srt starts, so its first write meets EPIPE (as
    # `srt ls | head -1` does once head exits): status 141 as for a command SIGPIPE
    # ended, nothing on stderr (no traceback, no "Exception ignored ... BrokenPipeError").
    read, write = os.pipe()
    os.close(read)
    try:
        r = _srt(big.db, *args, stdout=write)
    finally:
        os.close(write)
    assert (r.code, r.err) == (141, ""), r


def test_a_closed_stdout_never_becomes_a_file_srt_opens(big: Srt) -> None:
    # fd 1 is taken by /dev/null read-only: a file opened later (the database, its
    # journal) must not get fd 1 and receive the output.
    r = _srt(big.db, "append", "a", "--role", "user", "more", shell=">&-")
    assert (r.code, r.err) == (1, "srt: write error: Bad file descriptor\n"), r
    assert big.ok("verify").startswith("ok: ")
    with srt.Runtime(str(big.db)) as rt:
        assert rt.session("a", create=False).messages()[-1]["content"] == "more"


def test_a_command_that_prints_nothing_does_not_mind_a_closed_stdout(big: Srt) -> None:
    r = _srt(big.db, "rename", "a", "b", shell=">&-")
    assert (r.code, r.err) == (0, ""), r
    assert big.names() == ["b", "big"]


@pytest.mark.parametrize(
    "args", [("import", "-"), ("append", "b", "--role", "user", "-"), ("prompt", "-")]
)
def test_reading_a_closed_stdin_is_an_error_not_a_traceback(
    cli: Srt, args: tuple[str, ...]
) -> None:
    r = _srt(cli.db, *args, shell="<&-")
    assert (r.code, r.out, r.err) == (1, "", "srt: error: cannot read stdin: it is closed\n")
    assert cli.names() == ["a"]


def test_a_prompt_from_stdin_that_is_not_utf8_says_so(cli: Srt) -> None:
    # (It was read as text and refused as a "lone surrogate (U+DCFF)".)
    assert cli.fails("prompt", "-", stdin=b"caf\xe9?") == (
        "srt: error: the prompt is not UTF-8 (byte 3)\n"
    )


# -- --db as a sqlite: URL ----------------------------------------------------------------


def test_db_given_as_a_sqlite_url_is_the_file_it_names(
    cli: Srt, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Runtime opens sqlite:////abs/path (SQLAlchemy's spelling), but the CLI looked for
    # a file named "sqlite:/..." : ls listed nothing, verify and copy said "no database"
    # and db path printed a path that does not exist.
    url = f"sqlite:///{cli.db}"

    def run(*args: str) -> str:
        capsys.readouterr()
        assert main(list(args)) == 0
        out, err = capsys.readouterr()
        assert err == ""
        return out

    assert run("--db", url, "db", "path") == f"{cli.db}\n"
    assert run("--db", url, "ls").splitlines()[1].startswith("a ")
    assert run("--db", url, "verify").startswith("ok: 1 message")
    dest = tmp_path / "copy.db"
    assert run("copy", url, f"sqlite:///{dest}").startswith("copied 1 session")
    with srt.Runtime(str(dest)) as rt:
        assert rt.session("a", create=False).messages()[0]["content"] == "Where is my order?"
