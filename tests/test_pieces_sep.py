"""An assembly of a format whose glue is one separator keeps only the fragments
(``Assembly(fmt.sep)``): it builds, byte for byte, what an assembly keeping the glue
builds (``Assembly(b"")``), through every way a session extends, cuts and sends it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srt import _core
from srt._pieces import Assembly
from srt.errors import SrtError
from srt.message import canonical_text, canonicalize
from srt.wire import FORMATS
from srt.wire.base import TEXT_ROLES, Target, WireFormat

SEP_FORMATS = sorted(name for name, f in FORMATS.items() if f.sep)

text = st.text(st.characters(codec="utf-8"), max_size=30)
plain = st.builds(lambda r, t: {"role": r, "content": t}, st.sampled_from(TEXT_ROLES), text)
other = st.sampled_from(
    [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "result"},
        {"role": "assistant", "content": ""},
        {
            "role": "assistant",
            "content": "thought",
            "artifacts": [
                {"provider": "openai", "model": "m", "type": "reasoning", "data": {"id": "r"}}
            ],
        },
    ]
)
messages = st.lists(st.one_of(plain, plain, other), min_size=1, max_size=12)


def _body(msg: dict[str, Any]) -> bytes:
    return canonical_text(msg) or canonicalize(msg)[0]


def _feed(asm: Assembly, fmt: WireFormat, bodies: list[bytes]) -> None:
    """Extend ``asm`` as the builder does: identity formats by their bodies, text
    fragments where every body is plain text, else each message rendered."""
    target = Target(fmt.provider, "gpt-4.1-mini")
    if fmt.identity:
        asm.extend_identity(fmt, target, bodies)
        return
    texts = fmt.text_frags()
    if texts is not None:
        codes, datas = _core.text_frags(bodies, texts.wraps, texts.empty)
        if all(d for d in datas):
            asm.extend_texts(fmt, texts, codes, [d for d in datas if d is not None])
            return
    asm.extend(fmt, [fmt.render(b, target) for b in bodies])


def _run(fmt: WireFormat, sep: bytes, first: list[bytes], cut: int, rest: list[bytes]) -> Any:
    """The records and bodies of an assembly extended by ``first``, cut back to ``cut``
    messages and extended by ``rest`` (or the error that refused it)."""
    asm = Assembly(sep)
    seg = _core.Segments(min_bytes=0, segment_bytes=8, merge_bytes=64, sep=sep)
    try:
        _feed(asm, fmt, first)
        before = _core.digest(b"".join(seg.build(b"{", asm.pieces, b"}")))
        k = min(cut, asm.n)
        asm.truncate(k)
        seg.truncate(len(asm.pieces))
        _feed(asm, fmt, rest)
    except SrtError as exc:
        return type(exc).__name__, str(exc)
    n = asm.n
    # what ``request_after`` sends: the pieces after message i, none before the first
    after = []
    for i in range(n):
        tail = asm.pieces_after(i)
        if tail and not sep:
            tail[0] = b""
        after.append(_core.assemble(b"", tail, sep, b""))
    return (
        n,
        before,
        asm.build(b'{"m":[', asm.pieces, b"]}"),
        b"".join(seg.build(b'{"m":[', asm.pieces, b"]}")),
        [asm.pieces[asm.message_piece(i)] for i in range(n) if asm.message_piece(i) >= 0],
        after,
        list(asm.system),
        list(asm.nbytes),
        list(asm.blocks),
        list(asm.ntokens),
        asm.system_count,
        asm.last_role(),
        asm.notes(),
    )


@pytest.mark.parametrize("name", SEP_FORMATS)
def test_the_formats_with_one_separator(name: str) -> None:
    fmt = FORMATS[name]
    assert fmt.glue(None, "user") == b"" and fmt.glue("user", "assistant") == fmt.sep


def test_a_format_with_role_glue_keeps_it() -> None:
    assert FORMATS["anthropic.messages"].sep == b"" == FORMATS["bedrock.converse"].sep


@settings(max_examples=150, deadline=None)
@given(first=messages, rest=messages, cut=st.integers(0, 14))
def test_fragments_joined_by_the_separator_build_what_the_glue_builds(
    first: list[dict[str, Any]], rest: list[dict[str, Any]], cut: int
) -> None:
    for name in SEP_FORMATS:
        fmt = FORMATS[name]
        a, b = [_body(m) for m in first], [_body(m) for m in rest]
        assert _run(fmt, fmt.sep, a, cut, b) == _run(fmt, b"", a, cut, b), name


def test_a_separated_assembly_keeps_one_slot_a_message() -> None:
    fmt = FORMATS["openai.chat"]
    bodies = [_body({"role": "user", "content": f"m{i}"}) for i in range(50)]
    kept, glued = Assembly(fmt.sep), Assembly(b"")
    for asm in (kept, glued):
        _feed(asm, fmt, bodies[:40])
        for b in bodies[40:]:
            _feed(asm, fmt, [b])
    assert kept.pieces == bodies
    assert len(glued.pieces) == 2 * len(bodies)
    assert kept.build(b"[", kept.pieces, b"]") == b"[" + b",".join(bodies) + b"]"
