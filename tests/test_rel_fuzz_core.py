"""The core fuzz target (``bench/fuzz/fuzz_core.py``) driven by Hypothesis in CI.

The soak runs the same target under atheris against an ASan build of ``_core``
(instructions in the target's docstring and in ``docs/reliability.md``). Here, with
no libFuzzer, Hypothesis feeds it 10,000 inputs (100,000 with ``SRT_SOAK=1``); a
crash would take the test process down, a mismatch with the pure-Python twin
fails the test.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rel_support.common import SOAK, emit

TARGET = Path(__file__).resolve().parents[1] / "bench" / "fuzz" / "fuzz_core.py"
N = int(os.environ.get("SRT_REL_EXAMPLES") or (100_000 if SOAK else 10_000))


def load_target() -> Any:
    spec = importlib.util.spec_from_file_location("srt_fuzz_core", TARGET)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fuzz_core_against_its_twin(capsys: Any, tmp_path_factory: Any) -> None:
    target = load_target()
    count = [0]

    @settings(max_examples=N, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.binary(max_size=2048))
    @example(b"")
    @example(bytes(range(256)) * 8)
    @example(b"\x03" + b"\xff" * 300)
    def prop(data: bytes) -> None:
        count[0] += 1
        target.run(data)

    t0 = time.monotonic()
    prop()
    figures = {"inputs": count[0], "findings": 0, "seconds": round(time.monotonic() - t0, 1)}
    emit("fuzz_core_hypothesis", figures, capsys, tmp_path_factory.getbasetemp())
    assert count[0] >= min(N, 10_000)
