"""The examples of docs/cli.md's command sections run as shown and print what the page
prints (the walk-through above them is ``test_cli_walkthrough.py``'s).

They follow on from one another, from the state the page's ``srt chat`` example leaves
(session ``support``: the system prompt, a question and its answer, and its fork
``support-refund``), which this test makes through ``srt.Runtime``. Each ``console``
block runs in a real shell, ``srt`` being ``python -m srt`` and ``git diff`` a fixed diff,
in a fresh directory; its output (stderr first, as a terminal shows it) must equal the
block's, times and ``srt log`` keys masked. Blocks that need a provider, a server or a
damaged file (``chat``, ``prompt``, ``serve``, ``copy``, ``verify``) are not run here.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import srt
from support import cli_env
from test_cli_walkthrough import END, mask

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
NOT_RUN = {"chat", "prompt", "serve", "copy", "verify"}
LOG_KEY = re.compile(r"\b[0-9a-f]{14}\.\d+\b")
DIFF = "--- a/notes.txt\n+++ b/notes.txt\n@@ -1 +1 @@\n-draft\n+final\n"


def examples() -> list[tuple[str, str]]:
    """``(commands, expected output)`` of each console block the test runs, in order."""
    text = DOCS.read_text(encoding="utf-8").split(END, 1)[1]
    out = []
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        runs: list[tuple[str, list[str]]] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                runs.append((line[2:], []))
            else:
                runs[-1][1].append(line)
        words = [shlex.split(cmd, comments=True) for cmd, _ in runs]
        if any(w[w.index("srt") + 1] in NOT_RUN for w in words if "srt" in w):
            continue
        out.extend((cmd, "\n".join(lines)) for cmd, lines in runs)
    return out


def _shims(bin_dir: Path) -> None:
    bin_dir.mkdir()
    (bin_dir / "srt").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m srt "$@"\n')
    (bin_dir / "git").write_text(f"#!/bin/sh\nprintf '%s' '{DIFF}'\n")
    for shim in bin_dir.iterdir():
        shim.chmod(0o755)


def test_the_page_has_the_examples() -> None:
    commands = [c for c, _ in examples()]
    verbs = ["db path", "ls", "show", "append", "request", "fork", "rewind", "rename", "delete"]
    for verb in [*verbs, "export", "import", "search", "log"]:
        assert any(f"srt {verb}" in c for c in commands), verb


def test_cli_examples_run_as_shown(tmp_path: Path) -> None:
    db = tmp_path / "srt.db"
    with srt.Runtime(str(db)) as rt:  # what the page's `srt chat` example leaves
        s = rt.session("support")
        s.append(
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Where is my order?"},
            {"role": "assistant", "content": "It shipped yesterday."},
        )
        s.fork("support-refund")
    _shims(tmp_path / "bin")
    env = cli_env(db, HOME="/home/me")
    env["PATH"] = f"{tmp_path / 'bin'}:{env['PATH']}"
    key = ""  # the newest `srt log` key, for the `--restore` example
    for command, expected in examples():
        if key:
            command = LOG_KEY.sub(key, command)
        r = subprocess.run(
            ["/bin/sh", "-c", command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, (command, r)
        got = "\n".join(ln.rstrip() for ln in (r.stderr + r.stdout).rstrip("\n").splitlines())
        keys = LOG_KEY.findall(got)
        key = keys[0] if keys else key
        assert LOG_KEY.sub("KEY", mask(got)) == LOG_KEY.sub("KEY", mask(expected)), command
    assert (tmp_path / "support.jsonl").is_file() and (tmp_path / "support.md").is_file()
