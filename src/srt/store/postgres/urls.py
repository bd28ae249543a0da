"""A PostgreSQL store's URL: srt's own query parameters (``SRT_PARAMS``) split off the
one libpq gets, and the secrets it carries, shown redacted (``repr``, ``location``) and
scrubbed from every message srt writes (libpq and psycopg may quote them).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from ...errors import ConfigError

__all__ = ["SECRET_PARAMS", "SRT_PARAMS", "parse_url", "redact_url", "scrub", "secrets_of"]

#: srt's own URL query parameters; libpq never sees them.
SRT_PARAMS = ("schema", "prepare_threshold", "pool_min", "pool_max", "pool_timeout")

#: Query parameters of a libpq URL that hold a secret.
SECRET_PARAMS = ("password", "sslpassword")


def redact_url(url: str) -> str:
    """``url`` without its password (for ``repr``, messages and ``location``): the one
    in the user part and any ``password=``/``sslpassword=`` query parameter."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        user = netloc.rpartition("@")[0].partition(":")[0]
        netloc = f"{user}:***@" + netloc.rpartition("@")[2]
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(k in SECRET_PARAMS for k, _ in pairs):
        query = urlencode([(k, "***" if k in SECRET_PARAMS else v) for k, v in pairs], safe="*")
        parts = parts._replace(query=query)
    return urlunsplit(parts._replace(netloc=netloc))


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
    parts = urlsplit(url)
    if parts.scheme.split("+", 1)[0].lower() not in ("postgresql", "postgres"):
        raise ConfigError("a PostgreSQL store URL starts with postgresql://")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in pairs if k in SRT_PARAMS}
    rest = [(k, v) for k, v in pairs if k not in SRT_PARAMS]
    clean = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(rest)))
    return clean, ours
