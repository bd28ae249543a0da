"""What a ``syntax=True`` search (``srt search --fts``) can ask of PostgreSQL.

There the query is read by ``websearch_to_tsquery`` (``maintenance.search``): quoted
phrases, ``OR``, ``-word`` and ``NOT``, every other word required. It reads any text
without a syntax error, so SQLite FTS5's operators it does not have would be searched as
plain words and match nothing, as if nothing held the words asked for. ``check_query``
refuses those, saying what to use instead.
"""

from __future__ import annotations

import re

from ...errors import ConfigError

__all__ = ["check_query"]

_HEAD = "PostgreSQL's search (--fts: quoted phrases, OR, -word or NOT) has no "

#: FTS5's operators that websearch_to_tsquery does not know (outside double quotes).
_NEAR = re.compile(r"(?<![\w\"])NEAR\s*\(")
_PREFIX = re.compile(r"\w\*(?=\s|\)|$)")


def check_query(text: str) -> None:
    """``ConfigError`` if ``text`` uses an FTS5 operator PostgreSQL's search lacks."""
    bare = " ".join(text.split('"')[0::2])  # (the parts outside double quotes)
    if _NEAR.search(bare):
        raise ConfigError(
            _HEAD + "NEAR(...): put the words in one quoted phrase, or give each as a word "
            "(all of them are required)"
        )
    if _PREFIX.search(bare):
        raise ConfigError(
            _HEAD + "prefix search (word*): search without --fts (syntax=False), where "
            "word* matches a prefix on both engines"
        )
