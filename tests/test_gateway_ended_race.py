"""A read of a response in progress that races its run's end: the run writes how it
ended and lets go of the response between the read and the read's liveness check. The
read must not take the response for one its worker left behind and mark it
``incomplete`` over the end the run stored (a background response that failed was seen
``incomplete`` under load). The official ``openai`` SDK starts the response;
srt.testing's server is the upstream, streaming without end."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from gateway_support import Harness, harness
from srt.gateway.records import Records


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


def _status(h: Harness, rid: str) -> str:
    found = Records(h.rt.store).get_response("default", rid)
    assert found is not None
    return str(found[0]["response"]["status"])


def _until(what: Any, cap: float = 30.0) -> None:
    """Wait for ``what()`` (a bound on the wait; no time is asserted)."""
    deadline = time.monotonic() + cap
    while not what():
        assert time.monotonic() < deadline, "the run did not get there"
        time.sleep(0.01)


def test_a_read_racing_the_runs_end_keeps_the_end_the_run_stored(
    gw: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = gw.client()
    gw.srv.fault("*", "endless", interval=0.05)
    rid = c.responses.create(model="gpt-4o-mini", input="slowly", background=True).id
    service = gw.gateway
    _until(lambda: rid in service.cancels and _status(gw, rid) == "in_progress")
    real = Records.get_response
    raced = threading.Event()

    def get_response(self: Records, tenant: str, key: str) -> Any:
        found = real(self, tenant, key)  # in progress, as read
        if key == rid and not raced.is_set():
            raced.set()
            service.cancels[rid].set()  # the run ends now, after the read ...
            _until(lambda: rid not in service.cancels)  # ... its end stored, let go
        return found

    monkeypatch.setattr(Records, "get_response", get_response)
    seen = service.get("default", rid)
    assert raced.is_set() and seen["status"] == "in_progress"  # (the read, as it was)
    monkeypatch.setattr(Records, "get_response", real)
    assert _status(gw, rid) == "cancelled"  # the run's end, not "incomplete" over it
    assert c.responses.retrieve(rid).status == "cancelled"
