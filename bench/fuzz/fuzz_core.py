"""Fuzz ``srt._core`` against its pure-Python twin (``tests/reference_core.py``).

One input is a byte string read as a little program of operations on the core:
``digest``, ``chain``, ``chain_many``, ``assemble``/``assembled_length`` with
arbitrary parts and separators, ``FragmentCache`` put/get/clear with odd sizes, and
calls with wrong types (``None``, ``str``, ``bytearray``, ``int``). Every result must
equal the reference's; every refusal must be ``TypeError``/``ValueError`` from both.
A crash, a sanitizer report or a mismatch is a finding.

CI drives ``run(data)`` through Hypothesis (``tests/test_rel_fuzz_core.py``). The
soak runs it under atheris (libFuzzer) against an ASan build of the core, built
apart from the source tree so the normal build is left alone::

    apt-get install clang libclang-rt-14-dev      # Debian; clang with its runtime
    pip install atheris
    mkdir -p /tmp/asan/srt && cp src/srt/*.py src/srt/py.typed /tmp/asan/srt/
    cp -r src/srt/*/ /tmp/asan/srt/
    python -m cython -3 --directive boundscheck=False,wraparound=False \
        src/srt/_core.pyx -o /tmp/asan/_core.c
    clang -fsanitize=address,fuzzer-no-link -g -O1 -fPIC -shared \
        $(python3-config --includes) /tmp/asan/_core.c \
        -o /tmp/asan/srt/_core$(python3-config --extension-suffix)
    LD_PRELOAD="$(python -c 'import atheris, os; print(os.path.join(atheris.path(),
        "asan_with_fuzzer.so"))')" ASAN_OPTIONS=detect_leaks=0 PYTHONPATH=/tmp/asan \
        python bench/fuzz/fuzz_core.py -max_total_time=600 -rss_limit_mb=4096

(``detect_leaks=0``: CPython itself holds memory until exit, which LeakSanitizer
reports.) Without atheris, ``python bench/fuzz/fuzz_core.py --hypothesis N`` runs
the same target for N random inputs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

_TESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests")
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

import reference_core as ref  # noqa: E402
from srt import _core  # noqa: E402


class _Reader:
    """Consume the fuzz input: small integers and byte strings, zeros once it runs out."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.i = 0

    def more(self) -> bool:
        return self.i < len(self.data)

    def byte(self) -> int:
        if self.i >= len(self.data):
            return 0
        b = self.data[self.i]
        self.i += 1
        return b

    def blob(self, limit: int = 64) -> bytes:
        n = self.byte() % (limit + 1)
        if n == limit and self.byte() & 1:  # now and then a much larger one
            n = limit * (1 + self.byte())
        out = self.data[self.i : self.i + n]
        self.i += n
        return out.ljust(n, b"\x00")

    def digest_or_odd(self) -> bytes:
        """16 bytes mostly; now and then another length."""
        if self.byte() % 8 == 0:
            return self.blob(40)
        out = self.data[self.i : self.i + 16].ljust(16, b"\x01")
        self.i += 16
        return out

    def value(self) -> Any:
        """A value of a wrong type now and then."""
        kind = self.byte() % 12
        if kind == 0:
            return None
        if kind == 1:
            return self.blob(8).decode("latin-1")
        if kind == 2:
            return bytearray(self.blob(8))
        if kind == 3:
            return self.byte()
        return self.blob()


def _same(core_fn: Callable[..., Any], ref_fn: Callable[..., Any], *args: Any) -> Any:
    """The core and the twin give the same result, or the core refuses.

    The core is typed ``bytes`` and may refuse (``TypeError``) what the duck-typed twin
    would take; a ``ValueError`` from the core must be one from the twin too.
    """
    try:
        got = core_fn(*args)
    except TypeError:
        return None
    except ValueError as exc:
        try:
            ref_fn(*args)
        except ValueError:
            return None
        raise AssertionError(f"core refused ({exc!r}) what the reference accepts") from exc
    want = ref_fn(*args)
    assert got == want, (got, want)
    return got


def _cache_ops(r: _Reader) -> None:
    budget = r.byte() * 7
    core = _core.FragmentCache(budget)
    twin = ref.FragmentCache(budget)
    for _ in range(r.byte() % 24):
        op = r.byte() % 4
        key = r.byte() % 6
        if op == 0:
            value = r.blob(16)
            nbytes = r.byte() - 40  # negative: charged len(value)
            core.put(key, value, nbytes)
            twin.put(key, value, nbytes)
        elif op == 1:
            assert core.get(key) == twin.get(key)
        elif op == 2:
            assert (key in core) == (key in twin)
        else:
            core.clear()
            twin.clear()
        assert len(core) == len(twin)
        assert (core.nbytes, core.hits, core.misses, core.evictions) == (
            twin.nbytes,
            twin.hits,
            twin.misses,
            twin.evictions,
        )


def run(data: bytes) -> None:
    """The fuzz target: interpret ``data`` as operations; raise on any disagreement."""
    r = _Reader(data)
    steps = 0
    while r.more() and steps < 64:
        steps += 1
        op = r.byte() % 7
        if op == 0:
            blob = r.value()
            _same(_core.digest, ref.digest, blob)
        elif op == 1:
            a, b = r.digest_or_odd(), r.digest_or_odd()
            _same(_core.chain, ref.chain, a, b)
        elif op == 2:
            parent = r.digest_or_odd()
            hashes = [r.digest_or_odd() for _ in range(r.byte() % 9)]
            _same(_core.chain_many, ref.chain_many, parent, hashes)
        elif op in (3, 4):
            head, sep, tail = r.blob(), r.blob(4), r.blob()
            parts = [r.blob() for _ in range(r.byte() % 12)]
            if op == 4 and parts:
                parts[r.byte() % len(parts)] = r.value()  # maybe a wrong type inside
            got = _same(_core.assemble, ref.assemble, head, parts, sep, tail)
            n = _same(_core.assembled_length, ref.assembled_length, head, parts, sep, tail)
            if got is not None:
                assert n == len(got)
        elif op == 5:
            _cache_ops(r)
        else:
            x, y, z = r.value(), r.value(), r.value()
            _same(_core.assemble, ref.assemble, x, [y], z, b"")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--hypothesis":
        import random

        rng = random.Random(0)
        for _ in range(int(sys.argv[2])):
            run(rng.randbytes(rng.randint(0, 2048)))
        print(f"{sys.argv[2]} inputs, 0 findings")
        return
    import atheris

    atheris.Setup(sys.argv, run)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
