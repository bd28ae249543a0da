"""End to end with a real model: the official SDK -> the gateway -> llama.cpp (SmolLM2).

Five turns chained by ``previous_response_id`` (two of them streamed): the client sends
only its new input, the gateway sends the whole history, and llama.cpp evaluates only
the new turn's tokens because the history's bytes are stable (its slot's cache).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

import srt
import srt.gateway
from gateway_support import serving
from srt.gateway.config import Config, Route, Upstream
from support import local_model

QUESTIONS = [
    "Name one vegetable.",
    "Is it green?",
    "How do I cook it?",
    "How long does that take?",
    "Is it healthy?",
]


@pytest.fixture(scope="module")
def model() -> str:
    return local_model()


@pytest.fixture
def gateway(model: str, tmp_path: Path) -> Iterator[tuple[str, object]]:
    up = Upstream(
        "local",
        "local",
        model=model,
        ctx_size=2048,
        slots=2,
        threads=1,
        state_dir=str(tmp_path / "slots"),
    )
    cfg = Config(upstreams={"local": up}, routes=(Route("*", "local"),), open=True)
    with srt.Runtime(str(tmp_path / "gw.db")) as rt:
        app = srt.gateway.app(cfg, rt)
        with serving(app) as url:
            yield url, app
    provider = next(iter(app.state.srt.gw._providers.values()), None)  # closed by the app
    assert provider is None or provider.pid is None


def test_five_turns_through_the_gateway(gateway: tuple[str, object]) -> None:
    url, app = gateway
    sizes = []

    def record(request: httpx.Request) -> None:
        if request.method == "POST":
            sizes.append(len(request.content))

    http = httpx.Client(event_hooks={"request": [record]})
    client = openai.OpenAI(base_url=url, api_key="sk-any", max_retries=0, http_client=http)
    provider = None
    prev = None
    try:
        for i, q in enumerate(QUESTIONS):
            kw = {
                "model": "smollm2",
                "input": q,
                "instructions": "Answer in one sentence.",
                "max_output_tokens": 16,
                "temperature": 0,
                "previous_response_id": prev,
            }
            if i % 3 == 2:
                with client.responses.stream(**kw) as s:
                    last = list(s)[-1]  # response.completed, or .incomplete at the token cap
                assert last.type in ("response.completed", "response.incomplete")
                r = last.response
            else:
                r = client.responses.create(**kw)
            assert r.status in ("completed", "incomplete") and r.output_text
            assert r.usage is not None and r.usage.input_tokens > 0
            prev = r.id
            provider = next(iter(app.state.srt.gw._providers.values()))
            stats = provider.calls[-1]
            assert stats.prompt_n + stats.cache_n == stats.prompt_tokens
            if i:  # the history came from the slot; only the new turn was evaluated
                assert stats.cache_n > 0 and stats.prompt_n < stats.prompt_tokens / 2
        items = client.responses.input_items.list(prev, limit=100)
        assert len(items.data) == 2 * len(QUESTIONS) - 1
        assert max(sizes) - min(sizes) < 200  # the client's request size stays flat
    finally:
        client.close()
