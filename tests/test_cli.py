"""The command line: compile, explain, info, and exit code 2 with one line on bad input."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lstmgen import native
from lstmgen.cli import main

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, data, name="spec.json") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_compile_prints_the_module_path(tmp_path, capsys):
    spec = write(tmp_path, {"units": 3, "input_dim": 2, "return_sequences": True})
    assert main(["compile", spec, "-o", str(tmp_path / "out")]) == 0
    printed = Path(capsys.readouterr().out.strip())
    assert printed.parent == tmp_path / "out" and printed.is_file()
    assert printed.name.startswith("lstm_cpu_f32_h3_c2_")


def test_compile_accepts_a_keras_layer_serialization(tmp_path, capsys):
    config = json.loads((ROOT / "examples" / "masked_backwards.json").read_text())
    spec = write(tmp_path, {"class_name": "LSTM", "config": config})
    assert main(["compile", spec, "-o", str(tmp_path)]) == 0
    assert "_f64_h32_c8_" in capsys.readouterr().out


def test_explain_names_the_target(tmp_path, capsys):
    spec = write(tmp_path, {"units": 3, "input_dim": 2})
    assert main(["explain", spec]) == 0
    assert "runs on target 'cpu'" in capsys.readouterr().out


def test_info_lists_versions_and_targets(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "numba" in out and "cpu: available" in out
    assert f"native libraries: {native.status()}" in out
    # No GPU on CI machines: the device targets' lines say why they cannot run here.
    assert "cuda: built, but cannot run here: no CUDA driver" in out
    assert "cudnn: built, but cannot run here: no CUDA driver" in out


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a JSON file"),
    ({"units": 0, "input_dim": 2}, "units=0"),
    ({"units": 3, "input_dim": 2, "colour": "red"}, "colour='red'"),
    ({"input_dim": 2}, "units=None"),
    ({"units": 3}, "input_dim is unknown"),
    ({"class_name": "GRU", "config": {"units": 3}}, "class_name='GRU'"),
])
def test_bad_spec_exits_2_with_one_line(tmp_path, capsys, content, message):
    out_dir = tmp_path / "out"
    assert main(["compile", write(tmp_path, content), "-o", str(out_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_missing_file_and_unavailable_target_exit_2(tmp_path, capsys):
    assert main(["compile", str(tmp_path / "absent.json")]) == 2
    assert "cannot read the spec file" in capsys.readouterr().err
    spec = write(tmp_path, {"units": 3, "input_dim": 2})
    assert main(["compile", spec, "--target", "cudnn", "-o", str(tmp_path)]) == 2
    assert "target 'cudnn' generates no module" in capsys.readouterr().err


def test_compile_for_cuda_needs_no_gpu(tmp_path, capsys):
    spec = write(tmp_path, {"units": 3, "input_dim": 2})
    assert main(["compile", spec, "--target", "cuda", "-o", str(tmp_path)]) == 0
    assert "lstm_cuda_f32_h3_c2_" in capsys.readouterr().out


def test_console_script_is_installed(tmp_path):
    script = shutil.which("lstmgen", path=str(Path(sys.executable).parent))
    assert script is not None, "the lstmgen console script is not installed"
    result = subprocess.run([script, "info"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("lstmgen ")
