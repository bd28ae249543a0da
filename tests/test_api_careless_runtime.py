"""A careless user's last plain Python errors in the Python API: each is a typed ``srt``
error that says what was wrong and what to do, and nothing is written or sent.

Before these fixes: ``srt.Runtime(path, memory_budjet=1)`` was Python's ``TypeError``
(no suggestion); ``s.send(..., rebase=True)`` put ``rebase`` into the request body, which
the provider refused (a ledger row of a failed request); ``s.refresh()`` of a session
deleted elsewhere (and so a rebase that lost to a delete) said only "was deleted or
replaced" (a plain ``SessionError``); ``async for`` over ``s.stream(...)`` or
``s.run_stream(...)``, and a plain ``for`` over ``s.arun_stream(...)``, were Python's
``TypeError``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import srt
from srt.testing import ProviderServer

U = {"role": "user", "content": "hi"}
A = {"role": "assistant", "content": "hello"}


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


# -- 1. Runtime's keywords ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "says"),
    [
        (
            {"memory_budjet": 1},
            r"Runtime\(\) takes no memory_budjet= option; did you mean memory_budget=\?",
        ),
        ({"durabilty": "full"}, r"takes no durabilty= option; did you mean durability=\?"),
        ({"max_sesions": 3}, r"did you mean max_sessions=\?"),
        ({"hashkey": b"k" * 16}, r"did you mean hash_key=\?"),
        ({"frobnicate": 1}, r"^Runtime\(\) takes no frobnicate= option$"),
    ],
)
def test_a_misspelt_runtime_keyword_is_a_config_error_with_a_suggestion(
    tmp_path: Path, given: dict[str, Any], says: str
) -> None:
    path = tmp_path / "srt.db"
    with pytest.raises(srt.ConfigError, match=says):
        srt.Runtime(str(path), **given)
    assert not path.exists()  # (refused before the store is opened)


def test_runtime_refuses_a_second_positional_argument(tmp_path: Path) -> None:
    path = tmp_path / "srt.db"
    with pytest.raises(
        srt.ConfigError, match=r"takes 1 positional argument, got 2: the others are keywords"
    ):
        srt.Runtime(str(path), 1024)  # type: ignore[misc]
    assert not path.exists()


def test_runtime_keeps_its_signature_and_its_keywords_work(tmp_path: Path) -> None:
    sig = inspect.signature(srt.Runtime)
    assert list(sig.parameters)[:3] == ["path_or_url", "store", "max_message_bytes"]
    assert sig.parameters["memory_budget"].kind is inspect.Parameter.KEYWORD_ONLY
    with srt.Runtime(str(tmp_path / "srt.db"), memory_budget=1 << 20, durability="full") as rt:
        assert rt.memory["budget"] == 1 << 20
    with pytest.raises(TypeError):  # (bind() still refuses what Runtime refuses)
        sig.bind(str(tmp_path), memory_budjet=1)


def test_the_providers_keep_their_hints(tmp_path: Path) -> None:
    """The check is the providers' one, shared: their SDK hint and suggestions stay."""
    with pytest.raises(
        srt.ConfigError, match=r"OpenAI\(\) takes no timeout= option; srt's is timeouts="
    ):
        srt.OpenAI("k", timeout=5)
    with pytest.raises(
        srt.ConfigError, match=r"OpenAI\(\) takes no verfy= option; did you mean verify=\?"
    ):
        srt.OpenAI("k", verfy=False)


# -- 2. a session deleted elsewhere, and rebase= given to send --------------------------------


def test_refresh_of_a_session_deleted_elsewhere_names_it_and_says_what_to_do(
    store_url: str,
) -> None:
    said = r"session 'notes' was deleted \(by another handle or process\); nothing was written"
    what = r"open or create it again with rt\.session\('notes'\)"
    with srt.Runtime(store_url) as rt, srt.Runtime(store_url) as other:
        s = rt.session("notes")
        s.append(U, A)
        other.delete("notes")
        with pytest.raises(srt.SessionNotFoundError, match=f"{said}: {what}"):
            s.refresh()
        other.session("notes").append(U)  # deleted and created again: another session
        with pytest.raises(srt.SessionNotFoundError, match=f"{said}: {what}"):
            s.refresh()
        with pytest.raises(srt.SessionNotFoundError, match=f"{said}: {what}"):
            s.append({"role": "user", "content": "more"}, rebase=True)
        assert [m["content"] for m in rt.session("notes").messages()] == ["hi"]


SAYS_REBASE = (
    r"rebase= is an option of append\(\), not of send\(\).*nothing was sent.*s\.refresh\(\)"
)


def test_send_refuses_rebase_and_says_it_is_append_s(
    store_url: str, srv: ProviderServer, p: srt.OpenAI
) -> None:
    """Before: ``rebase`` went into the body, and the provider refused it (a failed
    request in the ledger), on a deleted session as on any other."""
    with srt.Runtime(store_url) as rt, srt.Runtime(store_url) as other:
        s = rt.session("notes")
        s.append(U)
        other.delete("notes")
        calls = [
            lambda: s.send(p, model="m", rebase=True),
            lambda: s.stream(p, model="m", rebase=True),
            lambda: s.astream(p, model="m", rebase=True),
            lambda: s.request("openai.chat", model="m", rebase=True),
        ]
        for call in calls:
            with pytest.raises(srt.ConfigError, match=SAYS_REBASE):
                call()
        with pytest.raises(srt.ConfigError, match=SAYS_REBASE):
            asyncio.run(s.asend(p, model="m", rebase=True))
        assert srv.log == [] and rt.calls() == []


# -- 3. a stream iterated the other way ---------------------------------------------------------


def test_async_for_over_stream_points_to_astream(
    rt: srt.Runtime, srv: ProviderServer, p: srt.OpenAI
) -> None:
    s = rt.session("s")
    s.append(U)

    async def main() -> None:
        async for _ in s.stream(p, model="m"):  # type: ignore[attr-defined]
            pass

    with pytest.raises(
        srt.ConfigError, match=r"plain for; for async for, call s\.astream\(\.\.\.\)"
    ):
        asyncio.run(main())
    assert srv.log == [] and len(s) == 1
    assert s.stream(p, model="m").text() and len(s) == 2


def test_async_for_over_run_stream_points_to_arun_stream(
    rt: srt.Runtime, srv: ProviderServer, p: srt.OpenAI
) -> None:
    s = rt.session("s")
    s.append(U)

    async def main() -> None:
        async for _ in s.run_stream(p, model="m"):  # type: ignore[attr-defined]
            pass

    with pytest.raises(
        srt.ConfigError, match=r"plain for; for async for, call s\.arun_stream\(\.\.\.\)"
    ):
        asyncio.run(main())
    assert srv.log == [] and len(s) == 1


def test_for_over_arun_stream_points_to_run_stream(
    rt: srt.Runtime, srv: ProviderServer, p: srt.OpenAI
) -> None:
    s = rt.session("s")
    s.append(U)
    with pytest.raises(
        srt.ConfigError, match=r"async for; for a plain for loop, call s\.run_stream\(\.\.\.\)"
    ):
        list(s.arun_stream(p, model="m"))  # type: ignore[call-overload]
    assert srv.log == [] and len(s) == 1

    async def main() -> srt.tasks.AsyncTaskStream:
        stream = s.arun_stream(p, model="m")
        kinds = [e.kind async for e in stream]
        assert kinds[-1] == "done"
        return stream

    stream = asyncio.run(main())
    assert stream.result is not None and stream.result.stopped == "done"
    assert len(s) == 2
