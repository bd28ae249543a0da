"""A reply the upstream cut off at ``max_output_tokens`` is an ``incomplete`` response
with ``incomplete_details.reason`` ``max_output_tokens``, as api.openai.com answers, over
every upstream whose API stops a reply at its cap (srt.testing does as they do), created
and streamed, through the official ``openai`` SDK. A Responses upstream says so with its
own ``incomplete`` status, which srt read as the reply's stop reason and the gateway did
not take for a cap: its responses read ``completed``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_support import Harness, harness

LONG = "word " * 200  # 1,000 bytes: 250 of the test server's tokens
MODELS = ["responses/gpt-4o-mini", "claude-sonnet-4-5", "bedrock/anthropic.claude-3-haiku"]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    path = str(Path(tmp_path_factory.mktemp("capped")) / "srt.db")
    with pytest.MonkeyPatch.context() as mp, harness(path, mp) as h:
        yield h


@pytest.mark.parametrize("model", MODELS)
def test_a_reply_cut_at_max_output_tokens_is_incomplete(gw: Harness, model: str) -> None:
    c = gw.client()
    gw.srv.script("*", [LONG])
    r = c.responses.create(model=model, input="say it all", max_output_tokens=16)
    assert r.status == "incomplete", r.status
    assert r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"
    assert c.responses.retrieve(r.id).status == "incomplete"
    gw.srv.script("*", [LONG])
    # (raw events: the SDK's ``responses.stream`` helper wants a ``response.completed``)
    events = list(c.responses.create(model=model, input="again", max_output_tokens=16, stream=True))
    assert events[-1].type == "response.incomplete", [e.type for e in events[-3:]]
    final = events[-1].response
    assert final.status == "incomplete"
    assert final.incomplete_details is not None
    assert final.incomplete_details.reason == "max_output_tokens"


@pytest.mark.parametrize("model", MODELS)
def test_a_reply_within_its_cap_is_completed(gw: Harness, model: str) -> None:
    c = gw.client()
    gw.srv.script("*", ["short"])
    r = c.responses.create(model=model, input="be brief", max_output_tokens=16)
    assert r.status == "completed" and r.incomplete_details is None
