"""``srt._core`` against its pure-Python twin ``reference_core``: identical bytes.

The core is compiled Cython working on raw pointers; every function is compared
with the obvious Python spelling over arbitrary binary input: digests, chains,
assembly, hash sequences, and digests stable across processes. The output buffer is
in ``test_core_buffer``, the fragment cache in ``test_core_fragcache``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_core as ref
from srt import _core

FAST = settings(max_examples=2000)

digests = st.binary(min_size=16, max_size=16)
parts_lists = st.lists(st.binary(max_size=64), max_size=20)


# -- constants ---------------------------------------------------------------------


def test_constants_match_reference() -> None:
    assert _core.DIGEST_SIZE == ref.DIGEST_SIZE == 16
    assert _core.ROOT == ref.ROOT == b"\x00" * 16
    assert isinstance(_core.ROOT, bytes)


# -- digest and chain -------------------------------------------------------------


@FAST
@given(st.binary(max_size=4096))
def test_digest_matches_reference(data: bytes) -> None:
    got = _core.digest(data)
    assert isinstance(got, bytes)
    assert len(got) == 16
    assert got == ref.digest(data)


def test_digest_known_vectors() -> None:
    # XXH3-128, seed 0, canonical (big-endian) form.
    assert _core.digest(b"a").hex() == "a96faf705af16834e6c632b61e964e1f"
    assert _core.digest(b"").hex() == "99aa06d3014798d86001c324468d497f"
    assert ref.digest(b"a").hex() == "a96faf705af16834e6c632b61e964e1f"


def test_digest_of_large_input_matches_reference() -> None:
    data = bytes(range(256)) * 8192  # 2 MiB crosses every XXH3 code path
    assert _core.digest(data) == ref.digest(data)


@FAST
@given(digests, digests)
def test_chain_matches_reference(parent: bytes, message_hash: bytes) -> None:
    got = _core.chain(parent, message_hash)
    assert len(got) == 16
    assert got == ref.chain(parent, message_hash)
    assert got == _core.digest(parent + message_hash)


@FAST
@given(digests, st.lists(digests, max_size=30))
def test_chain_many_matches_reference(parent: bytes, hashes: list[bytes]) -> None:
    got = _core.chain_many(parent, hashes)
    assert got == ref.chain_many(parent, hashes)
    assert len(got) == len(hashes)
    # chain_many is chain folded over the list.
    cur = parent
    for h, p in zip(hashes, got, strict=True):
        cur = _core.chain(cur, h)
        assert p == cur


@FAST
@given(
    st.binary().filter(lambda b: len(b) != 16),
    digests,
    st.booleans(),
)
def test_chain_rejects_inputs_that_are_not_16_bytes(bad: bytes, good: bytes, first: bool) -> None:
    args = (bad, good) if first else (good, bad)
    with pytest.raises(ValueError, match="16 bytes"):
        _core.chain(*args)
    with pytest.raises(ValueError, match="16 bytes"):
        ref.chain(*args)
    with pytest.raises(ValueError, match="16 bytes"):
        _core.chain_many(good, [good, bad] if not first else [bad])


def test_chain_many_of_nothing_is_empty() -> None:
    assert _core.chain_many(_core.ROOT, []) == [] == ref.chain_many(ref.ROOT, [])


@pytest.mark.parametrize(
    "call",
    [
        "c.digest(bytearray(b'a'))",
        "c.chain(bytearray(16), bytes(16))",
        "c.chain_many(bytes(16), [bytearray(16)])",
        "c.assemble(b'', [bytearray(b'x')], b',', b'')",
        "c.assembled_length(b'', ['x'], b',', b'')",
    ],
)
def test_core_rejects_non_bytes(call: str) -> None:
    with pytest.raises(TypeError):
        eval(call, {"c": _core})


@pytest.mark.parametrize(
    "call",
    [
        "c.chain(None, bytes(16))",
        "c.chain(bytes(16), None)",
        "c.chain_many(None, [bytes(16)])",
        "c.assemble(None, [b'x'], b',', b'')",
        "c.assemble(b'', [b'x'], None, b'')",
        "c.assemble(b'', [b'x'], b',', None)",
        "c.assembled_length(None, [b'x'], b',', b'')",
        "c.OutputBuffer(0).build(None, [b'x'], b',', b'')",
        "c.OutputBuffer(0).build(b'', [b'x', None], b',', b'')",
        "c.OutputBuffer(0).build(b'', [b'x'], None, b'')",
        "c.OutputBuffer(0).build(b'', [b'x'], b',', None)",
        "c.common_prefix(None, [b'x'])",
        "c.find_in_any([b'x', None], b'y')",
        "c.find_in_any([b'x'], None)",
    ],
)
def test_core_rejects_none_instead_of_bytes(call: str) -> None:
    """``None`` must be a TypeError, never read as a bytes object.

    Cython lets ``None`` through a ``bytes`` argument unless it is declared
    ``not None``; ``PyBytes_GET_SIZE``/``PyBytes_AS_STRING`` on ``None`` read
    memory that is not a bytes object. Run in a child process so an invalid
    read cannot take the test run down with it.
    """
    script = textwrap.dedent(
        f"""
        import srt._core as c
        try:
            r = {call}
        except TypeError:
            print("TypeError")
        else:
            print("accepted", repr(r))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "TypeError"


