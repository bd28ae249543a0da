"""``pg_support.bouncer()`` with no ``$SRT_TEST_PG_URL`` (a plain ``pytest`` on a
developer's machine: the tests start their own server): it held ``_lock`` and asked
``server_url()``, which takes ``_lock`` again, so every PgBouncer test hung for good
(``pip install '.[test]' && pytest`` without ``.ci/run``'s server)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import pg_support


def test_the_bouncer_starts_when_the_tests_start_their_own_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = pg_support.server_url()  # (the server this run uses: stands for a started one)

    class Started:
        def __init__(self) -> None:
            self.url = url

    monkeypatch.delenv("SRT_TEST_PG_URL", raising=False)
    monkeypatch.setattr(pg_support, "_server", [Started()])
    monkeypatch.setattr(pg_support, "_bouncers", [])
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(pg_support.bouncer()), daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "bouncer() did not return: it waits on its own lock"
    (found,) = got
    try:
        assert found.url.startswith("postgresql://")
    finally:
        found.stop(remove=True)
