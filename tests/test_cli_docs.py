"""``docs/cli.md`` against the parser: every command and option has help, and the docs
have a section for every command naming each of its options (moved from test_cli.py)."""

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
