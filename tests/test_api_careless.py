"""A careless new user's first hour with the Python API (docs/api.md open beside it).

Each test is a mistake a user types: a provider class not called, a model name where a
provider goes, a string where a ``Pricing`` or a ``cache=`` flag goes, a misspelt keyword
of srt's own (``appends=``, ``tool=``), ``stream=True`` given to ``send``, an ``objects=``
function that returns the wrong thing, ``astream`` iterated with a plain ``for``. Each
gets a typed ``srt`` error that says what to pass, before anything is sent or written
(or, for ``objects=``, with the billed request's ledger row kept). Before these fixes,
each was an ``AttributeError``/``TypeError`` from deep inside, a request the provider
refused (billed), or a silent success.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import srt
from srt.store import ObjectPut
from srt.testing import ProviderServer

U = {"role": "user", "content": "hi"}


@pytest.fixture
def srv() -> Iterator[ProviderServer]:
    with ProviderServer(api_key="k") as server:
        yield server


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[srt.Runtime]:
    with srt.Runtime(str(tmp_path / "srt.db")) as runtime:
        yield runtime


@pytest.fixture
def p(srv: ProviderServer) -> Iterator[srt.OpenAI]:
    provider = srt.OpenAI("k", base_url=srv.url + "/v1")
    yield provider
    provider.close()


def _session(rt: srt.Runtime) -> srt.Session:
    s = rt.session("s")
    s.append({"role": "system", "content": "be brief"}, U)
    return s


def _refused(
    srv: ProviderServer, s: srt.Session, error: type[Exception], match: str, call: Callable[[], Any]
) -> srt.SrtError:
    """``call`` raises ``error`` (an srt error) matching ``match``; nothing was sent,
    nothing appended, no ledger row written."""
    before, sent = s.messages(), len(srv.log)
    with pytest.raises(error, match=match) as info:
        call()
    assert isinstance(info.value, srt.SrtError)
    assert len(srv.log) == sent and s.messages() == before and s.calls() == []
    return info.value


# -- a provider that is not one -----------------------------------------------------------


def test_a_provider_class_not_called_is_a_config_error(
    rt: srt.Runtime, srv: ProviderServer
) -> None:
    s = _session(rt)
    calls: list[Callable[[], Any]] = [
        lambda: s.send(srt.OpenAI, model="m"),
        lambda: s.stream(srt.OpenAI, model="m").text(),
        lambda: asyncio.run(s.asend(srt.Anthropic, model="m")),
        lambda: s.run(srt.OpenAI, model="m"),
        lambda: s.predict(model="gpt-4o-mini", provider=srt.OpenAI),
        lambda: srt.WindowPolicy("sliding", 1000, compact_at=0.5, summarizer=srt.OpenAI),
    ]
    for call in calls:
        e = _refused(srv, s, srt.ConfigError, "got the class", call)
        assert "srt.OpenAI(...)" in str(e) or "srt.Anthropic(...)" in str(e)


def test_run_refuses_a_provider_class_even_with_nothing_to_send(
    rt: srt.Runtime, srv: ProviderServer, p: srt.OpenAI
) -> None:
    """A session whose last message is the model's answer needs no call to finish its
    run: the provider class was taken for one and the mistake surfaced later."""
    s = _session(rt)
    s.send(p, model="m")
    calls = s.calls()
    with pytest.raises(srt.ConfigError, match="got the class OpenAI"):
        s.run(srt.OpenAI, model="m")
    with pytest.raises(srt.ConfigError, match="got the class OpenAI"):
        list(s.run_stream(srt.OpenAI, model="m"))
    assert s.calls() == calls


def test_a_model_name_where_the_provider_goes_says_where_it_belongs(
    rt: srt.Runtime, srv: ProviderServer
) -> None:
    s = _session(rt)
    for call in (
        lambda: s.send("gpt-4o", model="gpt-4o"),
        lambda: s.predict(model="gpt-4o-mini", provider="openai"),
    ):
        _refused(srv, s, srt.ConfigError, r"got str \(the model name goes in model=\)", call)


# -- pricing that is not a Pricing --------------------------------------------------------


def test_pricing_that_is_not_a_pricing_is_a_config_error(
    rt: srt.Runtime, srv: ProviderServer, p: srt.OpenAI
) -> None:
    s = _session(rt)
    s.send(p, model="gpt-4o-mini")  # (a priced row, so the savings read prices)
    price = srt.Price(input=1.0, cached_input=0.1, output=2.0)
    for bad in ("openai", price, {"gpt-4o-mini": price}):
        with pytest.raises(srt.ConfigError, match=r"pricing must be a srt\.Pricing"):
            s.predict(model="gpt-4o-mini", pricing=bad)
        with pytest.raises(srt.ConfigError, match=r"pricing must be a srt\.Pricing"):
            s.savings(bad)
        with pytest.raises(srt.ConfigError, match=r"pricing must be a srt\.Pricing"):
            rt.savings(bad)
    assert s.savings(srt.Pricing({"gpt-4o-mini": price})).requests == 1


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((None, 10, 5), "model must be a model name"),
        (("gpt-4o-mini", "10", 5), "total_tokens must be a whole number"),
        (("gpt-4o-mini", 10, 5.5), "cached_tokens must be a whole number"),
        (("gpt-4o-mini", -10, 0), "total_tokens must be a whole number"),
        (("gpt-4o-mini", 10, 50), r"cached_tokens \(50\) cannot exceed total_tokens \(10\)"),
        (("gpt-4o-mini", 10, 5, srt.OpenAI), "provider must be a provider's name"),
    ],
)
def test_pricing_predict_of_bad_figures_is_a_config_error(
    args: tuple[Any, ...], match: str
) -> None:
    """Before: an AttributeError, a TypeError, or a negative cost for cached > total."""
    with pytest.raises(srt.ConfigError, match=match):
        srt.Pricing().predict(*args)
    assert srt.Pricing().predict("gpt-4o-mini", 10_000, 8_000) is not None


def test_pricing_overrides_that_are_not_a_mapping_are_a_config_error() -> None:
    with pytest.raises(srt.ConfigError, match="overrides must be a dict"):
        srt.Pricing([srt.Price(1.0, 0.1, 2.0)])  # type: ignore[arg-type]


# -- cache= -------------------------------------------------------------------------------


@pytest.mark.parametrize("cache", ["root", "1h", 1, None, {"static_ttl": "1h"}])
def test_cache_that_is_no_flag_or_policy_is_a_config_error(
    rt: srt.Runtime, srv: ProviderServer, p: srt.OpenAI, cache: Any
) -> None:
    """Before: taken for its truth, so ``cache="none"`` turned caching on."""
    s = _session(rt)
    for call in (
        lambda: s.request(model="m", cache=cache),
        lambda: s.explain(model="m", cache=cache),
        lambda: s.send(p, model="m", cache=cache),
    ):
        _refused(srv, s, srt.ConfigError, r"cache must be True, False or a srt\.CachePolicy", call)
    no_key = srt.CachePolicy(key=None)
    assert s.request(model="m", cache=no_key) == s.request(model="m", cache=False)


# -- srt's own keywords, misspelt, and send(stream=True) ----------------------------------


@pytest.mark.parametrize(
    ("key", "meant"),
    [("appends", "append"), ("tool", "tools"), ("windows", "window"), ("keeps", "keep")],
)
def test_a_misspelt_keyword_of_srt_is_refused_before_sending(
    rt: srt.Runtime, srv: ProviderServer, p: srt.OpenAI, key: str, meant: str
) -> None:
    """Before: it went into the body as given and the provider refused the request (a
    400, with a ledger row), or it failed to encode as JSON."""
    s = _session(rt)
    value: Any = {
        "appends": [U],
        "tool": [],
        "windows": srt.WindowPolicy("sliding", 1000),
        "keeps": False,
    }[key]
    for call in (
        lambda: s.send(p, model="m", **{key: value}),
        lambda: s.stream(p, model="m", **{key: value}).text(),
        lambda: asyncio.run(s.asend(p, model="m", **{key: value})),
        lambda: s.run(p, model="m", **{key: value}),
    ):
        e = _refused(srv, s, srt.ConfigError, f"{key}= is not an option of srt", call)
        assert f"did you mean {meant}=?" in str(e)
    # body parameters srt does not know still go into the body, as documented
    body = s.request(model="m", temperature=0.5, models=["a", "b"])
    assert b'"temperature":0.5,"models":["a","b"]' in body


def test_send_with_stream_true_points_to_stream(
    rt: srt.Runtime, srv: ProviderServer, p: srt.OpenAI
) -> None:
    """Before: the provider streamed, send read the stream as JSON: ``ProviderResponseError``
    ("not valid JSON"), billed. Refused after ``request(stream=True)`` too, which takes it
    (the names found harmless once were skipped by every later check, ``stream`` among
    them)."""
    s = _session(rt)
    s.request("openai.chat", model="m", stream=True)  # (a body parameter there: taken)
    for call in (
        lambda: s.send(p, model="m", stream=True),
        lambda: asyncio.run(s.asend(p, model="m", stream=True)),
    ):
        _refused(srv, s, srt.ConfigError, r"call s\.stream\(\.\.\.\)", call)
    assert s.send(p, model="m", stream=False).message["role"] == "assistant"
    assert len(s) == 3


def test_request_refuses_the_options_of_send(rt: srt.Runtime) -> None:
    """``request`` builds the stored history: ``append=`` there went into the body."""
    s = _session(rt)
    for key in ("append", "keep", "objects"):
        with pytest.raises(srt.ConfigError, match=f"{key}= is an option of send"):
            s.request(model="m", **{key: [U]})
    with pytest.raises(srt.ConfigError, match=r"did you mean tools=\?"):
        s.request(model="m", tool=[])
    assert len(s) == 2


# -- objects= returning the wrong thing ---------------------------------------------------


@pytest.mark.parametrize("made", [5, "x", [1], {"k": "v"}])
def test_objects_returning_no_list_of_object_puts_is_a_config_error(
    rt: srt.Runtime, srv: ProviderServer, p: srt.OpenAI, made: Any
) -> None:
    """Before: a TypeError (or the store's error) from the commit, and the billed
    request's ledger row was lost with it."""
    s = _session(rt)
    with pytest.raises(srt.ConfigError, match=r"objects= must return a list of .*ObjectPut"):
        s.send(p, model="m", objects=lambda reply, depth: made)
    assert len(s) == 2 and len(srv.log) == 1
    [row] = s.calls()
    assert row["status"] == "ok" and row["output_tokens"] > 0
    put = ObjectPut("careless.test", "scope", "key", b"v")
    s.send(p, model="m", objects=lambda reply, depth: [put])
    assert len(s) == 3 and rt.store.get_object("careless.test", "scope", "key") is not None


def test_objects_that_raises_keeps_the_ledger_row(
    rt: srt.Runtime, srv: ProviderServer, p: srt.OpenAI
) -> None:
    s = _session(rt)

    def fails(reply: srt.Reply, depth: int) -> list[ObjectPut]:
        raise LookupError("the caller's own failure")

    with pytest.raises(LookupError, match="the caller's own failure"):
        s.send(p, model="m", objects=fails)
    assert len(s) == 2 and [r["status"] for r in s.calls()] == ["ok"]


# -- history edits given the wrong kind of thing ------------------------------------------


@pytest.mark.parametrize("n", ["1", 1.0, None])
def test_rewind_of_no_int_says_it_takes_an_int(rt: srt.Runtime, n: Any) -> None:
    """Before: "cannot rewind 1 of 2 messages" for ``"1"``, which reads as a refusal of 1."""
    s = _session(rt)
    with pytest.raises(srt.HistoryIndexError, match=r"rewind\(\) takes how many messages to drop"):
        s.rewind(n)
    assert len(s) == 2


@pytest.mark.parametrize("record", [None, 5, {"key": "x"}])
def test_restore_of_no_record_says_what_it_takes(rt: srt.Runtime, record: Any) -> None:
    s = _session(rt)
    s.rewind(1)
    with pytest.raises(srt.SessionError, match=r"restore\(\) takes a record of history\(\)"):
        s.restore(record)
    assert len(s) == 1
    s.restore(s.history()[0])
    assert len(s) == 2


# -- the asyncio stream iterated with a plain for -----------------------------------------


def test_astream_iterated_with_for_points_to_stream(
    rt: srt.Runtime, srv: ProviderServer, p: srt.OpenAI
) -> None:
    """Before: Python's "'AsyncReplyStream' object is not iterable"."""
    s = _session(rt)
    with pytest.raises(srt.ConfigError, match=r"async for; .*call s\.stream\(\.\.\.\)"):
        list(s.astream(p, model="m", append=[U]))
    assert srv.log == [] and len(s) == 2
    assert "".join(s.stream(p, model="m", append=[U])) and len(s) == 4


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({"read": "no"}, "CachePolicy read must be True or False"),
        ({"write": 0}, "CachePolicy write must be True or False"),
        ({"static": None}, "CachePolicy static must be True or False"),
        ({"min_tokens": "1024"}, "CachePolicy min_tokens must be a whole number"),
        ({"min_tokens": -1}, "CachePolicy min_tokens must be a whole number"),
        ({"ttl": ["5m"]}, "cache TTL must be '5m' or '1h'"),
    ],
)
def test_a_cache_policy_of_the_wrong_kind_is_refused_when_made(
    given: dict[str, Any], says: str
) -> None:
    """``CachePolicy(read="no")`` would read (a truth value); a list TTL was a TypeError."""
    with pytest.raises(srt.ConfigError, match=says):
        srt.CachePolicy(**given)
    assert srt.CachePolicy(read=False, min_tokens=0).read is False
