"""Shared fixtures: a temporary database path, a runtime on it, and a clean environment."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import srt


def pytest_configure(config: pytest.Config) -> None:
    # When a Hypothesis test fails, Hypothesis imports libcst to suggest a patch, and
    # libcst subclasses the deprecated mypy_extensions.TypedDict. Under
    # filterwarnings=error that warning would turn the failure into an INTERNALERROR
    # hiding the real report, so this one third-party warning is ignored.
    config.addinivalue_line(
        "filterwarnings",
        "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning",
    )
    # A shell starts a background job (`cmd &` without job control, as CI runners and
    # nohup do) with SIGINT ignored, and an ignored signal stays ignored in every child.
    # The Ctrl-C tests send SIGINT to children (srt chat, the local provider's parent),
    # so they need the default disposition whatever started pytest.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


settings.register_profile(
    "ci",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci")

_ENV_VARS = (
    "SRT_DB",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    # The developer's proxy: the sync path now honours it as the async one did, and a
    # test's loopback traffic must never go to it.
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    # (set, httpx ignores HTTP_PROXY: a CGI request's header could have set it)
    "REQUEST_METHOD",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's database location, provider credentials or proxy."""
    for name in _ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    """A database file path inside this test's temporary directory (not yet created)."""
    return str(tmp_path / "srt.db")


@pytest.fixture
def rt(db_path: str) -> Iterator[srt.Runtime]:
    """A runtime on ``db_path``, closed after the test."""
    runtime = srt.Runtime(db_path)
    try:
        yield runtime
    finally:
        runtime.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL store URL on a schema of this test's own (see ``pg_support``)."""
    from pg_support import fresh_url

    with fresh_url() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a test's store lives, once per engine: a SQLite file, then a PostgreSQL
    schema. Tests that hold for every engine take this instead of ``db_path``."""
    if request.param == "sqlite":
        yield str(tmp_path / "srt.db")
        return
    from pg_support import fresh_url

    with fresh_url() as url:
        yield url
