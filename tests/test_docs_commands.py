"""The commands README.md, docs/reliability.md, docs/integrations.md and docs/tasks.md give
that cannot run here (benchmarks of minutes to hours, pip installs, soak runs) still name
what exists: every ``python bench/X.py`` and ``pytest tests/...`` in their shell blocks and
inline code names a file that exists, every ``--option`` and subcommand is the script's
own, every ``-k`` word selects a test, every ``SRT_*`` variable is read, and every extra
is in pyproject.toml. (The Python blocks run: test_docs*.py.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md", "docs/reliability.md", "docs/integrations.md", "docs/tasks.md"]
PYPROJECT = (ROOT / "pyproject.toml").read_text(encoding="utf-8")


def commands() -> list[tuple[str, str]]:
    """``(page, command)`` for each ``python bench/...`` or ``pytest ...`` command."""
    out = []
    for page in PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        shell = re.findall(r"```(?:sh|bash)\n(.*?)```", text, flags=re.S)
        lines = [ln.split("#")[0] for block in shell for ln in block.splitlines()]
        lines += re.findall(r"`([^`\n]*(?:python bench/|pytest tests/|srt\.bench)[^`\n]*)`", text)
        # a script named in a table by its name alone: `pg_scale.py scale --procs 8 ...`
        lines += ["python bench/" + c for c in re.findall(r"`(\w+\.py [^`\n]*--[^`\n]*)`", text)]
        for line in lines:
            for cmd in line.split("&&"):
                if not re.search(r"\bpytest\b|python bench/|python -m srt\.bench", cmd):
                    continue
                words = shlex.split(cmd)
                while words and "=" in words[0]:
                    words.pop(0)  # VAR=value before the command
                if words[:1] == ["pytest"] or (
                    words[:1] == ["python"] and words[1:2] and words[1].startswith(("bench/", "-m"))
                ):
                    out.append((page, cmd.strip()))
    return sorted(set(out))


COMMANDS = commands()


def test_the_pages_give_such_commands() -> None:
    pages = {p for p, _ in COMMANDS}
    assert pages == {"README.md", "docs/reliability.md", "docs/integrations.md", "docs/tasks.md"}
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize(("page", "cmd"), COMMANDS, ids=[f"{p}:{c}" for p, c in COMMANDS])
def test_every_command_names_what_exists(page: str, cmd: str) -> None:
    words = shlex.split(cmd)
    env = [w.split("=")[0] for w in words if re.fullmatch(r"[A-Z_]+=\S*", w)]
    words = words[len(env) :]
    for var in env:
        assert any(var in p.read_text("utf-8") for p in _sources()), (
            f"{page}: {var} is read nowhere"
        )
    if words[0] == "pytest":
        files = [ROOT / w for w in words[1:] if w.startswith("tests/")]
        for f in files:
            assert f.is_file(), f"{page}: {cmd}: no {f.relative_to(ROOT)}"
        if "-k" in words:
            (word,) = words[words.index("-k") + 1 :][:1]
            tests = re.findall(r"^(?:async )?def (test_\w+)", _text(files), flags=re.M)
            assert any(word in t for t in tests), f"{page}: {cmd}: -k {word} selects nothing"
        return
    if words[1:3] == ["-m", "srt.bench"]:  # the package's options live in its modules
        source, rest = _text(sorted((ROOT / "src" / "srt" / "bench").glob("*.py"))), words[3:]
    else:
        script = ROOT / words[1]
        assert script.is_file(), f"{page}: {cmd}: no {words[1]}"
        source, rest = script.read_text("utf-8"), words[2:]
    for w in rest:
        if w.startswith("--"):
            assert f'"{w.split("=")[0]}"' in source, f"{page}: {cmd}: {w} is not an option"
        elif re.fullmatch(r"[a-z]+", w):  # a subcommand
            assert f'"{w}"' in source, f"{page}: {cmd}: {w} is not a subcommand"


def test_every_extra_the_pages_install_exists() -> None:
    extras = set()
    for page in PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        extras.update(re.findall(r"(?:stateful-runtime|\.)\[(\w+)\]", text))
    assert {"test", "postgres", "gateway", "encryption"} <= extras
    for extra in extras:
        assert re.search(rf"^{extra} = \[", PYPROJECT, flags=re.M), extra


def _sources() -> list[Path]:
    return [*ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/**/*.py"), *ROOT.glob("src/**/*.py")]


def _text(files: list[Path]) -> str:
    return "\n".join(f.read_text("utf-8") for f in files)
