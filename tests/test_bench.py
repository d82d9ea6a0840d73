"""The benchmark harness runs, checks agreement, and reports peers it cannot run (no timing asserted)."""

import json

import pytest

from blas_helpers import skip_without
from lstmgen import blas
from lstmgen.bench import Case, bench_case, main, time_call
from lstmgen.lower.plan import BLAS_CHOICES


@pytest.mark.parametrize("blas_name", BLAS_CHOICES)
@pytest.mark.parametrize("case", [Case("tiny", 2, 3, 4, 5),
                                  Case("tiny-masked-backwards", 3, 4, 2, 3, masked=True, go_backwards=True)])
def test_bench_case_runs_every_available_implementation(monkeypatch, case, blas_name):
    """On MKL lstmgen runs in a process of its own (bench.IsolatedLstmgen), else beside the peers."""
    skip_without(blas_name)
    monkeypatch.setenv(blas.ENV, blas_name)
    row = bench_case(case, threads=1, repeats=2, rounds=2)
    assert row["lstmgen_process"] == ("its own" if blas_name == "mkl" else "the peers'")
    assert len(row["results"]["lstmgen"]) == 4  # max_abs_diff, median and quartiles
    assert "lstmgen" in row["results"] and "torch" in row["results"]
    for name, result in row["results"].items():
        assert result["q1_ms"] <= result["median_ms"] <= result["q3_ms"]
        assert result["max_abs_diff"] <= 2e-4
    expected_peers = {"onnxruntime", "torch"}
    reported = set(row["results"]) | {note.split()[0] for note in row["notes"]}
    assert expected_peers <= reported
    assert row["ratio"] > 0 and row["best_peer"] in expected_peers


def test_bench_times_the_mkl_code_wherever_mkl_is_installed(monkeypatch, tmp_path):
    """torch is installed beside it, so auto would say numpy; the benchmark isolates MKL instead."""
    skip_without("mkl")
    monkeypatch.setenv(blas.ENV, "")  # recorded, so that main's setting is undone afterwards
    monkeypatch.delenv(blas.ENV)
    assert main(["--cases", "small", "--repeats", "1", "--rounds", "1", "--budget", "0", "-o",
                 str(tmp_path)]) == 0
    report = json.loads((tmp_path / "cpu.json").read_text())
    assert report["lstmgen_blas"] == "mkl"
    assert report["cases"][0]["lstmgen_process"] == "its own"
    latency = report["compile_latency"]
    assert set(latency) == {"cold_s", "warm_s", "cold_masked_s", "warm_masked_s"}
    assert latency["cold_masked_s"] > latency["warm_masked_s"] > 0


def test_time_call_makes_at_least_its_calls_and_fills_its_budget():
    calls = []
    assert len(time_call(lambda: calls.append(1), 3)) == 3 and len(calls) == 4  # warm-up first
    samples = time_call(lambda: sum(range(20000)), 2, budget_s=0.02)
    assert len(samples) > 2 and sum(samples) >= 0.02
