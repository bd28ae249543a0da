"""The scope of the ``prompt_cache_key`` srt sends: ``CachePolicy(key="root" | "session" |
None)``, per call or runtime-wide (``Runtime(cache=...)``); the key sent is what the cache
explain compares by, what ``last_build`` and the ledger show, and what ``srt verify``
rebuilds. Real SQLite files; provider calls over loopback to ``srt.testing``."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import pytest

import srt
from srt.providers import OpenAI
from srt.testing import ProviderServer

KEY = "sk-test-key-000000"
SYSTEM = {"role": "system", "content": "You answer questions about caches. " * 300}
SESSION = srt.CachePolicy(key="session")
NO_KEY = srt.CachePolicy(key=None)


def _start(rt: srt.Runtime, name: str) -> srt.Session:
    s = rt.session(name)
    s.append(SYSTEM, {"role": "user", "content": f"The first question of {name}?"})
    return s


def _key(s: srt.Session, cache: bool | srt.CachePolicy = True) -> str | None:
    body = json.loads(s.request("openai.chat", model="gpt-4o", cache=cache))
    assert body.get("prompt_cache_key") == s.last_build.cache_key
    return s.last_build.cache_key


def test_root_scope_is_todays_key_and_bytes(tmp_path: Path) -> None:
    """The default and ``key="root"`` send the same bytes: one key for every session
    and fork that starts with the same message, shown in ``last_build``."""
    rt = srt.Runtime(tmp_path / "root.db")
    a, b = _start(rt, "a"), _start(rt, "b")
    default = a.request("openai.chat", model="gpt-4o")
    assert a.request("openai.chat", model="gpt-4o", cache=srt.CachePolicy(key="root")) == default
    assert _key(a) == _key(b) == a.cache_key == json.loads(default)["prompt_cache_key"]
    assert _key(a.fork("a2", at=1)) == a.cache_key


def test_session_scope_gives_each_session_its_own_stable_key(tmp_path: Path) -> None:
    path = tmp_path / "session.db"
    rt = srt.Runtime(path)
    a, b = _start(rt, "a"), _start(rt, "b")
    ka, kb = _key(a, SESSION), _key(b, SESSION)
    assert ka is not None and kb is not None and ka.startswith("srt-")
    assert len({ka, kb, a.cache_key}) == 3  # neither is the shared root key
    fork = a.fork("a-fork")
    kf = _key(fork, SESSION)
    assert kf not in (ka, kb, a.cache_key)  # a fork is a session of its own
    assert _key(a, SESSION) == ka  # the same on the next turn...
    a.append({"role": "assistant", "content": "An answer."})
    assert _key(a, SESSION) == ka  # ...and as the history grows
    rt.rename("a", "renamed")
    rt.close()
    rt2 = srt.Runtime(path)  # a new process would see the same
    assert _key(rt2.session("renamed"), SESSION) == ka
    assert _key(rt2.session("a-fork"), SESSION) == kf
    assert _key(rt2.session("b"), SESSION) == kb
    rt2.close()


def test_session_key_is_no_name_or_prefix_hash(tmp_path: Path) -> None:
    """The session key is not derived from the name: two stores whose sessions have the
    same name and history get different keys (each store's random id), and it is none
    of the session's prefix hashes."""
    keys = []
    for i in range(2):
        rt = srt.Runtime(tmp_path / f"{i}.db")
        s = _start(rt, "same-name")
        keys.append(_key(s, SESSION))
        assert keys[-1] not in {"srt-" + h.hex() for h in s.prefix_hashes()}
        rt.close()
    assert keys[0] != keys[1]


def test_no_key_sends_none(tmp_path: Path) -> None:
    rt = srt.Runtime(tmp_path / "none.db")
    s = _start(rt, "a")
    for fmt in ("openai.chat", "openai.responses"):
        body = s.request(fmt, model="gpt-4o", cache=NO_KEY)
        assert b"prompt_cache_key" not in body
        assert s.last_build.cache_key is None
    # A key of the caller's own is still sent, whatever the scope.
    body = s.request("openai.chat", model="gpt-4o", cache=NO_KEY, prompt_cache_key="mine")
    assert json.loads(body)["prompt_cache_key"] == "mine" == s.last_build.cache_key


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("scope", ["root", "session", None])
def test_the_key_sent_reaches_the_server_ledger_and_verify(
    tmp_path: Path, api: str, scope: str | None
) -> None:
    """Over loopback: the server receives the key ``last_build`` shows (or none), the
    explain's prediction on the second turn counts the cached prefix, the server serves
    one, the ledger records the key (none for the root's), and ``verify_ledger``
    rebuilds every body exactly, even from a runtime whose own default scope differs."""
    path = tmp_path / f"{api}-{scope}.db"
    rt = srt.Runtime(path)
    policy = srt.CachePolicy(key=scope)
    s = _start(rt, "a")
    with (
        ProviderServer(api_key=KEY) as srv,
        closing(OpenAI(KEY, base_url=srv.url + "/v1", api=api)) as p,
    ):
        s.send(p, model="gpt-4o", cache=policy)
        sent = s.last_build.cache_key
        s.append({"role": "user", "content": "And the second question?"})
        predicted = s.explain(f"openai.{api}", model="gpt-4o", cache=policy)
        s.send(p, model="gpt-4o", cache=policy)
        received = [r.body.get("prompt_cache_key") for r in srv.log]
        served = srv.log[-1].cache
    if scope is None:
        assert sent is None and received == [None, None]
    else:
        expected = s.cache_key if scope == "root" else _key(s, SESSION)
        assert sent == expected and received == [sent, sent]
    assert predicted.reason == "hit" and predicted.cached_tokens >= 1024
    assert served is not None and served.read >= 1024
    # A row records the key it sent unless it is the root's (what a row without one
    # sent, as every row before scopes did): the default path's rows are as they were.
    recorded = [json.loads(c["params"]).get("cache_key", "(root)") for c in s.calls()]
    assert recorded == ["(root)" if scope == "root" else sent] * 2
    assert rt.verify_ledger().ok and rt.verify_ledger().checked == 2
    rt.close()
    other = srt.CachePolicy(key="session" if scope != "session" else None)
    with srt.Runtime(path, cache=other) as rt2:
        report = rt2.verify_ledger()
        assert report.ok and report.checked == 2, report.faults


def test_the_explain_compares_by_the_key_sent(tmp_path: Path) -> None:
    """In the root scope a second session with the same start reads the first one's
    prefix; in the session scope (another key, maybe another machine) it starts cold;
    a caller's own key is compared by too."""
    rt = srt.Runtime(tmp_path / "explain.db")
    a, b = _start(rt, "a"), _start(rt, "b")
    a.request("openai.chat", model="gpt-4o")
    a.request("openai.chat", model="gpt-4o", cache=SESSION)
    root = b.explain("openai.chat", model="gpt-4o")
    assert root.reason == "edited" and root.cached_messages == 1  # the shared system prompt
    assert b.explain("openai.chat", model="gpt-4o", cache=SESSION).reason == "cold"
    # A's own session key finds A's own request: a hit on everything.
    assert a.explain("openai.chat", model="gpt-4o", cache=SESSION).cached_messages == 2
    a.request("openai.chat", model="gpt-4o", prompt_cache_key="mine")
    assert a.last_build.cache.reason == "cold"  # nothing was sent with "mine" before
    a.request("openai.chat", model="gpt-4o", prompt_cache_key="mine")
    assert a.last_build.cache.reason == "hit"


def test_runtime_default_policy(tmp_path: Path) -> None:
    path = tmp_path / "default.db"
    with srt.Runtime(path, cache=SESSION) as rt:
        a, b = _start(rt, "a"), _start(rt, "b")
        assert _key(a) != _key(b) and _key(a) == _key(a, SESSION)
        assert _key(a, srt.CachePolicy()) == a.cache_key  # a call's own policy wins
        assert _key(a, False) is None
    with srt.Runtime(path, cache=NO_KEY) as rt:
        assert _key(rt.session("a")) is None


def test_other_formats_ignore_the_scope(tmp_path: Path) -> None:
    """Formats that take no key (Anthropic, Bedrock, Azure) build the same bytes in
    every scope."""
    rt = srt.Runtime(tmp_path / "other.db")
    s = _start(rt, "a")
    for fmt, model in (
        ("anthropic.messages", "claude-sonnet-4-6"),
        ("bedrock.converse", "anthropic.claude-sonnet-4-6"),
        ("azure.chat", "gpt-4o"),
    ):
        default = s.request(fmt, model=model)
        assert s.request(fmt, model=model, cache=SESSION) == default
        assert s.request(fmt, model=model, cache=NO_KEY) == default
        assert s.last_build.cache_key is None


@pytest.mark.parametrize("bad", ["sessions", "Root", "", "sk-not-a-scope-123", 1, True, ["root"]])
def test_a_bad_scope_is_a_config_error(tmp_path: Path, bad: object) -> None:
    with pytest.raises(srt.ConfigError, match="'root', 'session' or None") as err:
        srt.CachePolicy(key=bad)  # type: ignore[arg-type]
    if isinstance(bad, str) and bad:
        assert bad not in str(err.value)  # a string is never echoed (it may be a key)
    with pytest.raises(srt.ConfigError, match="CachePolicy"):
        srt.Runtime(tmp_path / "bad.db", cache="session")  # type: ignore[arg-type]


@pytest.mark.parametrize("api", ["chat", "responses"])
@pytest.mark.parametrize("scope", ["root", "session", None])
def test_azure_sends_the_key_only_when_opted_in(
    tmp_path: Path, api: str, scope: str | None
) -> None:
    """Over loopback to srt.testing's Azure imitation: ``Azure(prompt_cache_key=True)``
    sends the key of the call's scope (or none), as srt does to OpenAI; an Azure provider
    without it sends none (the default, for models before GPT-5.6). The opted-in rows
    record the key sent, so ``verify_ledger`` rebuilds every body, from a runtime of
    another default scope too."""
    from srt.providers import Azure
    from srt.wire.azure import AzureEndpoint

    path = tmp_path / f"az-{api}-{scope}.db"
    rt = srt.Runtime(path)
    policy = srt.CachePolicy(key=scope)
    s = _start(rt, "a")
    plain = _start(rt, "plain")
    with ProviderServer(api_key=KEY) as srv:
        ep = AzureEndpoint(srv.url, deployment="dep", api_version="2024-10-21")
        with closing(Azure(ep, api_key=KEY, api=api, prompt_cache_key=True)) as p:
            s.send(p, model="dep", cache=policy)
            sent = s.last_build.cache_key
            s.append({"role": "user", "content": "And the second question?"})
            s.send(p, model="dep", cache=policy)
        with closing(Azure(ep, api_key=KEY, api=api)) as p:
            plain.send(p, model="dep", cache=policy)
            assert plain.last_build.cache_key is None
        received = [r.body.get("prompt_cache_key", "(none)") for r in srv.log]
    if scope is None:
        assert sent is None and received == ["(none)"] * 3
    else:
        expected = s.cache_key if scope == "root" else _key(s, SESSION)
        assert sent == expected and received == [sent, sent, "(none)"]
    recorded = [json.loads(c["params"]).get("cache_key", "(none)") for c in rt.calls()]
    assert recorded == [sent, sent, "(none)"]
    assert [c["format"] for c in rt.calls()] == [f"azure.{api}"] * 3
    assert rt.verify_ledger().ok and rt.verify_ledger().checked == 3
    rt.close()
    other = srt.CachePolicy(key="session" if scope != "session" else None)
    with srt.Runtime(path, cache=other) as rt2:
        report = rt2.verify_ledger()
        assert report.ok and report.checked == 3, report.faults


def test_azure_prompt_cache_key_is_a_flag() -> None:
    from srt.providers import Azure
    from srt.wire.azure import AzureEndpoint

    ep = AzureEndpoint("res", deployment="dep", api_version="2024-10-21")
    with pytest.raises(srt.ConfigError, match="prompt_cache_key must be True or False"):
        Azure(ep, api_key=KEY, prompt_cache_key="yes")  # type: ignore[arg-type]
    assert Azure(ep, api_key=KEY).cache_key_param is None
    assert Azure(ep, api_key=KEY, prompt_cache_key=True).cache_key_param == "prompt_cache_key"
