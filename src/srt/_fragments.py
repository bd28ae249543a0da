"""A session's messages made into one format's fragments, for its ``Assembly``: the
identity formats' bodies as they are, plain text messages' fragments made from their
bytes (``_core.text_frags``), every other message rendered, long messages' fragments
kept in the runtime's fragment cache (``Shared.fragments``) for other sessions that
hold them. ``Builder`` calls ``extend`` with the messages new since its last build."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from . import _core
from ._pieces import Assembly
from ._shared import INTERN_MIN_BYTES, Shared
from .wire.base import Frag, Target, TextFrags, WireFormat

__all__ = ["extend"]

#: A placeholder for a fragment not rendered yet.
_NOT_YET = Frag("message", "", b"")


def extend(
    shared: Shared,
    asm: Assembly,
    fmt: WireFormat,
    target: Target,
    hashes: Sequence[bytes],
    bodies: list[bytes],
    i: int,
    j: int,
) -> None:
    if fmt.identity:
        asm.extend_identity(fmt, target, bodies[i:j])
        return
    texts = fmt.text_frags()
    if texts is not None:
        extend_texts(shared, asm, fmt, target, texts, hashes, bodies, i, j)
        return
    asm.extend(fmt, [render(shared, asm, fmt, target, hashes, bodies, k) for k in range(i, j)])


def render(
    shared: Shared,
    asm: Assembly,
    fmt: WireFormat,
    target: Target,
    hashes: Sequence[bytes],
    bodies: list[bytes],
    k: int,
) -> Frag:
    """Message ``k``'s fragment: rendered, or from the runtime's fragment cache."""
    body = bodies[k]
    if len(body) < INTERN_MIN_BYTES:
        # A short message is rendered again when needed (a few microseconds)
        # rather than cached: cached, its small objects would outlive the
        # session among the session's own, and keep their memory pages.
        asm.serialized += 1
        return fmt.render(body, target)
    ckey = (hashes[k], fmt.name, target.model)
    frag: Frag | None = shared.fragments.get(ckey)
    if frag is None:
        frag = fmt.render(body, target)
        asm.serialized += 1
        # What an entry costs besides its bytes: the key, the Frag, two slots.
        shared.fragments.put(ckey, frag, len(frag.data) + 400)
    return frag


def extend_texts(
    shared: Shared,
    asm: Assembly,
    fmt: WireFormat,
    target: Target,
    texts: TextFrags,
    hashes: Sequence[bytes],
    bodies: list[bytes],
    i: int,
    j: int,
) -> None:
    """``_extend`` for a format with ``text_frags``: plain text messages' fragments
    made from their bytes (``_core.text_frags``), the others rendered; the same
    fragments, cache entries and counts as rendering each, glued run by run."""
    sub = bodies[i:j]
    codes, datas = _core.text_frags(sub, texts.wraps, texts.empty)
    slow: dict[int, Frag] = {}  # the messages ``render`` makes (by index in ``sub``)
    k = codes.find(255)
    while k >= 0:
        slow[k] = _NOT_YET
        k = codes.find(255, k + 1)
    asm.serialized += len(sub) - len(slow)
    big = [k for k, n in enumerate(map(len, sub)) if n >= INTERN_MIN_BYTES]
    cache, name, model = shared.fragments, fmt.name, target.model
    # The fragment cache sees the messages in order, as when each is rendered.
    for k in sorted({*slow, *big}) if slow else big:
        data = datas[k]
        if data is None:
            slow[k] = render(shared, asm, fmt, target, hashes, bodies, i + k)
            continue
        ckey = (hashes[i + k], name, model)
        frag: Frag | None = cache.get(ckey)
        if frag is None:
            c = codes[k]
            cache.put(ckey, Frag(texts.kinds[c], texts.roles[c], data), len(data) + 400)
        else:
            asm.serialized -= 1
            datas[k] = frag.data
    made = cast("list[bytes]", datas)  # None where ``slow`` has the fragment
    if not slow:
        asm.extend_texts(fmt, texts, codes, made)
        return
    start = 0
    for k in [*sorted(slow), j - i]:
        if k > start:
            asm.extend_texts(fmt, texts, codes[start:k], made[start:k])
        if k in slow:
            asm.extend(fmt, [slow[k]])
        start = k + 1
