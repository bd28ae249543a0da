"""A careless user's last plain Python errors in the Python API: each is a typed ``srt``
error that says what was wrong and what to do, and nothing is written or sent.

Before these fixes: ``srt.Runtime(path, memory_budjet=1)`` was Python's ``TypeError``
(no suggestion); ``s.send(..., rebase=True)`` put ``rebase`` into the request body, which
the provider refused (a ledger row of a failed request); ``s.refresh()`` of a session
deleted elsewhere (and so a rebase that lost to a delete) said only "was deleted or
replaced" (a plain ``SessionError``); a plain ``for`` over ``s.arun_stream(...)`` was
Python's ``TypeError``. (``async for`` over ``s.stream(...)`` stays Python's: see
``test_the_plain_streams_stay_plain_iterables_for_the_web_frameworks``.) The sweeps call
every public method and constructor with arguments of the wrong kind.
"""

from __future__ import annotations

import asyncio
import inspect
import shutil
from collections.abc import AsyncIterable, Iterator
from pathlib import Path
from typing import Any

import pytest

import srt
from srt._types import UsageSummary
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


def test_a_rebase_that_loses_to_a_delete_names_the_session(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer moves the head (a conflict), then another process deletes the
    session while this one waits to rebase: the re-read finds it gone. Before: a plain
    ``SessionError`` "was deleted or replaced"."""
    with srt.Runtime(store_url) as rt, srt.Runtime(store_url) as other:
        s = rt.session("notes")
        s.append(U)
        other.session("notes").append(A)  # the head moves: s's next append conflicts
        waits: list[int] = []

        def deleted_meanwhile(attempt: int, deadline: float) -> None:
            waits.append(attempt)
            other.delete("notes")

        monkeypatch.setattr("srt._chain._backoff", deleted_meanwhile)
        said = r"session 'notes' was deleted \(by another handle or process\); nothing was written"
        with pytest.raises(srt.SessionNotFoundError, match=f"{said}: open or create it again"):
            s.append({"role": "user", "content": "more"}, rebase=True)
        assert waits == [1] and other.sessions() == []


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


def test_the_plain_streams_stay_plain_iterables_for_the_web_frameworks(
    rt: srt.Runtime, srv: ProviderServer, p: srt.OpenAI
) -> None:
    """``async for`` over ``s.stream(...)`` stays Python's TypeError: an ``__aiter__``
    refusing it would make the stream an ``AsyncIterable``, and Starlette's
    ``StreamingResponse(s.stream(...))`` (Django's too), which iterates a plain iterable
    in threads, would take the async road and fail (it did, with that ``__aiter__``)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    s = rt.session("s")
    s.append(U)
    stream = s.stream(p, model="m")
    assert not isinstance(stream, AsyncIterable)
    assert not isinstance(s.run_stream(p, model="m"), AsyncIterable)
    stream.close()

    def chat(request: Request) -> StreamingResponse:
        return StreamingResponse(s.stream(p, model="m"), media_type="text/plain")

    with TestClient(Starlette(routes=[Route("/", chat)])) as client:
        got = client.get("/")
    assert got.status_code == 200 and got.text.startswith("reply 1 to hi")
    assert [m["content"] for m in s.messages()] == ["hi", got.text]


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


# -- 4. the sweep: every public method with arguments of the wrong kind ---------------------

#: Arguments of the wrong kind a careless user passes.
BAD: list[Any] = [
    None,
    "str",
    5,
    {},
    b"x",
    -1,
    2**70,
    object(),
    0.5,
    ["x"],
    float("nan"),
    float("inf"),
]


def _good(name: str, tmp: Path, p: srt.OpenAI) -> Any:
    """A value that fits parameter ``name``, for the parameters not under test."""
    table: dict[str, Any] = {
        "name": "fresh",
        "old": "s",
        "new": "t",
        "dest": str(tmp / "copy.db"),
        "session_name": "s",
        "seconds": 3600,
        "key": None,
        "provider": p,
        "summarizer": p,
        "model": "m",
        "end": 1,
        "summary": "earlier: a greeting",
        "index": 0,
        "message": U,
        "record": "nope",
        "n": 1,
        "format": "openai.chat",
    }
    return table.get(name, inspect.Parameter.empty)


def _state(rt: srt.Runtime) -> Any:
    """What a refused call must leave as it was: every session's head and length, and
    the ledger."""
    heads = []
    for info in rt.sessions():
        row = rt.store.get_session(info.name)
        heads.append((info.name, row.head if row else None, len(rt.session(info.name))))
    return heads, len(rt.calls())


def _drain(out: Any) -> None:
    if inspect.iscoroutine(out):
        out = asyncio.run(out)
    if hasattr(out, "__aiter__") and not hasattr(out, "__iter__"):

        async def main() -> None:
            async for _ in out:
                pass

        asyncio.run(main())
    elif hasattr(out, "__aiter__") and isinstance(out, srt.drivers.AsyncReplyStream):

        async def amain() -> None:
            async for _ in out:
                pass

        asyncio.run(amain())
    elif hasattr(out, "__iter__") and not isinstance(out, (list, tuple, dict, str, bytes)):
        for _ in out:
            pass


def _methods() -> list[tuple[str, str, str]]:
    out = []
    for cls in (srt.Runtime, srt.Session):
        for attr in sorted(dir(cls)):
            f = getattr(cls, attr)
            if attr.startswith("_") or not inspect.isfunction(f) or attr in ("close", "remains"):
                continue
            for param in list(inspect.signature(f).parameters.values())[1:]:
                if param.kind is not param.VAR_KEYWORD:
                    out.append((cls.__name__, attr, param.name))
    return out


METHODS = _methods()


def test_the_sweep_finds_the_methods() -> None:
    names = {(c, m) for c, m, _ in METHODS}
    assert {("Runtime", "gc"), ("Session", "send"), ("Session", "restore")} <= names
    assert len(METHODS) > 60


@pytest.mark.parametrize(("cls", "method", "param"), METHODS, ids=[".".join(m) for m in METHODS])
def test_every_public_method_refuses_the_wrong_kind_with_an_srt_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    srv: ProviderServer,
    p: srt.OpenAI,
    cls: str,
    method: str,
    param: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # (backup("str") is a path: written here)
    template = tmp_path / "template.db"
    with srt.Runtime(str(template)) as rt:  # (a session of 4 messages and a ledger row)
        rt.session("s").append(U, A, {"role": "user", "content": "and?"})
        rt.session("s").send(p, model="m")
    escaped = []
    for i, bad in enumerate(BAD):
        where = tmp_path / str(i)
        where.mkdir()
        shutil.copyfile(template, where / "srt.db")  # (each wrong value on a fresh copy)
        with srt.Runtime(str(where / "srt.db")) as rt:
            s = rt.session("s")
            before = _state(rt)
            assert before == ([("s", before[0][0][1], 4)], 1)
            owner: Any = rt if cls == "Runtime" else s
            f = getattr(owner, method)
            sig = inspect.signature(f)
            args: list[Any] = []
            kwargs: dict[str, Any] = {}
            for q in sig.parameters.values():
                if q.kind is q.VAR_KEYWORD:
                    continue
                value = bad if q.name == param else _good(q.name, where, p)
                if value is inspect.Parameter.empty:
                    if q.name != param and (q.default is not q.empty or q.kind is q.VAR_POSITIONAL):
                        continue
                    value = bad
                positional = q.kind in (q.POSITIONAL_ONLY, q.POSITIONAL_OR_KEYWORD)
                if q.kind is q.VAR_POSITIONAL or (positional and not kwargs):
                    args.append(value)
                else:
                    kwargs[q.name] = value
            try:
                _drain(f(*args, **kwargs))
            except srt.ProviderError:  # (sent: its ledger row is kept, the history not moved)
                assert _state(rt)[0] == before[0], f"{method}({param}={bad!r:.30}) moved a head"
            except srt.SrtError:
                after = _state(rt)
                assert after == before, f"{method}({param}={bad!r:.30}) wrote before refusing"
            except Exception as exc:  # (the escapes the sweep is for)
                escaped.append(f"{param}={bad!r:.30}: {type(exc).__name__}: {exc}"[:200])
    assert escaped == []


#: The classes of ``srt.__all__`` a user makes (the providers' are swept in
#: test_api_careless_providers.py), and the totals rt.usage() makes from rt.calls().
MADE: list[Any] = [
    getattr(srt, n)
    for n in srt.__all__
    if inspect.isclass(getattr(srt, n))
    and not issubclass(getattr(srt, n), BaseException)
    and not getattr(srt, n).__module__.startswith(("srt.providers", "srt.wire"))
] + [UsageSummary.of, srt.tool]


def _made() -> list[tuple[Any, str]]:
    out = []
    for f in MADE:
        for q in inspect.signature(f).parameters.values():
            if q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD):
                out.append((f, q.name))
    return out


@pytest.mark.parametrize(("f", "param"), _made(), ids=[f"{f.__qualname__}.{q}" for f, q in _made()])
def test_every_public_constructor_refuses_the_wrong_kind_with_an_srt_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, f: Any, param: str
) -> None:
    """Before: ``srt.Session("notes")`` a TypeError (or an AttributeError), ``Usage(
    input_tokens="3")`` a TypeError and ``-1`` a plain ValueError, ``Pricing(local=None)``
    a TypeError, ``UsageSummary.of(None)`` a TypeError."""
    monkeypatch.chdir(tmp_path)  # (Runtime("str") is a file: made here)
    escaped = []
    params = list(inspect.signature(f).parameters.values())
    for bad in BAD:
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for q in params:
            if q.kind in (q.VAR_POSITIONAL, q.VAR_KEYWORD):
                continue
            if q.name == param:
                value = bad
            elif q.default is q.empty:
                value = "x"
            else:
                continue
            if q.kind is q.POSITIONAL_ONLY:
                args.append(value)
            else:
                kwargs[q.name] = value
        try:
            made = f(*args, **kwargs)
        except srt.SrtError:
            continue
        except Exception as exc:
            escaped.append(f"{param}={bad!r:.30}: {type(exc).__name__}: {exc}"[:200])
            continue
        if isinstance(made, srt.Runtime):
            made.close()
    assert escaped == []


