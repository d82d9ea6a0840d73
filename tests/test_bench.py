"""The benchmark harness runs, checks agreement, and reports peers it cannot run (no timing asserted)."""

import pytest

from lstmgen.bench import Case, bench_case


@pytest.mark.parametrize("case", [Case("tiny", 2, 3, 4, 5),
                                  Case("tiny-masked-backwards", 3, 4, 2, 3, masked=True, go_backwards=True)])
def test_bench_case_runs_every_available_implementation(case):
    row = bench_case(case, threads=1, repeats=1, rounds=1)
    assert "lstmgen" in row["results"] and "torch" in row["results"]
    for name, result in row["results"].items():
        assert result["q1_ms"] <= result["median_ms"] <= result["q3_ms"]
        assert result["max_abs_diff"] <= 2e-4
    expected_peers = {"onnxruntime", "torch"}
    reported = set(row["results"]) | {note.split()[0] for note in row["notes"]}
    assert expected_peers <= reported
    assert row["ratio"] > 0 and row["best_peer"] in expected_peers
