"""A provider's usage with a count no ledger column holds (negative, or 2**63 and more)
is a malformed usage: a ``ProviderResponseError`` and a failed ledger row (before, a
count past 2**63 raised a plain OverflowError from the store and the billed request left
no ledger row at all, and a negative count was stored as it came)."""

from __future__ import annotations

import json
from contextlib import closing

import pytest

import srt
from srt.providers import OpenAI
from srt.testing import ProviderServer


def _body(prompt: int, cached: int) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "hi"},
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": 3,
                "total_tokens": 3,
                "prompt_tokens_details": {"cached_tokens": cached},
            },
        }
    ).encode()


@pytest.mark.parametrize(("prompt", "cached"), [(2**70, 0), (2**63, 0), (-5, 0), (10, -1)])
def test_a_usage_count_no_column_holds_is_a_malformed_usage(
    prompt: int, cached: int, store_url: str
) -> None:
    with srt.Runtime(store_url) as rt, ProviderServer() as srv:
        srv.fault("openai.chat", "status", code=200, body=_body(prompt, cached),
                  headers={"Content-Type": "application/json"})  # fmt: skip
        s = rt.session("s")
        s.append({"role": "user", "content": "hi"})
        with (
            closing(OpenAI("sk-x", base_url=srv.url + "/v1")) as p,
            pytest.raises(srt.ProviderResponseError, match="malformed usage"),
        ):
            s.send(p, model="gpt-4o")
        (row,) = s.calls()
        assert row["status"] == "error" and row["input_tokens"] is None
        assert len(s) == 1
        # the largest count a column holds is kept as it came
        srv.fault("openai.chat", "status", code=200, body=_body(2**63 - 1, 0),
                  headers={"Content-Type": "application/json"})  # fmt: skip
        with closing(OpenAI("sk-x", base_url=srv.url + "/v1")) as p:
            s.send(p, model="gpt-4o")
        assert s.calls()[-1]["input_tokens"] == 2**63 - 1