def test_pricing_refuses_one_string_of_local_models() -> None:
    """Before: ``local="llama*"`` was read a character at a time, and its ``"*"`` priced
    every model as local, free."""
    with pytest.raises(srt.ConfigError, match=r"local takes a list .* local=\('llama\*',\)"):
        srt.Pricing(local="llama*")
    pricing = srt.Pricing(local=["llama*"])
    assert pricing.is_local("llama3") and not pricing.is_local("gpt-4o")


def test_a_session_made_by_hand_says_where_sessions_come_from(rt: srt.Runtime) -> None:
    for call in (lambda: srt.Session("notes"), lambda: srt.Session(rt, "notes")):
        with pytest.raises(srt.ConfigError, match=r"s = rt\.session\(name\)"):
            call()
    assert rt.sessions() == []


def test_append_refuses_a_model_that_is_no_name(rt: srt.Runtime) -> None:
    """Before: ``append(m, model=5)`` appended, naming no model."""
    s = rt.session("s")
    for model in (5, "", b"m", ["m"]):
        with pytest.raises(srt.ConfigError, match="model must be a non-empty string"):
            s.append(U, model=model)
    assert len(s) == 0
    s.append(U, model="gpt-4o")
    assert len(s) == 1


def test_run_refuses_an_approve_hook_that_is_no_function(
    rt: srt.Runtime, srv: ProviderServer, p: srt.OpenAI
) -> None:
    """Before: ``approve="yes"`` was taken, and the first tool call, after a billed
    request, raised "'str' object is not callable"."""
    s = rt.session("s")
    s.append(U)

    def weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    for approve in ("yes", True, 1):
        with pytest.raises(
            srt.ConfigError, match=r"approve must be a function of an srt\.ToolCall"
        ):
            s.run(p, model="m", tools=[weather], approve=approve)
    assert srv.log == [] and len(s) == 1 and rt.calls() == []


