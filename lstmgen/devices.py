"""Which device targets this process can use: looked for once, lazily, by the callers that run
code (a layer, `lstmgen explain`, `lstmgen info`); a CPU-only machine answers in microseconds."""

import ctypes
import functools


@functools.lru_cache(maxsize=None)
def unavailable() -> dict:
    """{"cuda": why not or None, "cudnn": why not or None}, as lower.plan's functions take it."""
    from lstmgen.cuda_runtime import unavailable_reason as cuda_reason
    from lstmgen.cudnn.library import unavailable_reason as cudnn_reason

    return {"cuda": cuda_reason(), "cudnn": cudnn_reason()}


def cuda_driver_missing():
    """Why the CUDA driver library cannot be loaded, or None. Both device probes ask this first:
    it spares CPU-only machines importing numba.cuda, which costs more than the whole answer."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError as err:
        return f"no CUDA driver is installed ({err})"
    return None
