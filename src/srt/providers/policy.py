"""The retry policy and the timeouts of srt's HTTP transport (``transport.py``).

Policy (``RetryPolicy``, modelled on the official SDKs):

* retry 408, 409, 429, every 5xx and connection failures, 2 times by default;
  a response header ``x-should-retry: true|false`` overrides the status rule;
* wait ``retry-after-ms``, else ``Retry-After`` (seconds or an HTTP date) when it
  is at most 120 s; otherwise back off exponentially from 0.5 s to 8 s, scaled by
  a jitter factor in (0.75, 1];
* **never retry once a 2xx response has begun** (the transport's rule).

Timeouts (``Timeouts``): a connect timeout (a pooled connection, the name lookup, the
TCP connect and the TLS handshake), an idle timeout for each write, the response head
and each chunk of the body, and a total cap for the whole call (its attempts, the waits
between them, and the body), which cuts each of the others short when it comes first.

``redact`` scrubs secrets (and anything shaped like an API key) from text;
``status_error`` is what a non-2xx answer means, with its text scrubbed so. A refusal
that says the model, deployment, api-version or path does not exist (``Missing``, from
the provider's ``not_found``) leads with what to check; such a 404 or 400 is not retried
(the status rule above).
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

from ..errors import (
    ConfigError,
    ModelNotFoundError,
    ProviderAuthError,
    ProviderContextOverflowError,
    ProviderError,
    ProviderResponseError,
    ProxyAuthError,
    RateLimitError,
)

if TYPE_CHECKING:
    import httpx

    from ..wire.overflow import Overflow

__all__ = ["Missing", "RetryPolicy", "Timeouts", "redact", "shown_url", "status_error"]

_SHOWN_BODY = 2000


class Missing(NamedTuple):
    """What a refusal says does not exist, as the provider tells it: ``hint`` says what
    to check (naming the name as sent and the provider); ``model`` is the model or
    deployment name when that is what is missing (a ``ModelNotFoundError``), else
    ``None`` (an api-version, a path: a ``ProviderResponseError``)."""

    hint: str
    model: str | None = None
    provider: str = ""


class Refused(Protocol):
    """What ``status_error`` reads of the request refused (``transport.HTTPRequest``)."""

    method: str
    url: str
    secrets: tuple[str, ...]
    overflow: Callable[[int, str, Mapping[str, str]], Overflow | None] | None
    not_found: Callable[[int, str, Mapping[str, str]], Missing | None] | None


@dataclass(frozen=True)
class Timeouts:
    """Seconds: ``connect`` for getting a connection (lookup, connect, TLS handshake);
    ``idle`` for each write, the response head and each chunk; ``total`` for the whole
    call, retries and their waits included (each other wait ends by it)."""

    connect: float = 5.0
    idle: float = 60.0
    total: float = 600.0

    def __post_init__(self) -> None:
        for name in ("connect", "idle", "total"):
            _seconds(f"Timeouts {name}=", getattr(self, name), 0.0, above=True)

    def httpx(self) -> httpx.Timeout:
        """These timeouts as httpx takes them: ``connect`` for connecting and for a
        pooled connection, ``idle`` for each read and write (``total`` is srt's own)."""
        import httpx  # (here: ``srt.Timeouts`` is imported with srt, httpx only with a transport)

        return httpx.Timeout(
            connect=self.connect, read=self.idle, write=self.idle, pool=self.connect
        )


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry (the module's policy): ``max_retries`` retries
    after the first attempt; backoff from ``initial_delay`` doubling up to ``max_delay``
    seconds, shortened by up to ``jitter`` (a share, 0 to 1); a server's ``Retry-After``
    is honoured up to ``max_retry_after`` seconds."""

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 120.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        n = self.max_retries
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(
                "RetryPolicy max_retries= must be a whole number >= 0 (0: no retry), "
                f"got {_shown(n)}"
            )
        for name in ("initial_delay", "max_delay", "max_retry_after"):
            _seconds(f"RetryPolicy {name}=", getattr(self, name), 0.0)
        _seconds("RetryPolicy jitter=", self.jitter, 0.0, 1.0)

    def retryable(self, status: int, headers: Mapping[str, str]) -> bool:
        """Whether an answer with ``status`` and ``headers`` is worth retrying: the
        server's ``x-should-retry``, else 408, 409, 429 or a 5xx."""
        hint = headers.get("x-should-retry")
        if hint == "true":
            return True
        if hint == "false":
            return False
        return status in (408, 409, 429) or status >= 500

    @staticmethod
    def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
        """The server's requested wait in seconds, from ``retry-after-ms`` or ``Retry-After``."""
        ms = headers.get("retry-after-ms")
        if ms is not None:
            with contextlib.suppress(ValueError):
                wait = float(ms) / 1000.0
                # ``nan`` is no wait the server asked for (``max(0.0, nan)`` is 0.0:
                # an immediate retry): the next header, else the backoff, decides.
                if not math.isnan(wait):
                    return max(0.0, wait)
        ra = headers.get("retry-after")
        if ra is None:
            return None
        try:
            wait = float(ra)
        except ValueError:
            pass
        else:
            return None if math.isnan(wait) else max(0.0, wait)
        import email.utils  # (here: an HTTP date is rare, and ``import srt`` loads this module)

        try:
            when = email.utils.parsedate_to_datetime(ra)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - (now if now is not None else time.time()))

    def backoff(self, attempt: int, rand: float) -> float:
        """Exponential backoff for retry number ``attempt`` (0-based); ``rand`` in [0, 1)."""
        base = min(self.initial_delay * 2.0**attempt, self.max_delay)
        return base * (1.0 - self.jitter * rand)

    def delay(self, attempt: int, headers: Mapping[str, str], rand: float) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based): the server's
        ``Retry-After`` when it asks for at most ``max_retry_after``, else the backoff."""
        ra = self.retry_after(headers)
        if ra is not None and ra <= self.max_retry_after:
            return ra
        return self.backoff(attempt, rand)


def _shown(value: object) -> str:
    """A number given as a setting, as a message shows it; another value by its type."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    return type(value).__name__


