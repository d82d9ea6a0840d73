"""Which device targets this process can use: looked for once, lazily, by the callers that run
code (a layer, `lstmgen explain`, `lstmgen info`); a CPU-only machine answers in microseconds."""

import ctypes
import functools
import re
from importlib import metadata


@functools.lru_cache(maxsize=None)
def unavailable() -> dict:
    """{"cuda": why not or None, "cudnn": why not or None}, as lower.plan's functions take it."""
    from lstmgen.cuda_runtime import unavailable_reason as cuda_reason
    from lstmgen.cudnn.library import unavailable_reason as cudnn_reason

    return {"cuda": cuda_reason(), "cudnn": cudnn_reason()}


# numba-cuda up to this release registers np.row_stack, which NumPy 2.5 removed: its first kernel
# compile then raises AttributeError (seen on a GPU machine's image; BENCHMARKS.md, session 12).
LAST_NUMBA_CUDA_NEEDING_ROW_STACK = (0, 30, 4)


def cuda_unusable():
    """Why this process cannot run numba.cuda code on a GPU, found without importing numba.cuda,
    or None: no CUDA driver, or a numba-cuda that cannot compile kernels with this NumPy. Both
    device probes ask this first: it spares CPU-only machines importing numba.cuda, which costs
    more than the whole answer."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError as err:
        return f"no CUDA driver is installed ({err})"
    return numpy_breaks_numba_cuda()


def numpy_breaks_numba_cuda():
    """Why the installed numba-cuda cannot compile kernels with the installed NumPy, or None."""
    import numpy as np

    if hasattr(np, "row_stack"):
        return None
    try:
        version = metadata.version("numba-cuda")
    except metadata.PackageNotFoundError:
        return None
    release = tuple(int(part) for part in re.match(r"\d+(?:\.\d+)*", version).group(0).split("."))
    if release > LAST_NUMBA_CUDA_NEEDING_ROW_STACK:
        return None
    return (f"numba-cuda {version} cannot compile kernels with NumPy {np.__version__}, which "
            "removed np.row_stack: install numpy<2.5 (the cuda and cudnn extras ask for it)")
