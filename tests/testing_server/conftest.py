"""Fixtures for the local provider server's own tests: a server of their own (no API
key, unlike the suite's ``srv``; checked for errors and open handlers at the end), a raw
HTTP client, no provider settings from the environment, and the SDK clients a test made
(``testing_server_support.kept``) closed when it ends."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from testing_server_support import close_kept

from srt.testing import ProviderServer


@pytest.fixture(autouse=True)
def no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider credentials or endpoints from the environment reach the SDKs."""
    for key in list(os.environ):
        if key.startswith(("OPENAI_", "ANTHROPIC_", "AZURE_OPENAI_", "AWS_")):
            monkeypatch.delenv(key)


@pytest.fixture(autouse=True)
def close_sdk_clients() -> Iterator[None]:
    yield
    close_kept()


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer() as s:
        yield s
    assert s.errors == []
    assert s.active_handlers == 0


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c
