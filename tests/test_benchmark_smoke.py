"""The throughput benchmark runs end to end in its quickest mode and reports sane numbers.

No speed thresholds here: the targets live in the benchmark's output, never in tests.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest
from rich.console import Console

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("oec_benchmark_throughput", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_latency_bound_counts_waves_and_caps_at_the_rollouts() -> None:
    bench = _load_benchmark()
    assert bench.latency_bound(64, 32, 1.0, calls=4) == pytest.approx(32 * 60 / 4)
    assert bench.latency_bound(2, 8, 1.0, calls=4) == pytest.approx(2 * 60 / 4)  # fewer rollouts than slots
    assert bench.latency_bound(5, 4, 1.0, calls=4) == pytest.approx(5 / (2 * 4) * 60)  # a second, partial wave
    assert bench.split_rollouts(64, 18) == (16, 4)
    assert bench.split_rollouts(2, 18) == (2, 1)


@pytest.mark.slow
def test_quickest_benchmark_run_reports_rates_ratios_and_sandbox_overhead(tmp_path: Path) -> None:
    bench = _load_benchmark()
    out = tmp_path / "results.json"
    console = Console(file=io.StringIO(), width=200)
    results = bench.main(["--quick", "--latency", "0.05", "--concurrency", "1,4", "--waves", "1",
                          "--min-rollouts", "2", "--sandbox-reps", "3", "--no-experiments", "--json", str(out)],
                         console=console)

    levels = results["levels"]
    assert {(r["concurrency"], r["grade"]) for r in levels} == {(1, True), (4, True), (1, False), (4, False)}
    for r in levels:
        assert r["rollouts"] == max(r["concurrency"], 2)
        assert r["ok_rollouts"] == r["rollouts"], r["exit_reasons"]  # every rollout ran the whole script
        assert r["server_requests"] == r["rollouts"] * bench.CALLS_PER_ROLLOUT
        assert r["rollouts_per_min"] > 0 and r["latency_bound_per_min"] > 0
        assert 0 < r["ratio"] <= 1.2
        assert (r["mean_grade_s"] > 0) == r["grade"]
        assert (r["grading_slots"] is not None) == r["grade"]

    box = results["sandbox_overhead"]
    assert set(box["commands"]) == {"true", "python -c pass"}
    for row in box["commands"].values():
        assert row["sandbox_ms"] > 0 and row["plain_ms"] > 0 and row["ratio"] > 0

    assert json.loads(out.read_text())["levels"] == json.loads(json.dumps(levels))
    printed = console.file.getvalue()
    assert "Rollout throughput" in printed and "Per-command sandbox overhead" in printed


HF_VS_LLAMACPP = BENCHMARK.parent / "hf_vs_llamacpp.py"


@pytest.mark.slow  # about 75 s on 2 cores: two model loads and a llama.cpp server start
def test_quickest_hf_vs_llamacpp_run_reports_every_setup_and_ratio(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("oec_benchmark_hf_vs_llamacpp", HF_VS_LLAMACPP)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    out = tmp_path / "results.json"
    console = Console(file=io.StringIO(), width=200)
    results = bench.main(["--quick", "--json", str(out)], console=console)

    assert results["llamacpp_error"] is None  # a missing llama.cpp install is a failure, as in its own tests
    rows = {(r["setup"], r["concurrency"]): r for r in results["rows"]}
    assert set(rows) == {(s, c) for s in bench.SETUPS for c in (1, 2)}
    for r in rows.values():
        assert r["completion_tokens"] > 0 and r["tokens_per_s"] > 0 and r["x_llamacpp"] > 0
    for c in (1, 2):
        after = rows[("hf after", c)]
        assert after["same_as_before"] is True  # greedy answers do not change with batching and reuse
        assert after["reused_share"] > 0 and rows[("hf before", c)]["reused_share"] == 0
    assert rows[("hf after", 2)]["max_batch"] == 2
    assert json.loads(out.read_text())["rows"][0]["setup"] == "hf before"
    assert "SmolLM2-135M decode speed" in console.file.getvalue()
