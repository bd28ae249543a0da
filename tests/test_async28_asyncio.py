"""``Runtime(memory_budget=...)`` under asyncio: many tasks on one loop calling ``asend``
and ``astream`` on sessions that a small budget evicts all the time, cancelled at random
points (before the request, while the response is awaited, while streaming, while
waiting for the handle's turn behind another task).

Checked, in asyncio's debug mode with ``RuntimeWarning`` an error: after each
cancellation the session holds the turn whole or not at all (never the user message
without its reply); nothing escapes but ``CancelledError`` and ``srt`` errors; no
"Task exception was never retrieved" and no coroutine never awaited; the budget's count
comes back to what the runtime keeps once the handles are dropped; no thread is left
behind."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest

import srt
from srt.providers import OpenAI
from srt.testing import ProviderServer

MODEL = "gpt-4o-mini"
TASKS = 12
ROUNDS = 12


def conversation(i: int) -> list[dict[str, str]]:
    out = [{"role": "system", "content": f"system {i}. " * 40}]
    for t in range(8):
        out.append({"role": "user", "content": f"a{i} question {t} " * 3})
        out.append({"role": "assistant", "content": f"a{i} answer {t} " * 6})
    return out


def stored(rt: srt.Runtime, name: str) -> list[Any]:
    """The session's stored chain rows, as a fresh reader sees them."""
    store = rt._shared.store  # noqa: SLF001
    row = store.get_session(name)
    assert row is not None
    return store.chain(row.head) if row.head is not None else []


async def one_turn(
    rt: srt.Runtime, s: srt.Session, provider: OpenAI, rng: random.Random, tag: str
) -> None:
    user = {"role": "user", "content": f"{tag} asks"}
    if rng.random() < 0.5:
        reply = await s.asend(provider, model=MODEL, append=[user], user=tag)
        assert reply.message["content"].startswith("re ")
    else:
        async with s.astream(provider, model=MODEL, append=[user], user=tag) as st:
            async for _ in st:
                await asyncio.sleep(0)


async def scenario(rt: srt.Runtime, url: str, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    provider = OpenAI(api_key="sk-test", base_url=url + "/v1")
    own = [rt.session(f"a{i}") for i in range(TASKS)]  # one task's alone
    shared = [rt.session(f"b{i}") for i in range(3)]  # several tasks' on one handle
    counts = {"cancelled": 0, "whole": 0, "none": 0, "conflict": 0}

    async def owner(i: int) -> None:
        s = own[i]
        for r in range(ROUNDS):
            before = stored(rt, s.name)
            task = asyncio.ensure_future(one_turn(rt, s, provider, rng, f"a{i}-{r}"))
            if rng.random() < 0.6:
                await asyncio.sleep(rng.random() * 0.03)
                task.cancel()
            try:
                await task
                counts["whole"] += 1
            except asyncio.CancelledError:
                counts["cancelled"] += 1
            after = stored(rt, s.name)
            grew = len(after) - len(before)
            # The turn whole (the user's message and the reply, partial or not) or none.
            assert grew in (0, 2), (s.name, grew)
            assert [r[0] for r in after[: len(before)]] == [r[0] for r in before]
            if grew == 0:
                counts["none"] += 1
            assert len(s) == len(after)  # the handle holds no staged leftover
            if rng.random() < 0.3:
                len(shared[rng.randrange(3)])  # other sessions used: this one evicted

    async def sharer(i: int) -> None:
        for r in range(ROUNDS // 2):
            s = shared[rng.randrange(3)]
            task = asyncio.ensure_future(one_turn(rt, s, provider, rng, f"b{i}-{r}"))
            if rng.random() < 0.5:
                await asyncio.sleep(rng.random() * 0.03)  # maybe waiting for its turn
                task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                counts["cancelled"] += 1
            except srt.ConflictError:
                counts["conflict"] += 1

    try:
        await asyncio.gather(*(owner(i) for i in range(TASKS)), *(sharer(i) for i in range(4)))
    finally:
        await provider.aclose()
        provider.close()
    return counts


@pytest.mark.parametrize(("engine", "seed"), [("sqlite", 1), ("sqlite", 2), ("postgres", 3)])
def test_cancelled_async_turns_leave_whole_turns_and_a_right_count(
    tmp_path: Path, engine: str, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    where = contextlib.ExitStack()
    if engine == "postgres":  # (its persists go to the store's writer thread)
        from pg_support import fresh_url

        url = where.enter_context(fresh_url())
    else:
        url = str(tmp_path / "a.db")
    with where:
        run_scenario(url, seed, monkeypatch)


def run_scenario(url: str, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    with srt.Runtime(url) as rt:
        for i in range(TASKS):
            rt.session(f"a{i}").append(*conversation(i))
        for i in range(3):
            rt.session(f"b{i}").append(*conversation(100 + i))
    threads_before = set(threading.enumerate())
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    handled: list[dict[str, Any]] = []
    with ProviderServer() as srv:
        srv.respond("*", lambda _e, body, _u: f"re {body.get('user')} " * 20)
        srv.fault("*", "delay", count=None, seconds=0.01)
        with (
            warnings.catch_warnings(),
            srt.Runtime(url, memory_budget=20_000) as rt,
        ):
            warnings.simplefilter("error", RuntimeWarning)

            async def main() -> dict[str, int]:
                asyncio.get_running_loop().set_exception_handler(lambda _l, c: handled.append(c))
                return await scenario(rt, srv.url, seed)

            counts = asyncio.run(main(), debug=True)
            gc.collect()
            b = rt._shared.budget  # noqa: SLF001
            assert rt.memory["evictions"] > 20
            assert b.used == rt.memory["kept"] >= 0
            rt._shared.let_go(closing=False)  # noqa: SLF001
            assert b.used == 0
    assert counts["cancelled"] > 10 and counts["whole"] > 10 and counts["none"] > 0
    assert not handled, handled
    assert not unraisable, [(u.exc_value, u.object) for u in unraisable]
    left = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    assert not left, left
