"""A PostgreSQL store's URL: srt's own query parameters (``SRT_PARAMS``) split off the
one libpq gets, and the secrets it carries, shown redacted (``repr``, ``location``) and
scrubbed from every message srt writes (libpq and psycopg may quote them); the redaction
itself is ``srt.store.redact_url``, which the CLI shares. A libpq
keyword/value string (``"host=db dbname=chats"``, what ``psycopg.connect`` also takes)
becomes the same URL with its keywords in the query (``as_url``).
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlencode, urlsplit

from ...errors import ConfigError
from .. import SECRET_PARAMS, redact_url

__all__ = [
    "SECRET_PARAMS",
    "SRT_PARAMS",
    "as_url",
    "parse_url",
    "redact_url",
    "scrub",
    "secrets_of",
    "unquoted",
]

#: srt's own URL query parameters; libpq never sees them.
SRT_PARAMS = ("schema", "prepare_threshold", "pool_min", "pool_max", "pool_timeout")


#: How a URL holding a password that was not percent-encoded is told to write it.
ENCODE = (
    "a password holding @ : / ? # % or a space is percent-encoded in a URL: "
    "urllib.parse.quote(password, safe='')"
)

_QUOTED = re.compile(r'"[^"]*"')


def unquoted(text: str) -> str:
    """libpq's message on a malformed URL or keyword string without what it quotes (a
    token of it, which may be part of a password that ``secrets_of`` cannot find in a
    string that does not parse)."""
    return _QUOTED.sub('"…"', " ".join(text.split()))


def as_url(conninfo: str) -> str:
    """A libpq keyword/value string as a ``postgresql://`` URL holding its keywords in
    the query (its password then shows and is scrubbed like ``?password=``)."""
    from psycopg import Error
    from psycopg.conninfo import conninfo_to_dict

    bad = ""
    try:
        pairs = conninfo_to_dict(conninfo)
    except Error as exc:  # may quote a token of the password: never chained
        bad = unquoted(str(exc))
    if bad:
        ours = ", ".join(f"{k}=" for k in SRT_PARAMS)
        raise ConfigError(
            f"the PostgreSQL connection string is not valid ({bad}); srt's own options "
            f"({ours}) go in a postgresql:// URL's query"
        )
    return "postgresql://?" + urlencode({k: str(v) for k, v in pairs.items()})


def _join(parts: SplitResult) -> str:
    """``parts`` as a URL (a fragment is refused by ``parse_url``), keeping ``//`` before
    an empty host (``postgresql://?host=...``), which ``urlunsplit`` drops."""
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}{parts.path}{query}"


def secrets_of(url: str) -> list[str]:
    """The secrets a URL carries, raw and as written, longest first (``scrub``)."""
    parts = urlsplit(url)
    found: list[str] = []
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k in SECRET_PARAMS:
            found += [v, quote(v)]
    raw = parts.netloc.rpartition("@")[0].partition(":")[2]
    found += [raw, unquote(raw)]
    return sorted({f for f in found if f}, key=len, reverse=True)


def scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def parse_url(url: str) -> tuple[str, dict[str, str]]:
    """Split srt's parameters (``SRT_PARAMS``) off a ``postgresql://`` URL: the URL
    libpq gets, and srt's options."""
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed "[" of an IPv6 host: the text is not quoted
        raise ConfigError(f"the PostgreSQL URL is not valid; {ENCODE}") from None
    if parts.scheme.split("+", 1)[0].lower() not in ("postgresql", "postgres"):
        raise ConfigError("a PostgreSQL store URL starts with postgresql://")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if (
        "@" in parts.path
        or parts.netloc.count("@") > 1
        or parts.fragment
        or any("@" in k for k, _ in pairs)
    ):
        # a password's "/", "?" or "#" ended the user part early, or its "@" did: libpq
        # would take the rest for a host, port or database and may quote it
        raise ConfigError(f"the PostgreSQL URL has an '@' out of place; {ENCODE}")
    ours = {k: v for k, v in pairs if k in SRT_PARAMS}
    rest = [(k, v) for k, v in pairs if k not in SRT_PARAMS]
    clean = _join(parts._replace(scheme="postgresql", query=urlencode(rest)))
    return clean, ours
