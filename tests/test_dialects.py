"""Provider dialect details: the ``anthropic-version`` srt sends, and what the test server
accepts under each version (issue 14, item 5)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest

import srt
from srt.providers import Anthropic, OpenAI
from srt.testing import ProviderServer

KEY = "sk-ant-dialect-key"
MODEL = "claude-sonnet-4-6"
MESSAGES = {"model": MODEL, "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key=KEY) as server:
        yield server
        assert server.errors == []


def _version(srv: ProviderServer) -> str:
    return srv.log[-1].headers["anthropic-version"]


def test_srt_sends_the_current_version_and_the_older_one_only_for_sampling_parameters(
    rt: srt.Runtime, srv: ProviderServer
) -> None:
    s = rt.session("v")
    s.append({"role": "user", "content": "hello"})
    with closing(Anthropic(KEY, base_url=srv.url)) as p:
        s.send(p, model=MODEL, max_tokens=32)
        assert _version(srv) == Anthropic.VERSION == "2026-10-21"
        s.append({"role": "user", "content": "again"})
        s.send(p, model=MODEL, max_tokens=32, temperature=0.2)
        assert _version(srv) == Anthropic.SAMPLING_VERSION == "2023-06-01"
        s.append({"role": "user", "content": "and streamed"})
        assert s.stream(p, model=MODEL, max_tokens=32, top_k=5).text()
        assert _version(srv) == "2023-06-01"
    with closing(Anthropic(KEY, base_url=srv.url, version="2023-06-01")) as pinned:
        s.append({"role": "user", "content": "pinned"})
        s.send(pinned, model=MODEL, max_tokens=32)
        assert _version(srv) == "2023-06-01"
    assert [r.status for r in srv.log] == [200, 200, 200, 200]
    assert [c["status"] for c in s.calls()] == ["ok"] * 4


def test_a_pinned_current_version_with_temperature_is_refused_as_the_api_refuses_it(
    rt: srt.Runtime, srv: ProviderServer
) -> None:
    s = rt.session("pinned")
    s.append({"role": "user", "content": "hello"})
    p = Anthropic(KEY, base_url=srv.url, version="2026-10-21")
    with closing(p), pytest.raises(srt.ProviderResponseError, match="temperature"):
        s.send(p, model=MODEL, max_tokens=32, temperature=0.5)
    assert len(s) == 1  # nothing appended; the failed call is in the ledger
    assert [c["status"] for c in s.calls()] == ["error"]


@pytest.mark.parametrize("version", ["2026-10-21", "2023-06-01"])
def test_the_server_applies_each_versions_rules(srv: ProviderServer, version: str) -> None:
    headers = {"x-api-key": KEY, "anthropic-version": version}
    url = srv.url + "/v1/messages"
    cited = {
        **MESSAGES,
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "see",
                        "citations": [{"type": "char_location", "cited_text": "x"}],
                    }
                ],
            }
        ],
    }
    current = version >= "2026-10-21"
    with httpx.Client() as http:
        for extra in ({"temperature": 0}, {"top_p": 0.9}, {"top_k": 3}):
            r = http.post(url, json={**MESSAGES, **extra}, headers=headers)
            assert r.status_code == (400 if current else 200), r.text
            if current:
                assert r.json()["error"]["type"] == "invalid_request_error"
                assert next(iter(extra)) in r.json()["error"]["message"]
        r = http.post(url, json=cited, headers=headers)
        assert r.status_code == (400 if current else 200), r.text
        assert http.post(url, json=MESSAGES, headers=headers).status_code == 200


def test_a_bad_version_value_is_a_config_error() -> None:
    with pytest.raises(srt.ConfigError, match="anthropic-version"):
        Anthropic("k", version="")


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_openai_cache_writes_reach_the_ledger(rt: srt.Runtime, api: str, stream: bool) -> None:
    """``usage.*_tokens_details.cache_write_tokens`` is read for Chat and Responses, sent
    or streamed, and the ledger holds what the server reported, request by request."""
    s = rt.session(f"{api}-{stream}")
    s.append({"role": "system", "content": "Facts about caches. " * 400})
    with ProviderServer(api_key=KEY) as srv:
        with closing(OpenAI(KEY, base_url=srv.url + "/v1", api=api)) as p:
            for turn in ("first", "second", "third"):
                s.append({"role": "user", "content": f"The {turn} question?"})
                if stream:
                    assert s.stream(p, model="gpt-4o").text()
                else:
                    s.send(p, model="gpt-4o")
        reported = [(r.cache.read, r.cache.written) for r in srv.log if r.cache is not None]
    ledger = [(c["cache_read_tokens"], c["cache_write_tokens"]) for c in s.calls()]
    assert ledger == reported
    assert ledger[0][0] == 0 and ledger[0][1] > 1024  # the first request writes its prefix
    assert ledger[1][0] > 0  # and the next reads it
    assert s.usage().cache_write_tokens == sum(w for _, w in ledger)
