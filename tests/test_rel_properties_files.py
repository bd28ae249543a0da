"""Bad input, property-tested (4): damaged srt files (bytes overwritten or flipped,
truncated) and files that are not srt's or are newer (header fields rewritten) give a
``StoreError`` subclass or the right data, and the file is never modified; invalid UTF-8
in a text column; every bit of every stored session name. Part of the bad-input
properties: ``test_rel_properties``'s docstring says what is checked and how many
examples run.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest
from hypothesis import given
from hypothesis import strategies as st

import srt
from rel_support.common import connect
from srt.store.sqlite import db as _db
from test_rel_properties import PROPERTY, run

# -- 4. damaged, foreign and newer files ---------------------------------------------------


@pytest.fixture(scope="module")
def srt_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, dict[str, Any]]:
    """A small srt file, closed cleanly, and the messages of each session."""
    path = str(tmp_path_factory.mktemp("good") / "srt.db")
    with srt.Runtime(path) as rt:
        for i in range(3):
            s = rt.session(f"s{i}")
            for j in range(4):
                s.append({"role": "user", "content": f"question {i}.{j} " + "é✓" * (50 * j)})
                s.append({"role": "assistant", "content": f"answer {i}.{j}"})
        want = {f"s{i}": rt.session(f"s{i}").messages() for i in range(3)}
    assert not os.path.exists(path + "-wal")
    return Path(path).read_bytes(), want


@pytest.fixture
def fast_dir() -> Iterator[Path]:
    """A directory on tmpfs when there is one (writing the file is most of the cost)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    d = Path(tempfile.mkdtemp(prefix="srt-rel-", dir=base))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def header(data: bytes, app_id: int, version: int) -> bytes:
    out = bytearray(data)
    out[60:64] = struct.pack(">I", version)  # PRAGMA user_version
    out[68:72] = struct.pack(">I", app_id)  # PRAGMA application_id
    return bytes(out)


def _adds_nothing(version: int) -> bool:
    """Whether migrating from ``version`` to the current one changes nothing over the
    current tables (v3 is empty: the search index it used to create is now built by the
    first search; v9 rebuilds ``sessions`` only where it was not rebuilt)."""
    return all(
        (isinstance(step, str) and not step.strip()) or step is _db.MIGRATIONS[8]
        for step in _db.MIGRATIONS[version:]
    )


def expected_for_header(app_id: int, version: int) -> str | None:
    signed = version - 2**32 if version >= 2**31 else version
    if app_id != _db.APPLICATION_ID:
        return "NotAnSrtDatabaseError"
    if signed > _db.SCHEMA_VERSION:
        return "SchemaVersionError"
    if signed < 1:
        return "CorruptionError"  # a version srt never writes
    if signed == _db.SCHEMA_VERSION or _adds_nothing(signed):
        # (An older version whose migrations add nothing has the current tables: it is
        # that older file, and opening it migrates it.)
        return "read correctly"
    return "CorruptionError"  # an older version over newer tables: nothing is migrated


def _migrates(data: bytes) -> bool:
    """Whether srt would migrate ``data`` (an srt file at an older version) on opening."""
    (version,) = struct.unpack(">i", data[60:64])
    (app_id,) = struct.unpack(">I", data[68:72])
    return app_id == _db.APPLICATION_ID and 1 <= version < _db.SCHEMA_VERSION


def _only_migrated(before: bytes, after: bytes) -> bool:
    """``after`` is ``before`` with the current schema version, and otherwise the same
    but for the header's change counters (offsets 24 and 92), which a commit updates."""

    def rest(b: bytes) -> bytes:
        return b[:24] + b[28:60] + b[64:92] + b[96:]

    return (
        len(after) == len(before)
        and rest(after) == rest(before)
        and struct.unpack(">i", after[60:64])[0] == _db.SCHEMA_VERSION
    )


