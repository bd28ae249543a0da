"""``srt._core.decode_utf8``'s vector decoders (``_utf8.h``: AVX2, where the CPU has it,
and SSSE3) against its scalar loop (``vector=False``) and CPython's ``bytes.decode``:
every window mask valid text can make, characters on each side of the chunk and window
boundaries, runs of one size, and invalid bytes, which must give CPython's
``UnicodeDecodeError`` word for word."""

from __future__ import annotations

import itertools
import platform
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srt import _core

#: Characters of each UTF-8 length, with the smallest and largest code point of each
#: (the decoder's masks and shifts must keep every bit), UCS1 ones and UCS2 ones.
ONE = ["a", "\x00", "\x7f", "Z"]
TWO_UCS1 = ["\x80", "é", "\xff"]
TWO = [*TWO_UCS1, "\u0100", "λ", "п", "\u07ff"]
THREE = ["\u0800", "✓", "数", "\ud7ff", "\ue000", "“", "\uffff"]
BY_SIZE = {1: ONE, 2: TWO, 3: THREE}

#: The decoder's three forms: the widest vector loops the CPU has (AVX2 on most x86
#: CPUs), the 16-byte ones (SSSE3) and the scalar loop.
MODES: list[dict[str, bool]] = [{}, {"avx2": False}, {"vector": False}]


def test_the_widest_loops_the_cpu_has_are_the_ones_used() -> None:
    # The tests below hold every form to the same answers; this one shows that a CPU
    # with AVX2 runs the AVX2 form by default (the fastest: docs/bench.md, item 4).
    width = _core.utf8_vector_width()
    if not sys.platform.startswith("linux"):  # no /proc/cpuinfo to read the flags from
        assert width in (0, 16, 32)
        return
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
        flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    if platform.machine() in ("x86_64", "AMD64", "i686", "i386"):
        assert width == (32 if "avx2" in flags else 16 if "ssse3" in flags else 0)
    else:
        assert width == 0


def _same(text: str) -> None:
    """Both decoders give ``text`` back from its UTF-8, as a str of CPython's own kind,
    by themselves (``fallback=False``: CPython's decoder never asked)."""
    data = text.encode("utf-8")
    for mode in MODES:
        got = _core.decode_utf8(data, fallback=False, **mode)
        assert got == text, (mode, text)
        # CPython's own kind (1, 2 or 4 bytes) and, for one character below U+0100, its
        # one shared str (whose UTF-8 Python 3.13 keeps: a fresh '\x80' is 3 bytes less)
        theirs = data.decode("utf-8")
        assert sys.getsizeof(got) == sys.getsizeof(theirs), (mode, text)
        if len(text) == 1 and ord(text) < 0x100:
            assert got is theirs, (mode, text)


def _outcome(data: bytes, mode: dict[str, bool]) -> tuple[str, str | None]:
    """What ``decode_utf8`` makes of ``data`` (``("ok", text)`` or the error's message),
    checking on the way that srt's decoder itself refuses exactly what CPython does."""
    try:
        own: str | None = _core.decode_utf8(data, fallback=False, **mode)
    except ValueError as exc:
        assert type(exc) is ValueError  # not CPython's UnicodeDecodeError
        own = None
    try:
        got = _core.decode_utf8(data, **mode)
    except UnicodeDecodeError as exc:
        assert own is None
        return str(exc), None
    assert own == got
    return "ok", got


def _cpython(data: bytes) -> tuple[str, str | None]:
    try:
        return "ok", data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return str(exc), None


def _compositions(total: int) -> list[tuple[int, ...]]:
    """Every sequence of character sizes 1 to 3 that fills exactly ``total`` bytes."""
    if total == 0:
        return [()]
    return [(k, *rest) for k in (1, 2, 3) if k <= total for rest in _compositions(total - k)]


@pytest.mark.parametrize("window", [1, 2, 7])
def test_every_window_mask_of_valid_text(window: int) -> None:
    # Window j of the first chunk is bytes 8j..8j+15, its mask bits 8j..8j+10 of the
    # start mask (window 7's last 3 from the next chunk); the AVX2 decoder takes windows
    # in pairs, an odd one in the high half of a register, an even one in the low. The
    # lead-ins put 0, 1 or 2 continuation bytes of window j - 1's last character at its
    # start; then every sequence of sizes filling 11 bytes or more gives every mask
    # valid text can make there. The ASCII after makes the string long enough for a
    # chunk (80 bytes).
    # Without 3-byte characters and with UCS1 ones only, the same for UCS1 strings.
    n = 0
    pad = "a" * (8 * window - 8)
    for ucs1 in (False, True):
        by_size = {1: ONE, 2: TWO_UCS1} if ucs1 else BY_SIZE
        leads = ["a" * 8, "a" * 7 + "é"] + ([] if ucs1 else ["a" * 6 + "✓", "a" * 7 + "✓"])
        for total in (11, 12, 13):
            for sizes in _compositions(total):
                if ucs1 and 3 in sizes:
                    continue
                chars = "".join(
                    by_size[k][(i + total) % len(by_size[k])] for i, k in enumerate(sizes)
                )
                for lead in leads:
                    _same(pad + lead + chars + "b" * 70)
                    n += 1
    # 504, 927 and 1705 sequences of sizes 1..3 fill 11, 12 and 13 bytes; 144, 233 and
    # 377 of sizes 1..2
    assert n == 4 * (504 + 927 + 1705) + 2 * (144 + 233 + 377)