# -- assembly ---------------------------------------------------------------------------


@FAST
@given(st.binary(max_size=64), parts_lists, st.binary(max_size=8), st.binary(max_size=64))
def test_assemble_matches_reference(
    head: bytes, parts: list[bytes], sep: bytes, tail: bytes
) -> None:
    got = _core.assemble(head, parts, sep, tail)
    expected = ref.assemble(head, parts, sep, tail)
    assert got == expected
    assert got == head + sep.join(parts) + tail
    assert _core.assembled_length(head, parts, sep, tail) == len(expected)
    assert ref.assembled_length(head, parts, sep, tail) == len(expected)


def test_assemble_large_fragments() -> None:
    parts = [bytes([i]) * (300_000 + i) for i in range(8)]
    got = _core.assemble(b"{", parts, b",", b"}")
    assert got == ref.assemble(b"{", parts, b",", b"}")
    assert _core.assembled_length(b"{", parts, b",", b"}") == len(got)


def test_assemble_does_not_alias_its_inputs() -> None:
    parts = [b"abc", b"def"]
    out = _core.assemble(b"", parts, b"", b"")
    assert out == b"abcdef"
    assert parts == [b"abc", b"def"]
    single = _core.assemble(b"", [b"x" * 100], b"", b"")
    assert single == b"x" * 100


@FAST
@given(st.lists(st.binary(max_size=40), max_size=8), st.binary(max_size=4))
def test_find_in_any_matches_reference(items: list[bytes], needle: bytes) -> None:
    assert _core.find_in_any(items, needle) == ref.find_in_any(items, needle)


@FAST
@given(st.lists(st.text(alphabet='ab,"', max_size=40).map(str.encode), max_size=8))
def test_find_in_any_small_alphabet(items: list[bytes]) -> None:
    for needle in (b',"a', b"a", b'""', b'ab,"ab'):
        assert _core.find_in_any(items, needle) == ref.find_in_any(items, needle)


@FAST
@given(
    st.lists(st.binary(max_size=4), max_size=12),
    st.lists(st.binary(max_size=4), max_size=6),
    st.lists(st.binary(max_size=4), max_size=6),
    st.integers(-1, 20),
)
def test_common_prefix_matches_reference(
    shared: list[bytes], a_tail: list[bytes], b_tail: list[bytes], limit: int
) -> None:
    a = shared + a_tail
    b = [bytes(bytearray(x)) for x in shared] + b_tail  # equal, and often not identical
    got = _core.common_prefix(a, b, limit)
    assert got == ref.common_prefix(a, b, limit)
    assert got >= min(len(shared), limit if limit >= 0 else len(shared))


