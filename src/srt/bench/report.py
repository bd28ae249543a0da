"""The bench's text output: the environment header, one table per workload, the targets."""

from __future__ import annotations

import argparse
import os
from typing import IO, Any

from . import gwreport, loopreport, tasks


def open_private(path: str) -> IO[bytes]:
    """``path`` opened to be written anew, readable by its owner only (0600, whatever the
    umask, also when an older file was there): the bench's ``--json`` and ``--plot``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "wb")


# (workload, key, label, op, bound): the targets, each a ratio from one run.
TARGETS: list[tuple[str, str, str, str, float]] = [
    ("send", "floor_ratio_1000", "send, N=1,000: turn minus server time / floor (x)", "<=", 1.5),
    ("send", "floor_ratio_10000", "send, N=10,000: turn minus server time / floor (x)", "<=", 1.5),
    ("send", "alloc_slope", "send: allocations per turn, log-log slope 1k->10k", "<=", 0.1),
    (
        "send",
        "vs_stateless_1000",
        "send, N=1,000: stateless json.dumps client (x slower)",
        ">=",
        10.0,
    ),
    (
        "edits",
        "after_edit_vs_steady_1000",
        "edits, N=1,000: build after rewind/edit / steady build (x)",
        "<=",
        2.0,
    ),
    (
        "edits",
        "after_edit_vs_steady_10000",
        "edits, N=10,000: build after rewind/edit / steady build (x)",
        "<=",
        2.0,
    ),
    ("reads", "messages_vs_naive", "reads: messages() / naive load into dicts (x)", "<=", 1.0),
    ("reads", "cold_messages_vs_naive", "reads: cold open + messages() / naive (x)", "<=", 1.0),
    ("reads", "cold_build_speedup", "reads: cold open + build vs naive (x faster)", ">=", 3.0),
    (
        "chat",
        "build_vs_dumps",
        "chat: build only (body dropped) vs json.dumps (x faster)",
        ">=",
        50.0,
    ),
    ("chat", "build_vs_join", "chat: build only (body dropped) vs b''.join (x)", "<=", 2.0),
    ("chat", "cold_vs_naive", "chat: cold build vs naive store (x faster)", ">=", 3.0),
    ("chat", "append_vs_bare", "chat: append vs bare APSW commit (x)", "<=", 2.0),
    ("chat", "db_vs_text", "chat: database / message text (x)", "<=", 1.25),
    ("chat", "wal_vs_naive", "chat: WAL bytes per message / naive store's (x)", "<=", 2.0),
    ("chat", "over_text_vs_naive", "chat: all bytes written / text, vs naive's (x)", "<=", 2.0),
    ("chat", "append_full_vs_naive", "chat: append at synchronous=FULL / naive (x)", "<=", 1.2),
    ("chat", "growth_r2", "chat: database grows linearly (R^2 of size vs text)", ">=", 0.99),
    ("formats", "min_ratio", "formats: slowest format vs json.dumps (x faster)", ">=", 30.0),
    ("many", "rss_loaded_vs_allowance", "many: RSS / (1.5 x unique + 2 KB x sessions)", "<=", 1.0),
    ("many", "rss_hot_vs_allowance", "many, requests built: RSS / allowance", "<=", 1.0),
    ("budget", "rss_vs_allowance", "budget: RSS / (budget + 1.5 x unique + 2 KB each)", "<=", 1.0),
    ("window", "openai.cache_aware", "window: cache_aware, cached share (OpenAI)", ">=", 0.80),
    ("window", "openai.sliding", "window: sliding, cached share (OpenAI)", "<", 0.10),
    (
        "window",
        "anthropic.cache_aware",
        "window: cache_aware, cached share (Anthropic)",
        ">=",
        0.80,
    ),
    ("window", "anthropic.sliding", "window: sliding, cached share (Anthropic)", "<", 0.10),
    (
        "tasks",
        "min_later_share",
        "tasks: each later step's prompt read from cache (min)",
        ">=",
        0.80,
    ),
    ("sharegpt", "openai.eff", "sharegpt: srt reuse efficiency (OpenAI rules)", ">=", 0.98),
    ("sharegpt", "anthropic.eff", "sharegpt: srt reuse efficiency (Anthropic rules)", ">=", 0.98),
    (
        "sharegpt",
        "openai.fewer20",
        "sharegpt: fewer uncached vs stateless, >=20 msgs (OpenAI)",
        ">=",
        0.90,
    ),
    (
        "sharegpt",
        "anthropic.fewer20",
        "sharegpt: fewer uncached vs stateless, >=20 msgs (Anthropic)",
        ">=",
        0.90,
    ),
    (
        "real",
        "fewer_evaluated_vs_nocache",
        "real: fewer evaluated tokens vs cache-off client",
        ">=",
        0.90,
    ),
    (
        "real",
        "never_worse",
        "real: srt evaluates no more than the cached client (1 = yes)",
        ">=",
        1.0,
    ),
    *gwreport.TARGETS,
]


def header(env: dict[str, str]) -> str:
    lines = ["srt bench"]
    lines += [f"  {k:<9} {v}" for k, v in env.items()]
    return "\n".join(lines)


def scale(args: argparse.Namespace, chosen: tuple[str, ...]) -> str:
    parts = []
    for name in chosen:
        if name == "chat":
            parts.append(
                f"chat {args.turns} turns (system {args.system_chars} chars, user "
                f"{args.user_chars[0]}-{args.user_chars[1]}, assistant "
                f"{args.assistant_chars[0]}-{args.assistant_chars[1]})"
            )
        elif name == "agent":
            parts.append(f"agent {args.tasks} tasks")
        elif name == "branching":
            parts.append(f"branching {args.ops} ops")
        elif name == "many":
            parts.append(f"many {args.sessions} x {args.session_turns} turns")
        elif name == "budget":
            parts.append(
                f"budget {args.budget_sessions} x {args.session_turns} turns, "
                f"{args.memory_budget} MiB"
            )
        elif name in ("send", "edits"):
            parts.append(f"{name} {','.join(map(str, args.send_turns))} turns")
        elif name == "sharegpt":
            parts.append(f"sharegpt {args.conversations or 'all'} conversations")
        elif name == "window":
            parts.append(f"window {args.window_turns} turns")
        else:
            parts.append(name)
    if args.real:
        parts.append(
            f"real {args.real_conversations} conversations ({args.real_replies} replies, "
            f"max_tokens {args.real_max_tokens}, ctx {args.real_ctx})"
        )
    return f"seed {args.seed}; " + "; ".join(parts)


def _us(d: dict[str, float]) -> str:
    return f"{d['p50']:>10.1f} {d['p99']:>10.1f}"


def _chat(r: dict[str, Any]) -> list[str]:
    b, a, q = r["build_us"], r["append_us"], r["ratios"]
    lines = [
        f"chat: {r['turns']} turns, last {r['tail']} timed, final body "
        f"{r['body_bytes'] / 1e6:.2f} MB",
        f"  next-request build at N={r['turns']} (us)    p50        p99   srt is"
        "   (build only: Session.send's real cost is the send workload)",
    ]
    rows = [
        ("srt", "srt build only, last body dropped"),
        ("srt_held", "srt build only, last body held"),
        ("naive", "naive: SQLite load + json.dumps"),
        ("dumps", "stateless json.dumps"),
        ("orjson", "stateless orjson.dumps"),
        ("join", "one b''.join of srt's bytes"),
    ]
    for k, label in rows:
        if k not in b:
            continue
        if k == "srt":
            note = ""
        elif k == "srt_held":
            note = f"{b['dumps']['p50'] / b[k]['p50']:.1f}x faster than json.dumps"
        elif k == "join":
            note = f"{b['srt']['p50'] / b['join']['p50']:.2f}x the join"
        else:
            note = f"{b[k]['p50'] / b['srt']['p50']:.1f}x faster"
        lines.append(f"  {label:<32}{_us(b[k])}   {note}")
    if "orjson" not in b:
        lines.append("  (orjson is not installed: no orjson baseline)")
    c = r["cold_us"]
    lines.append(
        f"  cold (new Runtime, open, build)  srt {c['srt']:.0f} us; naive {c['naive']:.0f} us "
        f"({q['cold_vs_naive']:.1f}x); stateless dumps {c['dumps']:.0f} us "
        f"({q['cold_vs_dumps']:.1f}x)"
    )
    sp = r["serialized_per_turn"]
    lines.append(
        f"  messages serialized per turn     srt {sp['srt']:.1f}; naive and stateless "
        f"{sp['naive']:.0f}"
    )
    lines.append(
        f"  append one message (us)          srt p50 {a['srt']['p50']:.1f} p99 "
        f"{a['srt']['p99']:.1f}; bare APSW p50 {a['bare']['p50']:.1f} p99 "
        f"{a['bare']['p99']:.1f}: {q['append_vs_bare']:.2f}x"
    )
    w = r["written_per_message"]
    lines.append(
        f"  bytes written per message        srt {w['srt'] / 1e3:.1f} KB; bare APSW "
        f"{w['bare'] / 1e3:.1f} KB; naive {w['naive'] / 1e3:.1f} KB (write() calls)"
    )
    if r.get("writes"):
        ws, wn = r["writes"]["srt"], r["writes"]["naive"]
        lines.append(
            f"  counted by the VFS, per message  WAL srt {ws['wal'] / 1e3:.1f} KB, naive "
            f"{wn['wal'] / 1e3:.1f} KB ({q['wal_vs_naive']:.2f}x); all bytes / text srt "
            f"{ws['over_text']:.2f}, naive {wn['over_text']:.2f} ({q['over_text_vs_naive']:.2f}x)"
        )
    if r.get("durable"):
        d = r["durable"]["append_us"]
        lines.append(
            f"  append at synchronous=FULL (us)  srt p50 {d['srt']['p50']:.0f} p99 "
            f"{d['srt']['p99']:.0f}; naive insert p50 {d['naive']['p50']:.0f} p99 "
            f"{d['naive']['p99']:.0f}: {q['append_full_vs_naive']:.2f}x"
        )
    g = r["growth"]
    lines.append(
        f"  database                         {r['db_bytes'] / 1e6:.2f} MB for "
        f"{r['text_bytes'] / 1e6:.2f} MB of text = {q['db_vs_text']:.2f}x; grows "
        f"{g['slope']:.2f} B per text byte (R^2 {g['r2']:.4f}, 2nd/1st half slope "
        f"{g['halves']:.2f})"
    )
    lines.append(f"  bodies checked against json.dumps: {r['checked_bodies']}")
    if r.get("by_n"):
        lines.append("  against N (hot p50 / p99 us per tenth of the run; cold at checkpoints)")
        lines.append(
            "    turns          srt p50    p99   json.dumps p50  naive p50  orjson p50  "
            "dumps/srt  cold srt/naive"
        )
        for row in r["by_n"]:
            lo, hi = row["turns"]
            cold = "; ".join(
                f"N={n}: {c['srt'] / 1e3:.1f}/{c['naive'] / 1e3:.1f} ms"
                for n, c in row["cold"].items()
            )
            orj = f"{row['orjson']['p50']:>10.0f}" if "orjson" in row else f"{'-':>10}"
            lines.append(
                f"    {lo:>5}-{hi:<6} {row['srt']['p50']:>9.0f} {row['srt']['p99']:>6.0f} "
                f"{row['dumps']['p50']:>15.0f} {row['naive']['p50']:>10.0f} {orj}  "
                f"{row['dumps']['p50'] / row['srt']['p50']:>8.1f}x  {cold}"
            )
    return lines


def _formats(r: dict[str, Any]) -> list[str]:
    lines = ["formats: next-request build per wire format (hot, median us, same body)"]
    for name, x in r.items():
        if isinstance(x, dict):
            lines.append(
                f"  {name:<20} srt {x['srt_us']:8.1f}   json.dumps {x['dumps_us']:9.1f}   "
                f"{x['ratio']:6.1f}x"
            )
    return lines


def _agent(r: dict[str, Any]) -> list[str]:
    b = r["build_us"]
    lines = [
        f"agent: {r['tasks']} tasks, {r['model_calls']} model calls, {r['messages']} messages "
        f"({r['tool_results']} tool results), final body {r['final_body_bytes'] / 1e6:.2f} MB",
        "  next-request build (us)            p50        p99",
    ]
    for k, label in (
        ("srt", "srt openai.chat (hot)"),
        ("srt_anthropic", "srt anthropic (hot)"),
        ("dumps", "stateless json.dumps"),
        ("orjson", "stateless orjson.dumps"),
        ("append", "srt append per step"),
        ("bare", "bare APSW per step"),
    ):
        if k in b:
            lines.append(f"  {label:<28}{_us(b[k])}")
    orj = r["build_vs_orjson"]
    lines.append(
        f"  srt is {r['build_vs_dumps']:.1f}x json.dumps"
        + (f", {orj:.1f}x orjson" if orj else "")
        + f"; append {r['append_vs_bare']:.2f}x bare; database "
        f"{r['db_vs_canonical']:.2f}x the canonical JSON"
    )
    lines.append(
        f"  serialized per model call: srt {r['serialized_per_call']:.1f} (new messages, "
        f"canonical + Anthropic render) of {r['messages']} held; checked {r['checked_bodies']}"
    )
    return lines


def _branching(r: dict[str, Any]) -> list[str]:
    lat = r["latency_us"]
    return [
        f"branching: {r['ops']} forks and edits of a {r['turns']}-turn chat",
        "  (us)                  srt p50     p99    naive p50     p99",
        f"  fork + 2 messages  {_us(lat['fork'])}  {_us(lat['naive_fork'])}",
        f"  edit + reply       {_us(lat['edit'])}  {_us(lat['naive_edit'])}",
        f"  build on branch    {_us(lat['build'])}  {_us(lat['naive_build'])}",
        f"  storage per op: srt {r['db_growth_per_op'] / 1e3:.1f} KB, naive copy "
        f"{r['naive_growth_per_op'] / 1e3:.1f} KB; bodies checked {r['checked_bodies']}",
    ]


def _many(r: dict[str, Any]) -> list[str]:
    lines = [
        f"many: {r['sessions']} sessions x {r['turns']} turns sharing a system prompt; "
        f"{r['unique_bytes'] / 1e6:.1f} MB unique; written in {r['write_s']:.1f} s; "
        f"database {r['db_bytes'] / 1e6:.1f} MB",
        f"  allowance 1.5 x unique + 2 KB x sessions = {r['rss_allowance'] / 1e6:.1f} MB",
    ]
    for mode, label in (
        ("loaded", "srt, sessions loaded"),
        ("hot", "srt, requests built"),
        ("hot2", "srt, built for two formats"),
        ("dropped", "srt, two formats, dropped"),
        ("stateless", "stateless lists of dicts"),
    ):
        if f"rss_{mode}" not in r:
            continue
        lines.append(
            f"  RSS growth, {label:<26} {r[f'rss_{mode}'] / 1e6:7.1f} MB = "
            f"{r[f'rss_{mode}_vs_allowance']:.2f}x allowance "
            f"({r[f'rss_{mode}_per_session'] / 1e3:.1f} KB/session beyond unique bytes)"
        )
    tp = r["turns_per_s"]
    lines.append(
        "  turns/s (append + build + append), processes x threads: "
        + ", ".join(f"{k} {v:.0f}" for k, v in tp.items())
    )
    return lines


def _budget(r: dict[str, Any]) -> list[str]:
    return [
        f"budget: {r['sessions']} sessions x {r['turns']} turns, Runtime(memory_budget="
        f"{r['budget'] / 2**20:.0f} MiB), every session held and built for two formats",
        f"  RSS growth {r['rss'] / 1e6:.1f} MB; allowance budget + 1.5 x unique "
        f"({r['unique_bytes'] / 1e6:.1f} MB) + 2 KB x sessions = "
        f"{r['rss_allowance'] / 1e6:.1f} MB: {r['rss_vs_allowance']:.2f}x",
    ]


def _replay(name: str, r: dict[str, Any]) -> list[str]:
    m = r["messages"]
    lines = [
        f"{name}: {r['dataset'].get('replayed')} conversations, {m['turns']} turns (median "
        f"{m['median']} messages; {m['ge10']} with >= 10, {m['ge20']} with >= 20), "
        "local provider server"
    ]
    for rules in ("openai", "anthropic"):
        if rules not in r:
            continue
        x = r[rules]
        lines.append(
            f"  {rules} rules          input tok   cached    uncached  written  "
            "billed $   wire B/turn"
        )
        for kind, c in x["clients"].items():
            lines.append(
                f"    {kind:<14}{c['input_tokens']:>11,} {c['cached_tokens']:>10,} "
                f"{c['uncached_tokens']:>10,} {c['written_tokens']:>8,} "
                f"{c['billed_input_usd']:>9.3f} {c['wire_bytes_per_turn']:>10,.0f}"
            )
        for b in x.get("baselines", {}).values():
            extra = (
                f"; srt.savings models ${b['modelled_input_usd']:.3f} from srt's ledger"
                if "modelled_input_usd" in b
                else ""
            )
            lines.append(
                f"    srt saved ${b['saved_usd']:.3f} of input ({100 * b['saved_share']:.1f}%) "
                f"against {b['label']} (${b['input_usd']:.3f}{extra})"
            )
        lines.append(
            f"    srt reuse efficiency {100 * x['reuse_efficiency']:.2f}% of "
            f"{x['max_cacheable']:,} cacheable tokens (and {x['cached_beyond_own_prefix']:,} "
            "cached beyond its own prefix)"
        )
        for kind in x["clients"]:
            if kind == "srt":
                continue
            parts = []
            for m in (0, 20, 10):
                a = x[f"fewer_uncached_vs_{kind}_ge{m}"]
                if not a["n"]:
                    continue
                if m == 10:
                    what = f"{100 * a['median']:.1f}% median"
                else:
                    what = f"{100 * a['aggregate']:.1f}%"
                    if not x["clients"][kind]["cached_tokens"]:  # against no cache at all
                        what += f" (own-prefix bound {100 * a['bound']:.1f}%)"
                parts.append(f"{'all' if not m else f'>={m} msgs'} {what} (n={a['n']})")
            lines.append(f"    srt vs {kind:<10} fewer uncached: " + "; ".join(parts))
    return lines


def _window(r: dict[str, Any]) -> list[str]:
    lines = [f"window: {r['turns']} turns through a {r['budget']:,}-token window"]
    for key, x in r.items():
        if isinstance(x, dict):
            lines.append(
                f"  {key:<22} cached {100 * x['cached_share']:5.1f}% of "
                f"{x['input_tokens']:,} input tokens; peak prompt {x['peak_prompt_tokens']:,}"
            )
    return lines


def _real(r: dict[str, Any]) -> list[str]:
    st = r["settings"]
    replies = st.get("replies", "dataset")
    b = r.get("bound") or {}
    lines = [
        f"real: {r['model']} on llama.cpp's server, {len(r['conversations'])} ShareGPT "
        f"conversations ({r['conversations']} messages replayed); slots {st['slots']}, ctx "
        f"{st['ctx_size']}, cache_ram_mib {st['cache_ram_mib']}, max_tokens {st['max_tokens']}, "
        f"temperature {st['temperature']}, replies: "
        + ("the model's own" if replies == "model" else "the dataset's recorded ones"),
        "  client     requests  prompt tok  evaluated (prompt_n)  reused (cache_n)  cached_tokens"
        "  generated  replies as srt's",
    ]
    for kind, c in r["clients"].items():
        t = c["total"]
        same = (
            f"{t['replies_matched']}/{t['requests']}" if "replies_matched" in t else "(reference)"
        )
        lines.append(
            f"  {kind:<10}{t['requests']:>8} {t['prompt_tokens']:>11,} {t['prompt_n']:>21,} "
            f"{t['cache_n']:>17,} {t['cached_tokens']:>14,} {t.get('predicted_n', 0):>10,}"
            f"  {same}"
        )
    lines.append(
        f"  srt evaluates {100 * r['fewer_evaluated_vs_nocache']:.1f}% fewer tokens than the "
        f"cache-off client, {100 * r['fewer_evaluated_vs_cached']:.1f}% fewer than the "
        f"cached client; never worse than it: {r['srt_never_worse_than_cached']}"
    )
    if b:
        lines.append(
            f"  bound: {b['new_tokens']:,} tokens the slot cannot hold "
            f"({100 * r['fewer_evaluated_bound']:.1f}% fewer than cache-off): first turns "
            f"{b['first_turns']:,}, later user text {b['later_user_tokens']:,}, later template "
            f"and reply tails {b['later_other_tokens']:,}; evaluated beyond it: "
            + ", ".join(
                f"{k} {c['total']['excess_over_bound']:,}"
                for k, c in r["clients"].items()
                if k != "nocache"
            )
        )
    return lines


def section(name: str, r: dict[str, Any]) -> str:
    fn = {
        "send": loopreport.send,
        "edits": loopreport.edits,
        "reads": loopreport.reads,
        "budget": _budget,
        "chat": _chat,
        "formats": _formats,
        "agent": _agent,
        "branching": _branching,
        "many": _many,
        "window": _window,
        "real": _real,
        "tasks": tasks.lines,
        "gateway": gwreport.lines,
    }.get(name)
    lines = fn(r) if fn is not None else _replay(name, r)
    lines.append(f"  ({r.get('wall_s', 0.0):.1f} s)")
    return "\n" + "\n".join(lines)


def _value(results: dict[str, Any], workload: str, key: str) -> float | None:
    r = results.get(workload)
    if r is None:
        return None
    if workload == "chat":
        if key == "growth_r2":
            return float(r["growth"]["r2"])
        return float(r["ratios"][key])
    if workload == "formats":
        return min(float(x["ratio"]) for x in r.values() if isinstance(x, dict))
    if workload == "window":
        return float(r[key]["cached_share"])
    if workload == "sharegpt":
        rules, _, what = key.partition(".")
        if rules not in r:
            return None
        if what == "eff":
            return float(r[rules]["reuse_efficiency"])
        return float(r[rules]["fewer_uncached_vs_stateless_ge20"]["aggregate"])
    if workload == "gateway":
        return gwreport.value(r, key)
    if workload == "real" and key == "never_worse":
        return 1.0 if r["srt_never_worse_than_cached"] else 0.0
    return float(r[key]) if key in r else None  # (a size this run did not measure)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for workload, key, label, op, bound in TARGETS:
        v = _value(results, workload, key)
        if v is None:
            continue
        ok = {">=": v >= bound, "<=": v <= bound, "<": v < bound}[op]
        out.append(
            {
                "workload": workload,
                "key": key,
                "label": label,
                "value": v,
                "op": op,
                "bound": bound,
                "met": ok,
            }
        )
    return out


def targets_table(rows: list[dict[str, Any]]) -> str:
    lines = ["", "targets (each a ratio measured in this run)"]
    for t in rows:
        v, b = t["value"], t["bound"]
        share = (b < 1.0 and "slope" not in t["key"]) or t["key"].endswith(
            ("eff", "fewer20", "nocache")
        )
        fv, fb = (f"{100 * v:.1f}%", f"{100 * b:.1f}%") if share else (f"{v:.2f}", f"{b:.2f}")
        lines.append(
            f"  {t['label']:<62} {fv:>9}  {t['op']} {fb:<7} {'met' if t['met'] else 'MISSED'}"
        )
    return "\n".join(lines)
