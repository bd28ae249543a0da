"""``python -m srt.bench --workload gateway`` at a small scale: it runs and its figures hold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from srt.bench.gateway import run_gateway
from srt.bench.gwreport import lines


def test_gateway_workload_small(tmp_path: Path, pg_url: str) -> None:
    r = run_gateway(
        str(tmp_path),
        turns=8,
        conversations=3,
        conversation_turns=2,
        forks=2,
        cache_turns=4,
        pg_workers=2,
        pg_url=pg_url,
    )
    assert r["overhead"]["turns"] == 8 and r["overhead"]["p50_ms"] > 0
    assert r["request_bytes"]["max"] - r["request_bytes"]["turn_2"] < 200
    for rules in ("anthropic", "bedrock"):
        assert r["cache"][rules]["min_share_from_turn2"] >= 0.9
        assert r["cache"][rules]["baseline_mean_share"] == 0.0
    assert r["storage"]["ratio"] < r["storage"]["naive_copy_ratio"]
    assert r["concurrency_sqlite_1_worker"]["errors"] == {}
    assert r["concurrency_postgres"]["errors"] == {}
    assert r["concurrency_postgres"]["requests"] == 6
    assert r["concurrency_postgres"]["cpu_ms_per_request"]["gateway"] > 0
    assert r["fault"]["stored_status"] == "failed"  # a server_error, as OpenAI says it
    # killed 1.5 s into the stream: its 0.5 s checkpoints kept part of the text
    assert r["fault"]["stored_chars"] > 0
    assert r["fault"]["other_conversation_intact"] is True
    assert any("overhead" in line for line in lines({**r, "load_after": r["load"]}))


def test_pair_script_runs(tmp_path: Path) -> None:
    """bench/gateway_pair.py runs two gateways side by side (both on the installed tree
    here) and reports both; no timing is asserted."""
    out = tmp_path / "pair.json"
    script = Path(__file__).resolve().parents[1] / "bench" / "gateway_pair.py"
    done = subprocess.run(
        [sys.executable, str(script), "--turns", "4", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    r = json.loads(out.read_text())
    for k in ("A", "B"):
        assert r[k]["tree"] == "installed"
        assert r[k]["p50_ms"] > 0 and r[k]["inside_p50_ms"] > 0
        assert r[k]["cpu_ms_per_turn"] >= 0
    assert done.stdout.count("Server-Timing p50") == 2
