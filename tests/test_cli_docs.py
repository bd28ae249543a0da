"""``docs/cli.md`` against the parser: every command and option has help, and the docs
have a section for every command naming each of its options (moved from test_cli.py), and
every option a section names is its command's."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

from srt.cli import build_parser

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, bool]]:
    """(command words, parser, is a leaf) for ``parser`` and every parser below it."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    yield path, parser, not subs
    for action in subs:
        for name, sub in action.choices.items():
            yield from _walk(sub, (*path, name))


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
    ]


def _mention(action: argparse.Action) -> str:
    """How the docs name an option (its long form) or a positional (its metavar)."""
    if action.option_strings:
        return max(action.option_strings, key=len)
    assert isinstance(action.metavar, str)
    return action.metavar


def test_every_command_and_option_has_help() -> None:
    seen = set()
    for path, parser, _leaf in _walk(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"srt {' '.join(path)} {choice.dest} has no help"
                    seen.add((*path, choice.dest))
        for action in _options(parser):
            assert action.help and action.help != argparse.SUPPRESS, (path, action.dest)
    assert {
        "chat",
        "prompt",
        "ls",
        "show",
        "append",
        "request",
        "fork",
        "rewind",
        "rename",
        "delete",
        "export",
        "import",
        "search",
        "stats",
        "gc",
        "verify",
        "vacuum",
    } <= {p[0] for p in seen}
    assert ("db", "path") in seen


def test_docs_cover_every_command_and_option() -> None:
    doc = DOCS.read_text(encoding="utf-8")
    _head, *chunks = re.split(r"^(?=## )", doc, flags=re.MULTILINE)
    sections = {c.splitlines()[0][3:].strip(): c for c in chunks}
    commands = {
        f"srt {' '.join(path)}": parser for path, parser, leaf in _walk(build_parser()) if leaf
    }
    documented = {title for title in sections if title.startswith("srt ")}
    assert documented == set(commands)
    for title, parser in commands.items():
        for action in _options(parser):
            assert _mention(action) in sections[title], (title, _mention(action))
    for action in _options(build_parser()):
        assert _mention(action) in doc.split("\n## srt ", 1)[0], action.dest


def section_fault(title: str, text: str) -> list[str]:
    """The ``--options`` that ``text``, the prose of section ``title`` (``srt gc``), names
    in inline code (`` `--dry-run` ``) and that neither that command nor ``srt`` takes."""
    parsers = {f"srt {' '.join(p)}": parser for p, parser, leaf in _walk(build_parser()) if leaf}
    known = {o for a in _options(parsers[title]) for o in a.option_strings}
    known |= {o for a in _options(build_parser()) for o in a.option_strings}
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    return sorted(set(re.findall(r"`(--[a-z][\w-]*)", prose)) - known)


def test_each_section_names_its_commands_options() -> None:
    """The other way: an option a section names is one its command takes (a renamed or
    removed flag left in the prose is caught; shown commands: test_docs_commands.py)."""
    doc = DOCS.read_text(encoding="utf-8")
    _head, *chunks = re.split(r"^(?=## srt )", doc, flags=re.MULTILINE)
    named = 0
    for chunk in chunks:
        title = chunk.splitlines()[0][3:].strip()
        assert section_fault(title, chunk) == [], title
        named += len(re.findall(r"`--[a-z]", chunk))
    assert named >= 60
    assert section_fault("srt gc", "- `--dry-run`, `--json`, `--db`") == []
    assert section_fault("srt gc", "- `--dryrun`: ...\n```\nsrt gc --x\n```") == ["--dryrun"]
    assert section_fault("srt ls", "`--tree`") == ["--tree"]  # srt show's, not ls's