@FAST
@given(st.lists(digests, max_size=12), st.lists(digests, max_size=6), st.integers(-1, 20))
def test_hash_seq_behaves_as_a_list(hashes: list[bytes], other: list[bytes], limit: int) -> None:
    """``HashSeq`` packs hashes; read back, it is the list it was given."""
    seq = _core.HashSeq(b"".join(hashes))
    assert len(seq) == len(hashes)
    assert list(seq) == hashes == seq[:]
    for i in range(-len(hashes), len(hashes)):
        assert seq[i] == hashes[i]
    assert seq[1:-1] == hashes[1:-1] and seq[::2] == hashes[::2]
    for h in hashes + other:
        assert (h in seq) == (h in hashes)
    assert b"short" not in seq and None not in seq
    grown = seq.head(len(hashes))
    grown.extend(other)
    assert list(grown) == hashes + other and list(seq) == hashes  # head() is a copy
    assert seq.packed() == b"".join(hashes)
    b = _core.HashSeq(b"".join(other))
    assert seq.common(b, limit) == ref.common_prefix(hashes, other, limit)
    assert seq.common(grown, limit) == ref.common_prefix(hashes, hashes + other, limit)
    with pytest.raises(IndexError):
        seq[len(hashes)]


@FAST
@given(
    st.lists(digests, max_size=12),
    st.integers(0, 14),
    st.lists(digests, max_size=4),
    st.lists(digests, max_size=4),
    st.integers(-1, 20),
)
def test_hash_seq_common_with_a_head_of_it(
    hashes: list[bytes], cut: int, more: list[bytes], new: list[bytes], limit: int
) -> None:
    """A head (a rewind or an edit) remembers how much it shares with its source, and
    both may grow after: ``common`` still equals the list comparison, either way round."""
    seq = _core.HashSeq(b"".join(hashes))
    head = seq.head(cut)
    seq.extend(more)
    head.extend(new)
    want = ref.common_prefix(hashes + more, hashes[:cut] + new, limit)
    assert seq.common(head, limit) == want == head.common(seq, limit)
    again = head.head(max(0, cut - 1))  # a head of a head
    assert again.common(seq, limit) == ref.common_prefix(list(again), list(seq), limit)


def test_hash_seq_rejects_what_is_not_a_hash() -> None:
    with pytest.raises(ValueError):
        _core.HashSeq(b"x" * 17)
    seq = _core.HashSeq()
    with pytest.raises(ValueError):
        seq.append(b"x" * 15)
    with pytest.raises(TypeError):
        seq.append(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        seq.head(-1)
    assert len(seq) == 0 and list(seq) == []


# -- stability across processes ---------------------------------------------------------

_FIXED_INPUTS = [b"", b"a", b"\x00" * 1000, "héllo ✓ 𝄞".encode(), bytes(range(256)) * 5]


def test_digests_are_stable_across_processes() -> None:
    script = textwrap.dedent(
        """
        import srt._core as c
        inputs = [b"", b"a", b"\\x00" * 1000, "héllo ✓ 𝄞".encode(), bytes(range(256)) * 5]
        prefix = c.ROOT
        for data in inputs:
            d = c.digest(data)
            prefix = c.chain(prefix, d)
            print(d.hex(), prefix.hex())
        print(*[p.hex() for p in c.chain_many(c.ROOT, [c.digest(x) for x in inputs])])
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        # Another hash seed: str hashing differs, the digests must not.
        env={**os.environ, "PYTHONHASHSEED": "12345", "PYTHONIOENCODING": "utf-8"},
    )
    lines = proc.stdout.splitlines()
    prefix = _core.ROOT
    expected = []
    for data in _FIXED_INPUTS:
        d = _core.digest(data)
        prefix = _core.chain(prefix, d)
        expected.append(f"{d.hex()} {prefix.hex()}")
    hashes = [_core.digest(x) for x in _FIXED_INPUTS]
    expected.append(" ".join(p.hex() for p in _core.chain_many(_core.ROOT, hashes)))
    assert lines == expected
    assert lines[1].split()[0] == "a96faf705af16834e6c632b61e964e1f"
    assert lines[-1].split() == [p.hex() for p in ref.chain_many(ref.ROOT, hashes)]
