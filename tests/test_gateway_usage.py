"""``GET /v1/usage`` over loopback HTTP: the tenant's ledger totals with the billed and
failed requests apart and the rows counted by status, as ``docs/gateway.md`` says."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from gateway_support import Harness, harness


@pytest.fixture
def gw(db_path: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    with harness(db_path, monkeypatch) as h:
        yield h


def test_usage_counts_billed_requests_errors_and_statuses(gw: Harness) -> None:
    c = gw.client()
    c.responses.create(model="gpt-4o-mini", input="one")
    c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "two"}])
    gw.srv.fault("openai.chat", "status", code=400, message="refused upstream")
    with pytest.raises(openai.BadRequestError):
        c.responses.create(model="gpt-4o-mini", input="three")
    got = httpx.get(gw.url + "/usage", headers={"authorization": "Bearer sk-any"})
    assert got.status_code == 200
    usage = got.json()
    assert usage["object"] == "usage" and usage["tenant"] == "default"
    assert (usage["requests"], usage["billed"], usage["errors"]) == (3, 2, 1)
    assert usage["statuses"] == {"error": 1, "ok": 2}
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    for key in (
        "cache_read_tokens",
        "cache_write_tokens",
        "cache_write_1h_tokens",
        "reasoning_tokens",
        "cache_hit_share",
        "cost",
    ):
        assert key in usage
