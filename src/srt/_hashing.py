"""How a store names content: XXH3-128 (the default) or keyed BLAKE2b-128.

A store's message hashes and prefix chain are computed one way for its whole life, and
the way is recorded in the file (``srt_meta``), so that a store is always opened with
the hashing it was written with. ``Hashing`` holds the three functions the rest of srt
calls; for XXH3 they are ``srt._core``'s module functions themselves, so the default
path calls exactly what it called before keyed hashing existed.

Keyed BLAKE2b is for stores that deduplicate content from different trust domains, or
whose hashes others may see (an OpenAI ``prompt_cache_key`` is derived from one): a
party without the key can neither predict a hash nor plant content under one. The file
keeps a check value, the keyed digest of a fixed text, so a wrong key is refused
(``HashKeyError``) instead of silently failing to link anything. The key itself is never
stored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from . import _core
from .errors import ConfigError

__all__ = ["XXH3", "Hashing", "keyed"]

#: The mode names recorded in ``srt_meta``.
XXH3_NAME = "xxh3-128"
BLAKE2B_NAME = "blake2b-128-keyed"
_CHECK_TEXT = b"srt: this store's hash key"


@dataclass(frozen=True)
class Hashing:
    """A store's hashing: its name, the functions, and (keyed) the key's check value."""

    name: str
    digest: Callable[[bytes], bytes] = field(repr=False)
    chain: Callable[[bytes, bytes], bytes] = field(repr=False)
    chain_many: Callable[[bytes, list[bytes]], list[bytes]] = field(repr=False)
    check: bytes | None = field(default=None, repr=False)


XXH3 = Hashing(XXH3_NAME, _core.digest, _core.chain, _core.chain_many)


def keyed(hash_key: object) -> Hashing:
    """Keyed BLAKE2b-128 under ``hash_key`` (16 to 64 bytes; ``os.urandom(32)`` makes one)."""
    if not isinstance(hash_key, bytes):
        raise ConfigError(f"hash_key must be bytes, got {type(hash_key).__name__}")
    if not 16 <= len(hash_key) <= 64:
        raise ConfigError(f"hash_key must have 16 to 64 bytes, got {len(hash_key)}")
    hasher = _core.KeyedHasher(hash_key)
    return Hashing(
        BLAKE2B_NAME, hasher.digest, hasher.chain, hasher.chain_many, hasher.digest(_CHECK_TEXT)
    )
