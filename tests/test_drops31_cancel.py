"""drops31: ``POST /v1/responses/{id}/cancel`` never waits for a worker slot. The route
ran on the app's pool, whose threads are the slots upstream calls hold: with every slot
busy, a cancel (what frees a queued response's place) waited like any store read, until
one freed. Here every slot is held (``slots_busy``) and the cancel goes through the
``openai`` SDK, with a client timeout as the bound on the wait (nothing timed asserted:
the old gateway answered only once a slot freed, which never happens while they are
held, so the SDK timed out)."""

from __future__ import annotations

from gateway_support import Harness
from test_gateway29_shapes import as_openai_response
from test_gateway31_background import _ended, gw, slots_busy  # noqa: F401 (gw: the fixture)


def test_a_cancel_is_answered_with_every_slot_busy(gw: Harness) -> None:  # noqa: F811
    c = gw.client(timeout=10)
    with slots_busy(gw):
        sent = sum(gw.srv.requests.values())
        r = c.responses.create(model="gpt-4o-mini", input="never mind", background=True)
        assert r.status == "queued"
        cancelled = c.responses.cancel(r.id)
        assert (cancelled.status, cancelled.output) == ("cancelled", [])
    ended = as_openai_response(_ended(c, r.id))
    assert (ended.status, ended.output, ended.error) == ("cancelled", [], None)
    assert sum(gw.srv.requests.values()) == sent  # the holders' only: none for it
    assert gw.app.state.srt.slots.queued == 0
