"""AWS Signature Version 4 (``AWS4-HMAC-SHA256``) header signing, as Bedrock needs it.

``sign()`` returns the headers to add to a request; it does no I/O. The
canonical request follows the AWS SigV4 documentation and agrees with botocore's
``SigV4Auth`` (checked by property tests):

* the canonical URI is the URL's path *as sent* (already percent-encoded),
  normalised (``.``/``..`` and empty segments removed) and percent-encoded once
  more, as every service but S3 expects: a Bedrock model id
  ``...-v1:0`` travels as ``...-v1%3A0`` and is signed as ``...-v1%253A0``.
  Pass the URL exactly as the HTTP client will send it;
* the query string is split into pairs, each name and value re-encoded per
  RFC 3986 and sorted;
* the signed headers are ``host`` (from the URL, with its port when not the
  scheme's default), ``x-amz-date``, and whichever of ``content-type`` and
  ``x-amz-*`` the caller passes (values trimmed, inner whitespace collapsed,
  repeated names joined with commas). Other headers (``accept``,
  ``user-agent``, ...) are sent unsigned.

Secrets never appear in a repr, a str or an error message.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import SplitResult, quote, unquote_to_bytes, urlsplit

from .._core import Body
from ..errors import ConfigError

__all__ = ["AwsCredentials", "sign"]

_ALGORITHM = "AWS4-HMAC-SHA256"
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class AwsCredentials:
    """An access key pair and an optional session token. The repr shows only the key id."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in ("access_key_id", "secret_access_key", "session_token"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(
                    f"AwsCredentials {name} must be a str, got {type(value).__name__}"
                )
            if value and not (value.isascii() and value.isprintable()):
                # The key id and the token are request headers; a line break in any of
                # the three (a file read with its newline) would fail the first send as
                # a connection error. The value is not shown.
                raise ConfigError(
                    f"AwsCredentials {name} holds a line break, a control character or "
                    "one that is not ASCII: AWS credentials are printable ASCII"
                )
        if not self.access_key_id or not self.secret_access_key:
            raise ConfigError("AWS credentials need a non-empty access key id and secret key")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AwsCredentials | None:
        """From ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``
        of ``env`` (the process's environment by default).

        ``None`` when the key id or the secret is missing or empty.
        """
        # (never ``env=os.environ`` in the signature: help() and pydoc print a default,
        # and that one is every variable of the environment, secrets included)
        env = os.environ if env is None else env
        key_id = env.get("AWS_ACCESS_KEY_ID", "").strip()
        secret = env.get("AWS_SECRET_ACCESS_KEY", "").strip()
        if not key_id or not secret:
            return None
        return cls(key_id, secret, env.get("AWS_SESSION_TOKEN", "").strip() or None)


def _encode(raw: str | bytes) -> str:
    """RFC 3986 percent-encoding: everything but ``A-Z a-z 0-9 - . _ ~``."""
    return quote(raw, safe="")


def _canonical_uri(path: str) -> str:
    segments = [s for s in path.split("/") if s and s != "."]
    kept: list[str] = []
    for segment in segments:
        if segment == "..":
            if kept:
                kept.pop()
        else:
            kept.append(segment)
    trailing = "/" if kept and path.endswith("/") else ""
    return "/" + "/".join(_encode(s) for s in kept) + trailing


def _canonical_query(query: str) -> str:
    pairs = []
    for item in query.split("&"):
        if item:
            name, _, value = item.partition("=")
            pairs.append((_encode(unquote_to_bytes(name)), _encode(unquote_to_bytes(value))))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _host(parts: SplitResult) -> str:
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ConfigError("cannot sign a URL whose host or port is malformed") from None
    if parts.scheme not in _DEFAULT_PORTS or not host:
        raise ConfigError("can only sign an absolute http:// or https:// URL with a host")
    if ":" in host:
        host = f"[{host}]"  # IPv6
    if port is not None and port != _DEFAULT_PORTS[parts.scheme]:
        host = f"{host}:{port}"
    return host


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def _canonical_request(
    method: str, parts: SplitResult, headers: Mapping[str, str], payload_hash: str
) -> tuple[str, str]:
    """``(canonical request, signed header list)``; ``headers`` are the final ones."""
    grouped: dict[str, list[str]] = {}
    for name, value in headers.items():
        grouped.setdefault(name.strip().lower(), []).append(" ".join(value.split()))
    names = sorted(grouped)
    canonical_headers = "".join(f"{n}:{','.join(grouped[n])}\n" for n in names)
    signed = ";".join(names)
    request = "\n".join(
        (
            method.upper(),
            _canonical_uri(parts.path),
            _canonical_query(parts.query),
            canonical_headers,
            signed,
            payload_hash,
        )
    )
    return request, signed


def _payload_hash(body: bytes | Body) -> str:
    """SHA-256 of the payload, hex (a ``Body`` resumes from its frozen segments' state)."""
    return hashlib.sha256(body).hexdigest() if isinstance(body, bytes) else body.sha256().hex()


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | Body,
    credentials: AwsCredentials,
    region: str,
    service: str = "bedrock",
    now: datetime | None = None,
    *,
    include_content_sha256: bool = False,
) -> dict[str, str]:
    """The headers that sign this request: merge them into the headers you send.

    Returns ``x-amz-date``, ``x-amz-content-sha256`` (only when
    ``include_content_sha256``), ``x-amz-security-token`` (when the credentials
    have a session token) and ``Authorization``. ``now`` defaults to the current
    time; a naive datetime is taken as UTC. A caller's own ``x-amz-content-sha256``
    is signed as given and, as botocore does, stands in for the payload hash.
    """
    if not method or not region or not service or "/" in region + service:
        raise ConfigError("SigV4 needs a method, a region and a service (without '/')")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError("cannot sign a malformed URL") from None
    when = datetime.now(timezone.utc) if now is None else now
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]

    out = {"x-amz-date": amz_date}
    if include_content_sha256:
        out["x-amz-content-sha256"] = _payload_hash(body)
    if credentials.session_token:
        out["x-amz-security-token"] = credentials.session_token
    to_sign = {"host": _host(parts)}
    for name, value in headers.items():
        lname = name.strip().lower()
        if lname not in out and (lname == "content-type" or lname.startswith("x-amz-")):
            to_sign[name] = value  # the caller's copy of a returned header is replaced
    to_sign.update(out)
    given = [v for k, v in to_sign.items() if k.lower() == "x-amz-content-sha256"]
    payload_hash = given[0] if given else _payload_hash(body)

    request, signed = _canonical_request(method, parts, to_sign, payload_hash)
    scope = f"{day}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        (_ALGORITHM, amz_date, scope, hashlib.sha256(request.encode("utf-8")).hexdigest())
    )
    key = _hmac(f"AWS4{credentials.secret_access_key}".encode(), day)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    out["Authorization"] = (
        f"{_ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
    return out
