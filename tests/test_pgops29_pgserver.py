"""``srt.testing.pgserver`` under root: ``SRT_PG_OS_USER`` names the account the server
runs as. One naming no account was passed over for ``postgres`` (else ``nobody``), so a
typo ran the server as another account without a word; now it is an error naming the
variable, raised before any directory is made."""

from __future__ import annotations

import os
import pwd
import tempfile
from pathlib import Path

import pytest

from srt.testing import pgserver
from srt.testing.pgserver import _os_user


@pytest.fixture
def as_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setattr(os, "geteuid", lambda: 0)  # (the account is chosen only under root)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_an_os_user_naming_no_account_is_an_error_naming_the_variable(
    as_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SRT_PG_OS_USER", "srt-no-such-account")
    with pytest.raises(RuntimeError) as caught:
        pgserver.PgServer()
    text = str(caught.value)
    assert "SRT_PG_OS_USER" in text and "'srt-no-such-account'" in text
    assert "names no account" in text
    assert list(as_root.iterdir()) == []  # (no server directory left behind)


def test_an_os_user_naming_an_account_is_the_one_used(
    as_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    me = pwd.getpwuid(os.getuid())
    monkeypatch.setenv("SRT_PG_OS_USER", me.pw_name)
    found = _os_user()
    assert found is not None and found.pw_name == me.pw_name
    monkeypatch.delenv("SRT_PG_OS_USER")
    fallback = _os_user()  # (unset: postgres, else nobody, as before)
    assert fallback is not None and fallback.pw_name in ("postgres", "nobody")
