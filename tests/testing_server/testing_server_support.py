"""Helpers for the local provider server's own tests (this folder; its fixtures are in
``conftest.py``): the official SDKs on a server (closed when a test ends, ``kept``), the
request bodies and headers of each protocol, Bedrock's URLs and event-stream frames."""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import quote

import anthropic
import openai
from botocore.eventstream import EventStreamBuffer

from srt.testing import ProviderServer

BEDROCK_MODEL = "anthropic.claude-3-7-sonnet-20250219-v1:0"
CLAUDE = "claude-sonnet-4-6"
LONG = "The quick brown fox jumps over the lazy dog. " * 120  # 5,400 bytes: ~1,350 tokens


_CLIENTS: list[openai.OpenAI | anthropic.Anthropic] = []

C = TypeVar("C", openai.OpenAI, anthropic.Anthropic)


def kept(client: C) -> C:
    """``client``, closed when the test ends (``close_sdk_clients``)."""
    _CLIENTS.append(client)
    return client


def close_kept() -> None:
    """Close every client ``kept`` since the last call."""
    while _CLIENTS:
        _CLIENTS.pop().close()


def oai(srv: ProviderServer, **kw: Any) -> openai.OpenAI:
    kw.setdefault("max_retries", 0)
    return kept(openai.OpenAI(base_url=srv.url + "/v1", api_key="sk-test", **kw))


def claude(srv: ProviderServer) -> anthropic.Anthropic:
    return kept(anthropic.Anthropic(base_url=srv.url, api_key="sk-ant-test", max_retries=0))


OPENAI_H = {"Authorization": "Bearer sk-test"}
ANTHROPIC_H = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
BEDROCK_H = {"Authorization": "Bearer bedrock-key"}
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
MESSAGES = {"model": CLAUDE, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
CONVERSE = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}


def bedrock_url(srv: ProviderServer, stream: bool = False, model: str = BEDROCK_MODEL) -> str:
    op = "converse-stream" if stream else "converse"
    return f"{srv.url}/model/{quote(model, safe='')}/{op}"


def frames(raw: bytes) -> list[tuple[dict[str, Any], bytes]]:
    """The event-stream frames in ``raw``, decoded by botocore: (headers, payload) each."""
    buf = EventStreamBuffer()
    buf.add_data(raw)
    return [(m.headers, m.payload) for m in buf]


def system_cached(text: str, ttl: str | None = None) -> list[dict[str, Any]]:
    """An Anthropic ``system`` of one text block with a cache breakpoint (``ttl``, else 5m)."""
    cc: dict[str, Any] = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return [{"type": "text", "text": text, "cache_control": cc}]
