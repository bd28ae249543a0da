"""What ``test_providers`` and ``test_providers_faults`` share: the server with its canary
key, a runtime per engine, and a provider of each kind on it (closed when a test ends by
``support.close_made``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import srt
from srt.providers import Bedrock, Provider
from srt.providers.sigv4 import AwsCredentials
from srt.testing import ProviderServer
from support import MADE, provider_on

KEY = "sk-CANARY-provider-key-0123456789"
SECRET = "CANARY-aws-secret-abcdefghijklmnop"
MODELS = {
    "openai": "gpt-4o",
    "responses": "gpt-4o",
    "azure": "gpt-4o",
    "compatible": "local-model",
    "anthropic": "claude-sonnet-4-6",
    "bedrock": "anthropic.claude-sonnet-4-6",
    "bedrock-sigv4": "anthropic.claude-sonnet-4-6",
}


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server
        assert server.errors == []


@pytest.fixture
def rt(store_url: str) -> Iterator[srt.Runtime]:
    """The provider tests run once per engine (SQLite, PostgreSQL)."""
    with srt.Runtime(store_url) as runtime:
        yield runtime


def make(kind: str, srv: ProviderServer, **kw: Any) -> Provider:
    p = _make(kind, srv, **kw)
    MADE.append(p)
    return p


def _make(kind: str, srv: ProviderServer, **kw: Any) -> Provider:
    if kind == "bedrock-sigv4":
        creds = AwsCredentials("AKIAIOSFODNN7EXAMPLE", SECRET)
        return Bedrock(region="us-east-1", credentials=creds, endpoint_url=srv.url, **kw)
    return provider_on(kind, srv.url, KEY, **kw)