def test_damaged_foreign_and_newer_files(
    srt_file: tuple[bytes, dict[str, Any]], fast_dir: Path, capsys: Any, tmp_path_factory: Any
) -> None:
    good, want = srt_file
    path = str(fast_dir / "srt.db")
    stats: Counter[str] = Counter()
    ids = st.sampled_from([0, _db.APPLICATION_ID, 1]) | st.integers(0, 2**32 - 1)
    versions = st.sampled_from(
        [0, 1, _db.SCHEMA_VERSION - 1, _db.SCHEMA_VERSION, _db.SCHEMA_VERSION + 1, 2**31]
    ) | st.integers(0, 2**32 - 1)

    @PROPERTY
    @given(
        st.one_of(
            st.tuples(st.just("truncate"), st.integers(1, len(good) - 1), st.none()),
            st.tuples(
                st.just("overwrite"),
                st.integers(0, len(good) - 1),
                st.binary(min_size=1, max_size=64),
            ),
            st.tuples(st.just("flip"), st.integers(0, len(good) - 1), st.integers(0, 7)),
            st.tuples(st.just("header"), ids, versions),
        )
    )
    def prop(case: tuple[str, Any, Any]) -> None:
        kind, a, b = case
        expect = None
        if kind == "truncate":
            data = good[:a]
        elif kind == "overwrite":
            data = (good[:a] + b + good[a + len(b) :])[: len(good)]
        elif kind == "flip":
            data = good[:a] + bytes([good[a] ^ (1 << b)]) + good[a + 1 :]
        else:
            data = header(good, a, b)
            expect = expected_for_header(a, b)
        Path(path).write_bytes(data)
        for suffix in ("-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        try:
            with srt.Runtime(path) as rt:
                got = {i.name: rt.session(i.name, create=False).messages() for i in rt.sessions()}
        except srt.StoreError as exc:
            assert not isinstance(exc, apsw.Error)
            assert type(exc) is not srt.StoreError, exc  # a subclass that names the problem
            assert str(exc)
            outcome = type(exc).__name__
        else:
            # It opened: then what it returned must be the truth, never altered text.
            assert got == want, "srt returned wrong messages from a damaged file"
            outcome = "read correctly"
        if expect is not None:
            assert outcome == expect
        after = Path(path).read_bytes()
        if outcome == "read correctly" and _migrates(data):
            # Only a file whose migrations add nothing opens at an older version (any
            # other is CorruptionError): migrating it changes its version and nothing else.
            assert _only_migrated(data, after), "the migration changed more than the version"
            outcome += ", migrated"
        else:
            assert after == data, "the file was modified"
        stats[f"{kind}: {outcome}"] += 1

    run(
        "properties_bad_files",
        prop,
        stats,
        capsys,
        tmp_path_factory,
        lambda: {"file_bytes": len(good)},
    )


@pytest.mark.parametrize(
    ("table", "column"), [("nodes", "status"), ("sessions", "name"), ("nodes", "meta")]
)
def test_invalid_utf8_in_a_text_column(
    srt_file: tuple[bytes, dict[str, Any]], tmp_path: Path, table: str, column: str
) -> None:
    """A damaged TEXT value made apsw raise UnicodeDecodeError through srt (found by
    the bad-files property); it is a CorruptionError, and the file is left as it was."""
    good, _ = srt_file
    path = str(tmp_path / "srt.db")
    Path(path).write_bytes(good)
    with connect(path) as conn:
        conn.execute(f"UPDATE {table} SET {column} = CAST(x'91ff' AS TEXT) WHERE rowid = 1")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    data = Path(path).read_bytes()
    with pytest.raises(srt.CorruptionError), srt.Runtime(path) as rt:
        for info in rt.sessions():
            rt.session(info.name, create=False).messages()
    assert Path(path).read_bytes() == data


def test_every_bit_of_every_stored_session_name(
    srt_file: tuple[bytes, dict[str, Any]], fast_dir: Path
) -> None:
    # A name is held twice, in the table's row and in its name index. A flipped bit in
    # either copy must give the true messages or a typed error, never another session's
    # messages and never a listed session that cannot be opened.
    good, want = srt_file
    path = fast_dir / "srt.db"
    spots = [m.start() for name in want for m in re.finditer(re.escape(name.encode()), good)]
    assert len(spots) >= 2 * len(want)  # the row and the index entry of each
    outcomes: Counter[str] = Counter()
    for at in spots:
        for offset in range(2):
            for bit in range(8):
                data = bytearray(good)
                data[at + offset] ^= 1 << bit
                path.write_bytes(data)
                try:
                    with srt.Runtime(str(path)) as rt:
                        got = {
                            i.name: rt.session(i.name, create=False).messages()
                            for i in rt.sessions()
                        }
                except srt.StoreError as exc:
                    assert type(exc) is not srt.StoreError, exc
                    outcomes[type(exc).__name__] += 1
                else:
                    assert got == want, f"byte {at + offset} bit {bit}: wrong messages"
                    outcomes["read correctly"] += 1
    assert outcomes["CorruptionError"] > 0
