"""Encryption at rest (issue 13, item 8), with the real apsw-sqlite3mc.

apsw-sqlite3mc ships its own ``apsw`` module, which pip installs over the plain
``apsw`` srt depends on (or under it, depending on the order: see
``bench/encryption_install.py``, which checks the documented install in fresh venvs).
So these tests install the pinned wheel into a directory of their own (``pip install
--no-deps --target``) and run each scenario in a child Python that finds that ``apsw``
first: one SQLite library per process, never two.

* at rest: a byte search of the database, ``-wal`` and ``-shm`` (while open and after
  close) finds no message text, the full-text index included, and the key is in no
  file of the database's directory and in no ``repr`` or error text;
* a wrong key, a missing key, or a key for a plain file: ``EncryptionKeyError``, found
  by reading, and the files are byte-for-byte unchanged;
* rekey: plain -> encrypted -> new passphrase -> raw bytes -> plain, the data intact;
* backup while a writer appends: the copy is encrypted with the same key and holds
  every turn acknowledged before the backup began;
* the CLI: ``--key-file`` (refused when others may read it or when it sits beside the
  database), ``srt rekey``, ``srt backup``;
* keyed hashing and encryption together.

In this process (plain apsw) a key is a ``ConfigError`` that says how to install.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import srt
from rel_support.common import SUPPORT, TESTS, child_env, emit
from srt.store.sqlite import keys as _keys

CHILD = str(SUPPORT / "encryption_child.py")


def scenario(name: str, mc_site: Path, where: Path) -> dict[str, Any]:
    env = child_env()
    env["PYTHONPATH"] = f"{mc_site}:{TESTS}"
    p = subprocess.run(
        [sys.executable, CHILD, name, str(where)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    result: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    return result


def test_nothing_readable_at_rest(
    mc_site: Path, tmp_path: Path, capsys: Any, tmp_path_factory: Any
) -> None:
    r = scenario("at_rest", mc_site, tmp_path)
    emit("encryption_at_rest", r, capsys, tmp_path_factory.getbasetemp())
    assert r["apsw"].startswith("SQLite3 Multiple Ciphers")
    assert r["wal_bytes_checked_while_open"] > 0
    assert r["marker_in_files"] == {} and not r["plain_header"]
    assert r["key_in_db_directory"] == {} and r["key_in_texts"] == 0
    assert r["search_hits"] > 0  # the text is searchable through the key


def test_a_wrong_or_missing_key_is_refused_by_reading(
    mc_site: Path, tmp_path: Path, capsys: Any, tmp_path_factory: Any
) -> None:
    r = scenario("wrong_keys", mc_site, tmp_path)
    emit("encryption_wrong_keys", r, capsys, tmp_path_factory.getbasetemp())
    for case in ("wrong key", "wrong bytes key", "no key", "key for a plain file"):
        assert r[case] == "EncryptionKeyError", (case, r[case])
    assert r["encrypted file unchanged"] and r["plain file unchanged"]
    assert r["key_in_error_texts"] == 0 and r["right key reads"]


def test_rekey_both_ways(mc_site: Path, tmp_path: Path) -> None:
    r = scenario("rekey", mc_site, tmp_path)
    assert r["plain -> key: marker in files"] == {}
    for case in ("plain -> key: old (no key) refused", "key -> new: old key refused"):
        assert r[case] == "EncryptionKeyError", (case, r)
    for case in (
        "plain -> key: reads",
        "key -> new: reads",
        "new -> bytes key: reads",
        "decrypted: reads without a key",
        "decrypted: verify ok",
    ):
        assert r[case] is True, (case, r)


def test_the_backup_of_an_encrypted_store_stays_encrypted(
    mc_site: Path, tmp_path: Path, capsys: Any, tmp_path_factory: Any
) -> None:
    r = scenario("backup", mc_site, tmp_path)
    emit("encryption_backup", r, capsys, tmp_path_factory.getbasetemp())
    assert r["report_encrypted"] and not r["copy_plain_header"] and r["marker_in_copy"] == 0
    assert r["copy_without_key"] == "EncryptionKeyError"
    assert r["copy_verify_ok"] and r["turns_acknowledged_before_it_began"] >= 20
    assert r["all_of_them_in_copy"]


def test_the_cli_with_key_files(mc_site: Path, tmp_path: Path) -> None:
    r = scenario("cli", mc_site, tmp_path)
    assert r["append"] == 0
    assert r["verify"][0] == 0 and r["verify"][1].startswith("ok:")
    assert r["show"] == 1
    for case, words in (
        ("no key", "encrypted"),
        ("key file readable by others", "readable by others"),
        ("key file beside the database", "own directory"),
        ("old key after rekey", "does not open"),
    ):
        code, text = r[case]
        assert code == 1 and text.startswith("srt: error: ") and words in text, (case, text)
    assert r["rekey"][0] == 0
    assert r["new key after rekey"][0] == 0
    assert r["backup"][0] == 0 and r["backup verify"][0] == 0
    assert r["marker_in_files"] == {}


def test_keyed_hashing_and_encryption_together(mc_site: Path, tmp_path: Path) -> None:
    r = scenario("hashing_and_key", mc_site, tmp_path)
    assert r["hashing"] == "blake2b-128-keyed" and r["reads"] and r["verify_ok"]
    assert r["without hash key"] == "HashKeyError"
    assert r["without key"] == "EncryptionKeyError"


def test_without_the_cipher_build_a_key_says_how_to_install(tmp_path: Path) -> None:
    assert not _keys.available()  # this process has the plain apsw
    with pytest.raises(srt.ConfigError, match="apsw-sqlite3mc") as info:
        srt.Runtime(str(tmp_path / "srt.db"), key="k")
    assert "pip install" in str(info.value)
    assert not (tmp_path / "srt.db").exists()


def test_a_file_that_looks_encrypted_is_named_so(tmp_path: Path) -> None:
    """Bytes 16-23 of a SQLite3 Multiple Ciphers file stay in the clear (page size,
    versions, the cipher's reserved bytes): without a key it is an EncryptionKeyError,
    not a generic "not a database"."""
    header = bytes(range(16)) + bytes.fromhex("4000020220402020") + bytes(76)
    path = tmp_path / "srt.db"
    path.write_bytes(header + bytes(16384 - 100))
    with pytest.raises(srt.EncryptionKeyError, match="encrypted"):
        srt.Runtime(str(path))
    assert path.read_bytes()[:100] == header
    assert not _keys.looks_encrypted(b"SQLite format 3\x00" + header[16:])


@pytest.mark.parametrize("bad", [b"", "", 5, "a\x00b"])
def test_a_bad_key_is_a_config_error(tmp_path: Path, bad: object) -> None:
    with pytest.raises(srt.ConfigError):
        srt.Runtime(str(tmp_path / "srt.db"), key=bad)  # type: ignore[arg-type]
