"""The docs are tests: the README's example runs, and its commands are the project's own."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

import srt
from srt.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_readme_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _postgres = _blocks("python")
    ns: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), ns)
    body = ns["body"]
    s = ns["s"]
    alt = ns["alt"]
    assert isinstance(s, srt.Session) and isinstance(alt, srt.Session)
    assert isinstance(body, bytes)
    assert json.loads(body)["messages"] == s.messages()
    assert alt.messages() == s.messages()[:-1]
    assert (tmp_path / "chats.db").exists()


def test_readme_console_block_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The ``srt`` commands under the Python example, on the file that example made: every
    command exits 0, ``show`` prints the new turn, the fork drops it and ``ls`` lists both."""
    monkeypatch.chdir(tmp_path)
    code, _postgres = _blocks("python")
    exec(compile(code, "README.md", "exec"), {})
    (block,) = _blocks("console")
    commands = [
        shlex.split(cmd)
        for line in block.strip().splitlines()
        for cmd in line.removeprefix("$ ").split(" && ")
    ]
    assert [c[:4] for c in commands] == [["srt", "--db", "chats.db", v] for v in
                                         ("append", "show", "fork", "ls")]  # fmt: skip
    outputs = []
    for argv in commands:
        assert main(argv[1:]) == 0, argv
        outputs.append(capsys.readouterr().out)
    assert outputs[1].rstrip().endswith("user: and in French?")
    listed = [ln.split()[0] for ln in outputs[3].splitlines()[1:]]
    assert sorted(listed) == ["support-42", "support-42-b", "try-b"]
    with srt.Runtime(str(tmp_path / "chats.db")) as rt:
        full = rt.session("support-42", create=False).messages()
        assert full[-1] == {"role": "user", "content": "and in French?"}
        assert rt.session("try-b", create=False).messages() == full[:-1]


def test_readme_postgres_example_runs(pg_url: str) -> None:
    """The PostgreSQL example, pointed at the tests' server instead of db.internal."""
    _first, code = _blocks("python")
    url = "postgresql://app:secret@db.internal:5432/chats"
    assert code.count(url) == 1
    ns: dict[str, object] = {}
    exec(compile(code.replace(url, pg_url), "README.md", "exec"), ns)
    s = ns["s"]
    assert isinstance(s, srt.Session) and s.messages() == [{"role": "user", "content": "hi"}]
    rt = ns["rt"]
    assert isinstance(rt, srt.Runtime)
    rt.close()


def test_readme_first_screen_has_the_two_commands() -> None:
    (setup,) = _blocks("bash")[:1]
    lines = [ln.split("#")[0].strip() for ln in setup.strip().splitlines()]
    assert lines == [
        "pip install . && python -m srt.bench --quick",
        "pip install '.[test]' && pytest",
    ]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install '.[test]' && pytest" in ci


def test_readme_links_exist() -> None:
    for target in re.findall(r"\]\((docs/[^)#]+)\)", README):
        assert (ROOT / target).is_file(), target
