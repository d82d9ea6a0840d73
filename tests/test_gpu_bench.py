"""benchmarks/gpu.py's own logic, run on the CPU (lstmgen's cpu target, torch and Keras on the CPU):
GPU time is too scarce to find a broken comparison there. Tiny shapes; nothing here is timed
for its figures."""

import json
from pathlib import Path

import pytest

from cuda_helpers import load_gpu_bench

SHAPE = (3, 6, 4, 5)


@pytest.fixture(scope="module")
def gpu_bench():
    return load_gpu_bench()


def test_lstmgen_and_torch_agree_and_are_timed(gpu_bench):
    pytest.importorskip("torch")
    weights, x, _ = gpu_bench.problem(SHAPE)
    row = gpu_bench.compare("tiny", gpu_bench.lstmgen_side(weights, x, "cpu"),
                            gpu_bench.torch_side(weights, x, "cpu"),
                            gpu_bench.flops(SHAPE))
    assert row["max_difference"] < 1e-5
    assert row["lstmgen_ms"] > 0 and row["peer_ms"] > 0 and row["note"] == "cpu"
    assert row["ratio"] == pytest.approx(row["peer_ms"] / row["lstmgen_ms"])


@pytest.mark.parametrize("label", ["mask with holes", "activation='relu'",
                                   "recurrent_dropout=0.25, training"])
def test_keras_cases_agree_with_lstmgen(gpu_bench, label):
    pytest.importorskip("keras")
    options = dict(gpu_bench.KERAS_CASES[label])
    weights, x, holes = gpu_bench.problem(SHAPE)
    mask = holes if options.pop("holes", False) else None
    assert mask is None or not mask.all()
    row = gpu_bench.compare(label, gpu_bench.lstmgen_side(weights, x, "cpu", mask=mask, **options),
                            gpu_bench.keras_side(weights, x, mask=mask, **options),
                            gpu_bench.flops(SHAPE))
    assert row["max_difference"] < 1e-5


def test_sides_that_disagree_are_not_timed(gpu_bench):
    pytest.importorskip("torch")
    weights, x, _ = gpu_bench.problem(SHAPE)
    other = [w * 1.5 for w in weights]
    with pytest.raises(AssertionError, match="outputs differ"):
        gpu_bench.compare("tiny", gpu_bench.lstmgen_side(weights, x, "cpu"),
                          gpu_bench.torch_side(other, x, "cpu"), gpu_bench.flops(SHAPE))


def test_every_case_is_listed_once_in_its_table(gpu_bench):
    listed = [(table, label) for table, label, _, _ in gpu_bench.cases("cpu")]
    assert len(set(listed)) == len(listed) == 2 * len(gpu_bench.SHAPES) + len(gpu_bench.SWEEP) + len(
        gpu_bench.KERAS_CASES)
    assert len({table for table, _ in listed}) == 4


def test_a_spent_budget_still_writes_every_row(gpu_bench, tmp_path):
    assert gpu_bench.main(["--out", str(tmp_path), "--budget-s", "0", "--skip-tier"]) == 0
    report = json.loads((tmp_path / "gpu_bench.json").read_text())
    assert len(report["rows"]) == len(list(gpu_bench.cases("cpu")))
    assert all(row["error"].startswith("not run") for row in report["rows"])
    table = (tmp_path / "gpu_bench.md").read_text()
    assert table.count("### ") == 4 and "not run" in table and "numpy" in table


def test_a_tier_that_outlasts_its_time_is_stopped_and_said_so(gpu_bench, tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_bench, "TIER", ("tests/test_spec.py",))
    root = Path(gpu_bench.__file__).resolve().parent.parent
    assert gpu_bench.run_tier(root, tmp_path, 0.5) == "stopped after 0 s (its report may be incomplete)"


def test_only_runs_the_cases_it_matches(gpu_bench, tmp_path):
    assert gpu_bench.main(["--out", str(tmp_path), "--budget-s", "0", "--skip-tier",
                           "--only", "N=8 H=1024"]) == 0
    rows = json.loads((tmp_path / "gpu_bench.json").read_text())["rows"]
    chosen = [row for row in rows if "--only" not in row["error"]]
    assert [row["case"] for row in chosen] == ["N=8 H=1024 (T=100, C=H)"]
    assert "budget" in chosen[0]["error"]
