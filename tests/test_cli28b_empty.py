"""``srt append NAME --role user ""`` stored an empty message that ``srt prompt ""``
refuses. A message of no text (or only white space) is refused for every role but
``tool``: no provider takes an empty user or system message (Anthropic refuses empty
text), an empty assistant message is only legitimate beside tool calls (which ``srt
append`` cannot give), and a tool's empty result is a result (a call that printed
nothing)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support import cli_env


def _srt(db: Path, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    r = subprocess.run(
        [sys.executable, "-m", "srt", *args],
        input=stdin,
        env=cli_env(db),
        capture_output=True,
        timeout=120,
    )
    return r.returncode, r.stdout.decode(), r.stderr.decode()


@pytest.mark.parametrize("role", ["system", "developer", "user", "assistant"])
@pytest.mark.parametrize("text", ["", " \n\t"], ids=["empty", "blank"])
def test_append_refuses_an_empty_message_as_prompt_does(
    tmp_path: Path, role: str, text: str
) -> None:
    db = tmp_path / "srt.db"
    assert _srt(db, "append", "a", "--role", role, text) == (
        1,
        "",
        "srt: error: the message is empty\n",
    )
    assert _srt(db, "append", "a", "--role", role, "-", stdin=text.encode()) == (
        1,
        "",
        "srt: error: the message is empty\n",
    )
    assert not db.exists()  # nothing created
    assert _srt(db, "prompt", text) == (1, "", "srt: error: the prompt is empty\n")


def test_a_tools_empty_result_is_kept(tmp_path: Path) -> None:
    db = tmp_path / "srt.db"
    assert _srt(db, "append", "a", "--role", "user", "Run it.") == (0, "1\n", "")
    assert _srt(db, "append", "a", "--role", "tool", "--tool-call-id", "c1", "") == (
        0,
        "2\n",
        "",
    )
    code, out, err = _srt(db, "show", "a", "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)[-1] == {"role": "tool", "content": "", "tool_call_id": "c1"}
