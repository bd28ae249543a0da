"""Shared fixtures: a temporary database path, a runtime on it, and a clean environment;
and two hooks for a run on several workers (pytest-xdist, see ``addopts``): tests marked
``exclusive`` run alone, and the figures tests report are printed at the end of the run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

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


_TURN_WAIT_S = 1800.0  # past pytest-timeout's limit on the test another worker runs


def _lock(fd: int, how: int, what: str) -> None:
    """``lockf(fd, how)``, waiting at most ``_TURN_WAIT_S``. POSIX record locks, not
    ``flock``: a child a test forks (``multiprocessing``'s fork context) and leaves
    running would hold an inherited ``flock`` for good, and the next exclusive test on
    any worker would wait for it, holding the gate that every other test waits on."""
    import fcntl

    deadline = time.monotonic() + _TURN_WAIT_S
    while True:
        try:
            fcntl.lockf(fd, how | fcntl.LOCK_NB)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"waited {_TURN_WAIT_S:.0f} s for {what} (tests/conftest.py's _turn)"
                ) from None
            time.sleep(0.005)


@contextlib.contextmanager
def _turn(folder: Path, exclusive: bool) -> Iterator[None]:
    """A readers-writer lock between the workers of one run, held for one test: an
    ``exclusive`` test waits for the test running on every other worker to end, and
    no other test starts until it has ended. The gate lets a waiting exclusive test in
    ahead of tests that start after it asked."""
    import fcntl

    gate = os.open(folder / "srt-tests-gate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    held = os.open(folder / "srt-tests-run.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if exclusive:
            _lock(gate, fcntl.LOCK_EX, "the gate")
            _lock(held, fcntl.LOCK_EX, "the tests running on the other workers to end")
        else:
            _lock(gate, fcntl.LOCK_SH, "an exclusive test to end")
            _lock(held, fcntl.LOCK_SH, "an exclusive test to end")
            fcntl.lockf(gate, fcntl.LOCK_UN)
        yield
    finally:
        os.close(held)  # closing a descriptor releases this process's locks on its file
        os.close(gate)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    # A worker's base temporary directory is <the run's>/popen-gwN (xdist), so the
    # workers of one run share its parent.
    base = item.config.option.basetemp
    if not os.environ.get("PYTEST_XDIST_WORKER") or not base or os.name != "posix":
        return (yield)
    with _turn(Path(base).parent, item.get_closest_marker("exclusive") is not None):
        return (yield)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Soaks run for hours by design: pytest-timeout's 15 minutes (pyproject.toml) is for
    # the CI run, where a test that long is a hang.
    if os.environ.get("SRT_SOAK") == "1":
        for item in items:
            item.add_marker(pytest.mark.timeout(4 * 3600))


_FIGURES: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect the figure lines tests record (``rel_support.common.figures_line``):
    a worker's output never reaches the terminal, its reports' properties do."""
    if report.when == "teardown":
        _FIGURES.extend(str(v) for k, v in report.user_properties if k == "srt-figures")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _FIGURES:
        terminalreporter.section("srt figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)


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
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's database location, provider credentials or proxy,
    and none writes to the user data directory (the default database ``srt`` opens
    without ``--db`` or ``$SRT_DB``): the platform's is under this test's folder (not
    made unless used)."""
    for name in _ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


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


#: The apsw-sqlite3mc the encryption tests run against (the extra's lower bound).
MC_VERSION = "3.54.0.0"


@pytest.fixture(scope="session")
def mc_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """apsw-sqlite3mc installed in a directory of its own, for child processes only: its
    ``apsw`` module replaces the plain one, so it never enters this process."""
    target = tmp_path_factory.mktemp("sqlite3mc")
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
            *("--no-deps", "--target", str(target), f"apsw-sqlite3mc=={MC_VERSION}"),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return target


@pytest.fixture
def srv() -> Iterator[Any]:
    """srt.testing's provider server on loopback, taking ``support.SRV_KEY`` (many modules
    keep a ``srv`` of their own)."""
    from srt.testing import ProviderServer
    from support import SRV_KEY

    with ProviderServer(api_key=SRV_KEY) as server:
        yield server


@pytest.fixture
def server() -> Iterator[Any]:
    """srt.testing's provider server on loopback taking any key: the Agents SDK tests'
    (``agents_support`` holds their helpers)."""
    from srt.testing import ProviderServer

    with ProviderServer() as srv:
        yield srv


@pytest.fixture
def store_rt(store_url: str) -> Iterator[srt.Runtime]:
    """A ``Runtime`` once per engine (``store_url``)."""
    with srt.Runtime(store_url) as runtime:
        yield runtime


@pytest.fixture
def p(srv: Any) -> Iterator[Any]:
    """srt's OpenAI provider on ``srv``, closed when the test ends."""
    from support import MADE, openai_for

    provider = openai_for(srv)
    yield provider
    provider.close()
    if provider in MADE:
        MADE.remove(provider)


@pytest.fixture(params=[0o000, 0o022], ids=["umask000", "umask022"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The process's umask for the test: 000 (the most permissive) and 022 (the usual);
    what srt creates must be 0600/0700 under both."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)