def _seconds(
    what: str, value: object, least: float, most: float | None = None, above: bool = False
) -> None:
    """``ConfigError`` unless ``value`` is a finite number from ``least`` (excluded with
    ``above``) to ``most``."""
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > least if above else value >= least)
        and (most is None or value <= most)
    )
    if not ok:
        if most is not None:
            want = f"a number from {least:g} to {most:g}"
        else:
            want = f"a number of seconds {'>' if above else '>='} {least:g}"
        raise ConfigError(f"{what} must be {want}, got {_shown(value)}")


# Things that look like API keys even when they are not this provider's own.
_KEYLIKE = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{12,}|\bAKIA[0-9A-Z]{16}\b")


#: The shortest start of a secret that ``redact`` removes at the end of a text.
_CUT_SECRET_MIN = 8


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every known secret, and anything shaped like an API key, removed;
    so is the start of a secret that ends the text (at least ``_CUT_SECRET_MIN``
    characters of it): a text cut to a length may have cut a secret in two."""
    for s in secrets:
        if s:
            text = text.replace(s, "[redacted]")
            if len(s) > _CUT_SECRET_MIN:
                start = s[:_CUT_SECRET_MIN]
                at = text.find(start, max(0, len(text) - len(s) + 1))
                while at >= 0 and not s.startswith(text[at:]):
                    at = text.find(start, at + 1)
                if at >= 0:  # (the longest such end: the leftmost start that fits)
                    text = text[:at] + "[redacted]"
    return _KEYLIKE.sub("[redacted]", text)


def shown_url(url: str, secrets: tuple[str, ...]) -> str:
    """``url`` as error text and reprs show it: without its query, nor a user name and
    password given in it (``https://user:pass@host``), nor any of ``secrets``."""
    scheme, sep, rest = url.split("?", 1)[0].partition("://")
    if sep:
        authority, slash, path = rest.partition("/")
        url = scheme + sep + authority.rpartition("@")[2] + slash + path
    return redact(url, secrets)


def status_error(
    status: int, body: bytes, headers: Mapping[str, str], req: Refused
) -> ProviderError:
    """A non-2xx answer as the ``ProviderError`` it is: a proxy's or the provider's
    refusal of the credentials, a rate limit, a refusal of a prompt over the model's
    context window (``req.overflow`` tells it), else ``ProviderResponseError``."""
    # Secrets out first, then the cut: a secret the cut crossed would leave its start.
    full = redact(body.decode("utf-8", "replace"), req.secrets)
    text = full[:_SHOWN_BODY]
    where = shown_url(req.url, req.secrets)
    msg = f"{req.method} {where} answered {status}: {text}"
    if status == 407:  # a proxy (a caller's client's) refused
        return ProxyAuthError(msg)
    if status in (401, 403):
        return ProviderAuthError(msg)
    if status == 429:
        return RateLimitError(msg, RetryPolicy.retry_after(headers))
    over = req.overflow(status, full, headers) if req.overflow is not None else None
    if over is not None:
        return ProviderContextOverflowError(
            msg,
            status=status,
            body=text,
            provider_message=over.message,
            prompt_tokens=over.prompt_tokens,
            limit=over.limit,
        )
    missing = req.not_found(status, full, headers) if req.not_found is not None else None
    if missing is not None:
        hint = redact(missing.hint, req.secrets)
        msg = f"{hint}{' ' if hint.endswith('?') else '. '}{msg}"
        if missing.model is not None:
            return ModelNotFoundError(
                msg, status=status, body=text, model=missing.model, provider=missing.provider
            )
    return ProviderResponseError(msg, status=status, body=text)
