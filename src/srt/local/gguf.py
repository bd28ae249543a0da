"""The one fact srt reads from a GGUF model file without loading it: its trained context.

A GGUF file starts with a header (``GGUF``, a version, the tensor and key counts) and
then its metadata as typed key/value pairs; the trained context is the key
``<general.architecture>.context_length`` (``llama.context_length`` for SmolLM2).
llama.cpp's server caps each slot's context at that length, whatever ``n_ctx`` asks for
(``load_model``: "the slot context ... exceeds the training context of the model ...
capping"; rope scaling options do not change it), so the provider refuses a larger
``ctx_size`` before anything starts (``srt.providers.local``).

Only the metadata is read, key by key, and reading stops as soon as both keys are
seen. A file that is not GGUF, is cut short or holds nonsense gives ``None``: llama.cpp
then says what is wrong with it when the server starts.
"""

from __future__ import annotations

import struct
from typing import IO

__all__ = ["context_length"]

_MAGIC = b"GGUF"
#: Sizes of the fixed-width value types, by GGUF type number.
_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_INTS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 10: "<Q", 11: "<q"}
_STRING, _ARRAY = 8, 9
#: Past these, the file is taken as nonsense rather than read on (a real header's keys
#: number in the tens, its strings are short; token lists are arrays, skipped).
_MAX_KEYS = 1 << 16
_MAX_STRING = 1 << 20


class _Bad(Exception):
    pass


def _read(f: IO[bytes], n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise _Bad
    return data


def _u32(f: IO[bytes]) -> int:
    return int(struct.unpack("<I", _read(f, 4))[0])


def _u64(f: IO[bytes]) -> int:
    return int(struct.unpack("<Q", _read(f, 8))[0])


def _string(f: IO[bytes], v1: bool) -> bytes:
    n = _u32(f) if v1 else _u64(f)
    if n > _MAX_STRING:
        raise _Bad
    return _read(f, n)


def _value(f: IO[bytes], kind: int, v1: bool) -> int | bytes | None:
    """The value of type ``kind`` (an int or a string; ``None`` for any other, skipped)."""
    if kind in _INTS:
        return int(struct.unpack(_INTS[kind], _read(f, _FIXED[kind]))[0])
    if kind in _FIXED:
        _read(f, _FIXED[kind])
        return None
    if kind == _STRING:
        return _string(f, v1)
    if kind == _ARRAY:
        item = _u32(f)
        n = _u32(f) if v1 else _u64(f)
        if item in _FIXED:
            f.seek(_FIXED[item] * n, 1)
        else:
            for _ in range(n):
                _value(f, item, v1)
        return None
    raise _Bad


def context_length(path: str) -> int | None:
    """The model's trained context in tokens (GGUF ``<arch>.context_length``), or
    ``None`` when the file does not say (or is not a GGUF file srt can read)."""
    try:
        with open(path, "rb") as f:
            if _read(f, 4) != _MAGIC:
                return None
            v1 = _u32(f) == 1  # (version 1 counted in 32 bits, later ones in 64)
            count = _u32 if v1 else _u64
            count(f)  # (the tensors)
            keys = count(f)
            if keys > _MAX_KEYS:
                return None
            arch: str | None = None
            lengths: dict[str, int] = {}
            for _ in range(keys):
                key = _string(f, v1).decode("utf-8", "replace")
                value = _value(f, _u32(f), v1)
                if key == "general.architecture" and isinstance(value, bytes):
                    arch = value.decode("utf-8", "replace")
                elif key.endswith(".context_length") and isinstance(value, int):
                    lengths[key] = value
                if arch is not None and f"{arch}.context_length" in lengths:
                    break
    except (OSError, _Bad, struct.error, ValueError, OverflowError):
        return None
    found = lengths.get(f"{arch}.context_length") if arch is not None else None
    return found if found is not None and found > 0 else None
