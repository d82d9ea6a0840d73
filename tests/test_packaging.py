"""Templates live at the top of the repository and ship inside the wheel as lstmgen/templates."""

import subprocess
import sys
import zipfile
from pathlib import Path

import lstmgen.sources

ROOT = Path(__file__).resolve().parent.parent

USE_INSTALLED = """
import numpy as np, sys, lstmgen, lstmgen.sources
assert lstmgen.sources.templates_dir().is_relative_to(sys.argv[1]), lstmgen.sources.templates_dir()
layer = lstmgen.LSTM(2, return_sequences=True)
print(layer(np.ones((1, 3, 2), np.float32)).shape)
"""


def test_editable_install_reads_the_top_level_templates():
    assert lstmgen.sources.templates_dir() == ROOT / "templates"


def test_wheel_ships_templates_and_works_when_installed(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("lstmgen-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    templates = sorted(p.relative_to(ROOT / "templates").as_posix() for p in (ROOT / "templates").rglob("*.j2"))
    assert all(f"lstmgen/templates/{t}" in names for t in templates)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                    str(wheel)], check=True, capture_output=True)
    env = {"PYTHONPATH": str(site), "LSTMGEN_CACHE_DIR": str(tmp_path / "cache"),
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", USE_INSTALLED, str(site)], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1, 3, 2)"
