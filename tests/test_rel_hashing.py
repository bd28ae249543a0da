"""Content-address safety (issue 13, item 10): keyed BLAKE2b hashing, and forged collisions.

* ``_core.KeyedHasher`` equals its pure-Python twin (``tests/reference_core.py``) on
  any key and input (Hypothesis);
* a store created with ``hash_key`` records its hashing in the file; its message
  hashes and prefix chain are the twin's keyed ones; opening it without the key, with
  another key, or opening an XXH3 store with a key, is a ``HashKeyError`` and changes
  nothing (an older file is not even migrated);
* forged collisions, planted with hashes computed by the twin: a row whose hash names
  other bytes, and a node whose prefix hash names another history. srt refuses to link
  the wrong content (``CorruptionError``, nothing written); in a keyed store a forger
  without the key cannot even aim at the right hash, and the true content is stored.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_core as ref
import srt
from rel_support.common import connect, make_old_db
from srt import _core
from srt.message import canonicalize
from support import plant_node, snapshot

HK = bytes(range(32))
A = {"role": "user", "content": "transfer 10 EUR to Alice"}
B = {"role": "user", "content": "transfer 9999 EUR to Mallory"}


def body(msg: dict[str, str]) -> bytes:
    return canonicalize(msg)[0]


@settings(max_examples=500, deadline=None)
@given(
    st.binary(min_size=16, max_size=64),
    st.binary(max_size=4096),
    st.lists(st.binary(min_size=16, max_size=16), max_size=8),
)
def test_keyed_hasher_equals_its_twin(key: bytes, data: bytes, hashes: list[bytes]) -> None:
    fast, slow = _core.KeyedHasher(key), ref.KeyedHasher(key)
    assert fast.digest(data) == slow.digest(data)
    parent = fast.digest(data)
    assert fast.chain_many(parent, hashes) == slow.chain_many(parent, hashes)
    if hashes:
        assert fast.chain(parent, hashes[0]) == slow.chain(parent, hashes[0])
    assert fast.digest(data) != _core.digest(data)


def test_the_key_is_never_shown_or_pickled() -> None:
    h = _core.KeyedHasher(HK)
    assert HK.hex() not in repr(h) and "***" in repr(h)
    with pytest.raises(TypeError):
        pickle.dumps(h)
    for bad in (b"short", b"x" * 65):
        with pytest.raises(ValueError):
            _core.KeyedHasher(bad)


def test_a_keyed_store_hashes_with_its_key_and_records_it(tmp_path: Path) -> None:
    path = str(tmp_path / "srt.db")
    twin = ref.KeyedHasher(HK)
    with srt.Runtime(path, hash_key=HK) as rt:
        assert rt.hashing == "blake2b-128-keyed"
        s = rt.session("s")
        s.append(A, {"role": "assistant", "content": "done"})
        key = s.cache_key
        assert rt.store.verify().ok
    with connect(path) as conn:
        mode = conn.execute("SELECT value FROM srt_meta WHERE key = 'hashing'").get
        rows = conn.execute(
            "SELECT n.hash, m.body, n.prefix FROM nodes n JOIN messages m ON m.hash = n.hash "
            "ORDER BY n.depth"
        ).fetchall()
        stored = b"".join(
            v.encode() if isinstance(v, str) else bytes(v)
            for (v,) in conn.execute("SELECT value FROM srt_meta")
        )
    assert mode == "blake2b-128-keyed"
    prefix = ref.ROOT
    for h, b, p in rows:
        assert h == twin.digest(b) and h != ref.digest(b)
        prefix = twin.chain(prefix, h)
        assert p == prefix
    assert key == "srt-" + twin.chain(ref.ROOT, rows[0][0]).hex()
    assert HK not in stored and HK not in Path(path).read_bytes()


def test_the_key_must_match_the_store(tmp_path: Path) -> None:
    keyed = str(tmp_path / "keyed.db")
    plain = str(tmp_path / "plain.db")
    with srt.Runtime(keyed, hash_key=HK) as rt:
        rt.session("s").append(A)
    with srt.Runtime(plain) as rt:
        rt.session("s").append(A)
    cases = [
        (keyed, {}, "open it with its hash_key"),
        (keyed, {"hash_key": os.urandom(32)}, "not this store's"),
        (plain, {"hash_key": HK}, "XXH3"),
    ]
    for path, kw, words in cases:
        before = snapshot(path)
        with pytest.raises(srt.HashKeyError, match=words):
            srt.Runtime(path, **kw)
        assert snapshot(path) == before
    old = str(tmp_path / "old" / "srt.db")
    make_old_db(old, 3)
    before = Path(old).read_bytes()
    with pytest.raises(srt.HashKeyError):
        srt.Runtime(old, hash_key=HK)
    with connect(old) as conn:
        assert conn.execute("PRAGMA user_version").get == 3  # the migration rolled back
    with srt.Runtime(old) as rt:  # and it opens (and migrates) as the XXH3 store it is
        assert rt.hashing == "xxh3-128" and len(rt.session("old-0").messages()) == 6
    assert Path(old).read_bytes() != before


@pytest.mark.parametrize("bad", ["a string key", b"too short", b"x" * 65, 5])
def test_a_bad_hash_key_is_a_config_error(tmp_path: Path, bad: object) -> None:
    with pytest.raises(srt.ConfigError, match="hash_key"):
        srt.Runtime(str(tmp_path / "srt.db"), hash_key=bad)  # type: ignore[arg-type]


def _plant_message(path: str, h: bytes, content: bytes) -> None:
    """``content`` stored under the hash ``h`` (a root node of its own naming it)."""
    with connect(path) as conn:
        plant_node(conn, None, 1, h, ref.chain(_core.ROOT, h), content)


def test_a_forged_message_collision_is_refused(tmp_path: Path) -> None:
    """XXH3 is not cryptographic: a forger plants B under the hash of A (computed with
    the twin). srt compares bytes on every dedup hit and refuses to link B as A."""
    path = str(tmp_path / "srt.db")
    with srt.Runtime(path) as rt:
        rt.session("s").append({"role": "system", "content": "a bank"})
    _plant_message(path, ref.digest(body(A)), body(B))
    before = snapshot(path)
    with srt.Runtime(path) as rt:
        s = rt.session("s")
        with pytest.raises(srt.CorruptionError, match="collision"):
            s.append(A)
        assert s.messages() == [{"role": "system", "content": "a bank"}]
    assert snapshot(path) == before


def test_a_forged_prefix_collision_is_refused(tmp_path: Path) -> None:
    """A node planted below the root under A's hash and the prefix hash of [system, A],
    but naming B's bytes: srt finds it by (hash, parent), compares the bytes and refuses
    to link B as A."""
    path = str(tmp_path / "srt.db")
    system = {"role": "system", "content": "a bank"}
    with srt.Runtime(path) as rt:
        rt.session("s").append(system)
    with connect(path) as conn:
        root, root_prefix = conn.execute("SELECT id, prefix FROM nodes").fetchone()
        forged = ref.chain(root_prefix, ref.digest(body(A)))
        plant_node(conn, root, 2, ref.digest(body(A)), forged, body(B))
    before = snapshot(path)
    with srt.Runtime(path) as rt:
        s = rt.session("s")
        with pytest.raises(srt.CorruptionError, match="collision"):
            s.append(A)
        assert s.messages() == [system]
    assert snapshot(path) == before


def test_in_a_keyed_store_a_forger_without_the_key_cannot_aim(tmp_path: Path) -> None:
    path = str(tmp_path / "srt.db")
    with srt.Runtime(path, hash_key=HK) as rt:
        rt.session("s").append({"role": "system", "content": "a bank"})
    # Without the key the forger can only guess the public hash: it names nothing here.
    _plant_message(path, ref.digest(body(A)), body(B))
    with srt.Runtime(path, hash_key=HK) as rt:
        s = rt.session("s")
        s.append(A)
        assert s.messages()[-1] == A
    # With the key leaked (the twin computes the keyed hash), the forgery is refused.
    twin = ref.KeyedHasher(HK)
    other = str(tmp_path / "other.db")
    with srt.Runtime(other, hash_key=HK) as rt:
        rt.session("s").append({"role": "system", "content": "a bank"})
    _plant_message(other, twin.digest(body(A)), body(B))
    before = snapshot(other)
    with srt.Runtime(other, hash_key=HK) as rt, pytest.raises(srt.CorruptionError):
        rt.session("s").append(A)
    assert snapshot(other) == before
