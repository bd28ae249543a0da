"""The ``reads`` workload: reading history back, srt against the naive store.

One conversation of ``turns`` turns (the ``chat`` workload's messages) is written to
srt and to the naive one-row-per-message store (``chat.NaiveStore``). Then, each
figure the median of ``reps`` runs, interleaved so that both see the same machine:

* ``messages``: ``Session.messages()`` on a session already loaded, against the naive
  store's load into dicts (``SELECT role, content ... ORDER BY id`` on an open
  connection, one dict per row): what a desktop app does to show a conversation;
* ``cold_messages``: a new ``Runtime`` opens the file, opens the session and calls
  ``messages()``, against a new connection doing the naive load;
* ``cold_build``: a new ``Runtime`` opens the file and builds the next request,
  against a new connection doing the naive load and ``json.dumps``;
* ``handle``: a new handle of the session on a ``Runtime`` already open (one per web
  request, say) builds the next request: while another handle of the session there is
  loaded (it copies that one's state); after the last one was dropped (it takes over
  what that one left, ``Runtime.session``); and where nothing of the session is in
  memory (it reads the store).

Every result is checked against the other client's (the same dicts, the same body).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from typing import Any

import apsw

from ..runtime import Runtime
from . import workloads
from .naive import MODEL, NaiveStore, _dumps


def _naive_load(conn: apsw.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT role, content FROM msgs WHERE session = ? ORDER BY id", ("bench",)
    ).fetchall()
    return [{"role": r, "content": c} for r, c in rows]


def _median(xs: list[int]) -> float:
    ys = sorted(xs)
    return ys[len(ys) // 2] / 1000.0  # ns -> us


def run_reads(
    workdir: str,
    turns: int = 1000,
    *,
    seed: int = 1,
    reps: int = 21,
    progress: Callable[[int, int], None] | None = None,
    system_chars: int = 4096,
    user: tuple[int, int] = (200, 800),
    assistant: tuple[int, int] = (500, 3000),
) -> dict[str, Any]:
    srt_path = os.path.join(workdir, "reads-srt.db")
    naive_path = os.path.join(workdir, "reads-naive.db")
    rt = Runtime(srt_path)
    s = rt.session("bench")
    naive = NaiveStore(naive_path)
    system, pairs = workloads.chat(
        turns, seed=seed, system_chars=system_chars, user=user, assistant=assistant
    )
    msgs = [system]
    for q, a in pairs:
        msgs += (q, a)
    s.append(*msgs)
    for m in msgs:
        naive.append("bench", m)
    text = sum(len(m["content"].encode("utf-8")) for m in msgs)
    rt.close()
    naive.conn.close()

    pc = time.perf_counter_ns
    t: dict[str, list[int]] = {
        k: []
        for k in (
            "srt_messages",
            "naive_messages",
            "srt_cold_messages",
            "naive_cold_messages",
            "srt_cold_build",
            "naive_cold_build",
            "handle_copied",
            "handle_kept",
            "handle_read",
        )
    }
    hot_rt = Runtime(srt_path)
    hot = hot_rt.session("bench")
    hot.messages()
    hot.request("openai.chat", model=MODEL, cache=False)
    open_rt = Runtime(srt_path)  # no handle of the session stays alive on it
    hot_conn = apsw.Connection(naive_path)
    want = _naive_load(hot_conn)
    want_body = _dumps(want)
    gc.collect()
    for i in range(reps):
        t0 = pc()
        got = hot.messages()
        t1 = pc()
        ref = _naive_load(hot_conn)
        t2 = pc()
        t["srt_messages"].append(t1 - t0)
        t["naive_messages"].append(t2 - t1)
        if got != ref:
            raise AssertionError("srt's messages() differ from the naive store's")
        del got, ref

        t0 = pc()
        cold = Runtime(srt_path)
        got = cold.session("bench").messages()
        cold.close()
        t1 = pc()
        conn = apsw.Connection(naive_path)
        ref = _naive_load(conn)
        conn.close()
        t2 = pc()
        t["srt_cold_messages"].append(t1 - t0)
        t["naive_cold_messages"].append(t2 - t1)
        if got != want or ref != want:
            raise AssertionError("a cold load differs from the naive store's")
        del got, ref

        t0 = pc()
        cold = Runtime(srt_path)
        body = cold.session("bench").request("openai.chat", model=MODEL, cache=False)
        cold.close()
        t1 = pc()
        conn = apsw.Connection(naive_path)
        nbody = _dumps(_naive_load(conn))
        conn.close()
        t2 = pc()
        t["srt_cold_build"].append(t1 - t0)
        t["naive_cold_build"].append(t2 - t1)
        if body != want_body or nbody != want_body:
            raise AssertionError("a cold build differs from the naive store's body")
        del body, nbody

        # A new handle while another is live (it copies that one's state), and one with
        # nothing of the session in memory (it reads the store); what each leaves is let
        # go at once, so the next copy copies and the next read reads.
        t0 = pc()
        body = hot_rt.session("bench").request("openai.chat", model=MODEL, cache=False)
        t1 = pc()
        hot_rt._shared.let_go(closing=False)  # noqa: SLF001
        t2 = pc()
        nbody = open_rt.session("bench").request("openai.chat", model=MODEL, cache=False)
        t3 = pc()
        open_rt._shared.let_go(closing=False)  # noqa: SLF001
        t["handle_copied"].append(t1 - t0)
        t["handle_read"].append(t3 - t2)
        if body != want_body or nbody != want_body:
            raise AssertionError("a new handle's build differs from the naive store's body")
        del body, nbody
        if progress is not None:
            progress(i + 1, 2 * reps)
    # A new handle after the last was dropped (it takes over what that one left), in a
    # loop of its own: what it keeps stays out of the figures above.
    kept_rt = Runtime(srt_path)
    kept_rt.session("bench").request("openai.chat", model=MODEL, cache=False)
    for i in range(reps):
        t0 = pc()
        body = kept_rt.session("bench").request("openai.chat", model=MODEL, cache=False)
        t1 = pc()
        t["handle_kept"].append(t1 - t0)
        if body != want_body:
            raise AssertionError("a new handle's build differs from the naive store's body")
        del body
        if progress is not None:
            progress(reps + i + 1, 2 * reps)
    hot_rt.close()
    open_rt.close()
    kept_rt.close()
    hot_conn.close()
    us = {k: _median(v) for k, v in t.items()}
    ratios = {
        # srt's time over the naive store's: <= 1 means srt is as fast or faster
        "messages_vs_naive": us["srt_messages"] / us["naive_messages"],
        "cold_messages_vs_naive": us["srt_cold_messages"] / us["naive_cold_messages"],
        # how many times faster srt's cold build is
        "cold_build_speedup": us["naive_cold_build"] / us["srt_cold_build"],
        # a new handle that copies a live one's state, or takes over what the last one
        # left, against one that reads the store
        "handle_copy_speedup": us["handle_read"] / us["handle_copied"],
        "handle_kept_speedup": us["handle_read"] / us["handle_kept"],
    }
    return {
        **ratios,
        "turns": turns,
        "messages": len(msgs),
        "text_bytes": text,
        "reps": reps,
        "us": us,
    }
