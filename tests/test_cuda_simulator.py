"""Runs the CUDA simulator tier (tests/simulator) in its own pytest process: numba.cuda reads
NUMBA_ENABLE_CUDASIM once, at its first import, and this process may already have imported it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba_cuda")


def test_simulator_tier_passes(lstmgen_cache_dir):
    tests = Path(__file__).resolve().parent
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "LSTMGEN_CACHE_DIR": str(lstmgen_cache_dir)}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(tests / "simulator")], cwd=tests.parent, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " skipped" not in result.stdout, result.stdout[-2000:]