def test_append_refuses_an_endless_timeout(store_url: str) -> None:
    """Before: ``timeout=float("inf")`` was an ``OverflowError`` on PostgreSQL (its
    lock_timeout in ms), and taken on SQLite; NaN was already refused."""
    with srt.Runtime(store_url) as rt:
        s = rt.session("s")
        for timeout in (float("inf"), float("nan"), -1, "10", True):
            with pytest.raises(srt.ConfigError, match="timeout must be a finite number of seconds"):
                s.append(U, timeout=timeout)
        assert len(s) == 0 and len(rt.session("s")) == 0
        s.append(U, timeout=0.5)
        assert len(rt.session("s")) == 1


def test_append_takes_a_timeout_longer_than_a_lock_timeout_can_hold(store_url: str) -> None:
    """A finite timeout of years waits as long as the engine can say (PostgreSQL's
    ``lock_timeout`` holds at most 2**31 - 1 ms, about 24.8 days); before, it was a
    ``StoreError`` about ``lock_timeout`` on PostgreSQL and taken on SQLite."""
    with srt.Runtime(store_url) as rt:
        s = rt.session("s")
        s.append(U, timeout=1e9)
        assert len(rt.session("s")) == 1


def test_a_methods_own_argument_mistakes_are_config_errors(tmp_path: Path) -> None:
    """A misspelled keyword, a missing or an extra argument of a public method of
    ``Runtime`` or ``Session`` was Python's ``TypeError``; a ``TypeError`` raised inside a
    method is left as it is (only the call's own binding is translated)."""
    with srt.Runtime(str(tmp_path / "a.db")) as rt:
        s = rt.session("s")
        s.append(U)
        cases: list[tuple[Any, str]] = [
            (
                lambda: rt.session("s", creat=False),
                r"Runtime\.session\(\) takes no creat= option; did you mean create=\?",
            ),
            (
                lambda: rt.gc(dryrun=True),
                r"Runtime\.gc\(\) takes no dryrun= option; did you mean dry_run=\?",
            ),
            (
                lambda: s.append(U, rebse=True),
                r"Session\.append\(\) takes no rebse= option; did you mean rebase=\?",
            ),
            (lambda: s.send(), r"Session\.send\(\): missing a required argument: 'provider'"),
            (
                lambda: s.request("openai.chat"),
                r"Session\.request\(\): missing a required argument: 'model'",
            ),
            (
                lambda: s.rewind(1, 2, 3),
                r"Session\.rewind\(\) takes 1 positional argument, got 3: the others are",
            ),
            (lambda: s.messages(zzz=1), r"Session\.messages\(\) takes no zzz= option"),
        ]
        for call, match in cases:
            with pytest.raises(srt.ConfigError, match=match):
                call()
        assert len(rt.session("s")) == 1 and rt.gc(dry_run=True).nodes == 0
        # The signatures are the methods' own (docs and help() read them).
        assert "rebase" in inspect.signature(srt.Session.append).parameters
        assert "create" in inspect.signature(srt.Runtime.session).parameters


def test_a_type_error_inside_a_method_is_not_taken_for_the_calls() -> None:
    from srt._types import binding_errors_typed

    @binding_errors_typed
    class Thing:
        def run(self, n: int) -> int:
            return n + "1"  # type: ignore[operator, no-any-return]  # a bug inside

    with pytest.raises(TypeError, match="unsupported operand"):
        Thing().run(1)
    with pytest.raises(srt.ConfigError, match=r"Thing\.run\(\) takes no m= option"):
        Thing().run(m=1)  # type: ignore[call-arg]