@pytest.mark.parametrize("mid", ["é", "\xff", "λ", "\u07ff", "✓", "\uffff"])
def test_characters_across_every_chunk_and_window_boundary(mid: str) -> None:
    # Chunks are 64 bytes (while 80 remain), windows 8: a pair of characters after
    # 0..130 ASCII bytes straddles each boundary of the first chunks in turn.
    for other in ("a", "é", "λ", "✓", "\uffff"):
        for at in range(131):
            _same("a" * at + mid + other + "x" * 70 + mid)
            _same("a" * at + other + mid + other * 3)


@pytest.mark.parametrize("char", [*TWO, *THREE, "a"])
def test_runs_of_one_size(char: str) -> None:
    for n in range(0, 200):
        _same(char * n)
        _same("a" + char * n)  # the run one byte off the windows
        _same(char * n + "a" * (n % 17))


def test_latin1_text_stays_ucs1() -> None:
    for n in range(15, 41):
        for i, c in enumerate(TWO_UCS1):
            text = ("naïve café " * n)[: 3 * n] + c * (i + n % 5)
            _same(text)
            _same(text * 3)


def test_short_strings_of_every_mix() -> None:
    # Under 80 bytes no SSSE3 chunk fits (the scalar loop's part); from 32 bytes the AVX2
    # decoder takes them as its padded last chunk.
    for a, b, c in itertools.product(["a", "é", "λ", "✓"], repeat=3):
        for n in range(15, 41):
            _same((a + b * 2 + c) * (n // 4) + a * (n % 4))


#: Strings of characters of every size, ASCII runs longer and shorter than a window.
_TEXT = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=30),
        st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0x7FF), max_size=8),
        st.text(
            alphabet=st.characters(
                min_codepoint=0x800, max_codepoint=0xFFFF, exclude_categories=("Cs",)
            ),
            max_size=8,
        ),
    ),
    min_size=1,
    max_size=20,
).map("".join)


@settings(max_examples=1500)
@given(_TEXT)
def test_vector_matches_scalar_and_cpython(text: str) -> None:
    _same(text)
    _same(text * 5)


_BAD = [
    b"\xc3",  # cut short: a lead at the very end
    b"\xe6\x95",  # cut short
    b"\xc0\x80",  # overlong 2-byte
    b"\xc1\xbf",  # overlong 2-byte
    b"\xe0\x80\x80",  # overlong 3-byte
    b"\xe0\x9f\xbf",  # overlong 3-byte
    b"\xed\xa0\x80",  # a surrogate (U+D800)
    b"\xed\xbf\xbf",  # a surrogate (U+DFFF)
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b"\xf8\x88\x80\x80\x80",  # a 5-byte form
    b"\xff",
    b"\x80",  # a continuation byte alone
    b"\xce\xbb\xbb",  # one continuation too many
    b"\xe2\x9c",  # a lead followed by ASCII
]


@pytest.mark.parametrize("bad", _BAD)
@pytest.mark.parametrize("body", ["a", "é", "λ✓a"])
def test_invalid_bytes_give_cpythons_error(bad: bytes, body: str) -> None:
    # Long text, and text too short for an SSSE3 chunk (80 bytes and 64 characters), which
    # the scalar loop checks all of (and the AVX2 decoder as its padded last chunk).
    for text in (body * 200, body * (64 // len(body.encode()) + 1), "✓" * 30):
        for at in (0, 1, 7, 8, 15, 16, 55, 56, 63, 64, 100, 127, 128, 129):  # characters in
            head, tail = text[:at].encode("utf-8"), text[at:].encode("utf-8")
            for data in (head + bad + tail, head + bad):
                want = _cpython(data)
                assert want[1] is None
                for mode in MODES:
                    assert _outcome(data, mode) == want, mode


@settings(max_examples=800)
@given(_TEXT, st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=3))
def test_damaged_bytes_give_cpythons_answer(text: str, flips: list[tuple[int, int]]) -> None:
    data = bytearray((text * 4).encode("utf-8"))
    for at, value in flips:
        if data:
            data[at % len(data)] = value
    want = _cpython(bytes(data))
    for mode in MODES:
        assert _outcome(bytes(data), mode) == want, mode
