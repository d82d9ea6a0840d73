"""The CUDA simulator tier: collected only when NUMBA_ENABLE_CUDASIM=1 was set before numba.cuda
was first imported, i.e. by the separate pytest process tests/test_cuda_simulator.py starts."""

import os
import sys
from pathlib import Path

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
collect_ignore_glob = [] if SIMULATED else ["*.py"]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/cuda_helpers.py
