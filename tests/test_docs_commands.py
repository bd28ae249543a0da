"""The commands README.md and every page of docs/ give that cannot run here (benchmarks of
minutes to hours, pip installs, soak runs) still name what exists: every ``python
bench/X.py`` and ``pytest tests/...`` in their shell blocks and inline code names a file
that exists, every ``--option`` and subcommand is the script's
own, every ``-k`` word selects a test, every ``SRT_*`` variable is read, and every extra
is in pyproject.toml. Every ``srt COMMAND ... --option`` they show names a command of
``srt``'s parser and options that command takes (docs/cli.md's sections against the
parser, the other way: test_cli_docs.py). (The Python blocks run: test_docs*.py.)"""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from srt.cli import build_parser
from test_cli_docs import _options, _walk

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
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
    assert pages >= {
        "README.md",
        "docs/architecture.md",
        "docs/bench.md",
        "docs/gateway.md",
        "docs/integrations.md",
        "docs/providers.md",
        "docs/reliability.md",
        "docs/tasks.md",
    }
    assert len(COMMANDS) >= 100


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
        for group in re.findall(r"(?:stateful-runtime|\.)\[([\w,]+)\]", text):
            extras.update(group.split(","))  # '.[postgres,bench]'
    assert {"test", "postgres", "gateway", "encryption", "bench"} <= extras
    for extra in extras:
        assert re.search(rf"^{extra} = \[", PYPROJECT, flags=re.M), extra


def test_every_srt_variable_the_pages_name_is_read() -> None:
    """``$SRT_DB``, ``SRT_SOAK=1``...: each ``SRT_*`` name on a page is read by srt, its
    build (setup.py), its tests or its bench scripts."""
    named = {
        (page, var)
        for page in PAGES
        for var in re.findall(r"\bSRT_[A-Z0-9_]*[A-Z0-9]\b", (ROOT / page).read_text("utf-8"))
    }
    assert {"SRT_DB", "SRT_PROVIDER", "SRT_MODEL", "SRT_UPSTREAM"} <= {v for _, v in named}
    source = _text([*_sources(), ROOT / "setup.py"])
    for page, var in sorted(named):
        assert re.search(rf"\b{var}\b", source), f"{page}: {var} is read nowhere"


def srt_commands() -> list[tuple[str, str]]:
    """``(page, command)`` for each ``srt ...`` command in the pages' shell and console
    blocks and inline code that gives an option (``srt serve --upstream local --open``)."""
    out = set()
    for page in PAGES:
        text = (ROOT / page).read_text(encoding="utf-8")
        lines = [
            ln.removeprefix("$ ")
            for lang, block in re.findall(r"```(sh|bash|console)\n(.*?)```", text, flags=re.S)
            for ln in block.splitlines()
            if lang != "console" or ln.startswith("$ ")  # not a command's output
        ]
        # inline code with an option (not a name such as bench.md's "`srt build` row")
        lines += re.findall(r"`([^`\n]*\ssrt\s[^`\n]*\s-[^`\n]*|srt\s[^`\n]*\s-[^`\n]*)`", text)
        for line in lines:
            for cmd in re.split(r"&&|\||;", line.split(" #")[0]):
                if re.match(r"\s*(?:[A-Z_]+=\S*\s+)*srt\s+-?-?[a-z]", cmd):
                    out.add((page, cmd.strip()))
    return sorted(out)


SRT_COMMANDS = srt_commands()


def _parsers() -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Each command's words (``("db", "path")``; ``()`` for ``srt``) -> its parser."""
    return {path: parser for path, parser, _leaf in _walk(build_parser())}


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {o for action in _options(parser) for o in action.option_strings}


def srt_command_fault(cmd: str) -> str | None:
    """What is wrong with ``srt ...`` against the parser: a command it has not, or an
    option that command (or ``srt`` itself, before it) does not take; None if nothing."""
    parsers = _parsers()
    top = _option_strings(parsers[()]) | {"-h", "--help"}
    words = shlex.split(cmd, comments=True)
    words = words[words.index("srt") + 1 :]
    while words and words[0] in top:  # --db PATH, --key-file PATH before the command
        words = words[1:] if words[0] in ("--help", "-h", "--version") else words[2:]
    path: tuple[str, ...] = ()
    while words and (*path, words[0]) in parsers:
        path, words = (*path, words[0]), words[1:]
    if any(len(p) > len(path) and p[: len(path)] == path for p in parsers):  # not a leaf
        if not path and not words:
            return None  # srt --help, srt --version
        return f"no command {' '.join([*path, *words[:1]])!r}"
    known = _option_strings(parsers[path]) | top
    for word in words:
        if word == "--":  # what follows is text (srt append --role user -- -notes ...)
            break
        option = word.split("=")[0]
        if (
            word.startswith("-")
            and word != "-"
            and not re.fullmatch(r"-\d+", word)
            and option not in known
        ):
            return f"no option {option}"
    return None


def test_the_pages_show_srt_commands() -> None:
    pages = {p for p, _ in SRT_COMMANDS}
    assert {"README.md", "docs/cli.md", "docs/gateway.md", "docs/integrations.md"} <= pages
    assert len(SRT_COMMANDS) >= 60


@pytest.mark.parametrize(("page", "cmd"), SRT_COMMANDS, ids=[f"{p}:{c}" for p, c in SRT_COMMANDS])
def test_every_srt_command_is_the_parsers(page: str, cmd: str) -> None:
    assert srt_command_fault(cmd) is None, f"{page}: {cmd}: {srt_command_fault(cmd)}"


def test_the_srt_check_finds_what_is_not_there() -> None:
    assert srt_command_fault("srt --db x.db show demo --tree") is None
    assert srt_command_fault("srt db path") is None
    assert srt_command_fault("srt show demo --trees") == "no option --trees"
    assert srt_command_fault("srt gc --history-retention=0 --dryrun") == "no option --dryrun"
    assert srt_command_fault("srt db where") == "no command 'db where'"
    assert srt_command_fault("srt sow demo") == "no command 'sow'"
    assert srt_command_fault("srt serve --upstream local --workers 2 --ssl") == "no option --ssl"


def _sources() -> list[Path]:
    return [*ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/**/*.py"), *ROOT.glob("src/**/*.py")]


def _text(files: list[Path]) -> str:
    return "\n".join(f.read_text("utf-8") for f in files)
