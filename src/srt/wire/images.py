"""Which images a target takes, checked as a request is built (pure, no I/O).

A stored image is an ``image_url`` part: an absolute URL or a base64 data URL with an
image media type and some data (``srt.message`` refuses any other as it is appended).
What each provider takes of those differs, and each format says so in its
``WireFormat`` attributes:

- OpenAI and Azure OpenAI (``openai.chat``, ``openai.responses``, ``azure.*``): PNG,
  JPEG, GIF and WebP, from an ``http(s)`` URL or a data URL, with a ``detail`` of
  ``auto``, ``low``, ``high`` or ``original`` (the SDKs' ``ImageURL.detail`` and
  ``ImageDetail``). ``check`` refuses any other with an ``UnsupportedFeatureError``
  naming the format, the type, scheme or detail and the part, before anything is sent.
- An OpenAI-compatible server (llama.cpp, vLLM, Ollama) speaks the same formats and may
  take more (a BMP, vLLM's ``file://`` URLs with ``--allowed-local-media-path``):
  ``any_image`` gives the format's copy that checks nothing, which
  ``OpenAICompatible`` requests are built with (its ``any_image`` flag), as
  ``WireFormat.keyed`` gives Azure's copy that sends a cache key.
- Anthropic and Bedrock check their own (``wire.anthropic.blocks``: their media types
  map to their block shapes).
"""

from __future__ import annotations

import copy
from typing import Any, Protocol, TypeVar

from ..errors import UnsupportedFeatureError

__all__ = ["OPENAI_DETAILS", "OPENAI_SCHEMES", "OPENAI_TYPES", "any_image", "check", "checks"]

#: The image media types OpenAI takes (PNG, JPEG, WEBP, non-animated GIF); Azure's too.
OPENAI_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
#: The image URLs OpenAI takes: fetched from the web, or base64 data.
OPENAI_SCHEMES = frozenset({"http", "https", "data"})
#: The ``detail`` an image may carry there.
OPENAI_DETAILS = frozenset({"auto", "low", "high", "original"})


class _Rules(Protocol):
    name: str
    image_types: frozenset[str] | None
    image_schemes: frozenset[str] | None
    image_details: frozenset[str] | None


F = TypeVar("F", bound=_Rules)

#: ``any_image``'s copies: id of the format -> (format, copy).
_COPIES: dict[int, tuple[Any, Any]] = {}


def checks(fmt: _Rules) -> bool:
    """Whether ``check`` refuses any image for ``fmt`` (not for an ``any_image`` copy)."""
    return (fmt.image_types, fmt.image_schemes, fmt.image_details) != (None, None, None)


def any_image(fmt: F) -> F:
    """``fmt`` sending every image as it is stored (any media type, URL scheme or
    detail), for an OpenAI-compatible server: a copy of the same name, made once; ``fmt``
    itself when it checks nothing."""
    if not checks(fmt):
        return fmt
    found = _COPIES.get(id(fmt))
    if found is None or found[0] is not fmt:
        dup = copy.copy(fmt)
        dup.image_types = dup.image_schemes = dup.image_details = None
        found = _COPIES[id(fmt)] = (fmt, dup)
    out: F = found[1]
    return out


def check(fmt: _Rules, url: str, where: str, detail: Any = None) -> None:
    """Refuse an image (its ``url`` and ``detail``; ``where`` names its part) that
    ``fmt``'s provider does not take: a scheme not in ``image_schemes``, a data URL's
    media type not in ``image_types``, a ``detail`` not in ``image_details``."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if fmt.image_schemes is not None and scheme not in fmt.image_schemes:
        raise UnsupportedFeatureError(
            fmt.name,
            f"{scheme[:20] or 'scheme-less'} image URLs ({where}): its provider takes "
            "http(s) URLs and base64 data URLs",
        )
    if fmt.image_types is not None and scheme == "data":
        media = url[5:].split(",", 1)[0].split(";", 1)[0].strip().lower()
        if media not in fmt.image_types:
            raise UnsupportedFeatureError(fmt.name, f"{media[:40] or 'untyped'} images ({where})")
    details = fmt.image_details
    if detail is not None and details is not None and detail not in details:
        raise UnsupportedFeatureError(
            fmt.name,
            f"the image detail {str(detail)[:40]!r} ({where}): its provider takes "
            f"{', '.join(sorted(details))}",
        )
