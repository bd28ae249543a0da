"""The docs are tests: the README's example runs, and its commands are the project's own."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import srt

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
