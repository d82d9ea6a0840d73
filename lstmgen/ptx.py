"""PTX of a generated CUDA module's kernels for a chosen GPU architecture, without a GPU.

`numba.cuda.compile_ptx` needs no driver for a kernel alone, but numba-cuda compiles every device
function a kernel calls (ours, and `cuda.cg.this_grid()`'s overload) for "the current device",
which it asks the driver for. `pinned_device(cc)` answers that question with `cc` instead, so the
kernels that ship, grid barrier included, compile as they are. Device functions are cached per
argument types, not per architecture; their NVVM IR does not depend on it here (no
architecture-specific intrinsics), and each kernel's PTX is generated for the `cc` asked for.
"""

import re
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType, SimpleNamespace

_LOCK = threading.Lock()


@contextmanager
def pinned_device(cc: tuple):
    from numba.cuda import dispatcher

    with _LOCK:
        asked = dispatcher.get_current_device
        dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=cc)
        try:
            yield
        finally:
            dispatcher.get_current_device = asked


def module_ptx(module: ModuleType, cc: tuple, kernels: bool = True) -> dict:
    """name -> PTX for every kernel (SIGNATURES, unless not `kernels`) and exposed device function
    (DEVICE_SIGNATURES) of a generated CUDA module."""
    from numba import cuda

    out = {}
    with pinned_device(cc):
        for name, types in (module.SIGNATURES if kernels else {}).items():
            kernel = getattr(module, name)
            bounds = kernel.targetoptions.get("launch_bounds")  # compile_ptx ignores the decorator's
            out[name] = cuda.compile_ptx(kernel.py_func, types, cc=cc, launch_bounds=bounds)[0]
        for name, types in module.DEVICE_SIGNATURES.items():
            out[name] = cuda.compile_ptx(getattr(module, name).py_func, types, cc=cc, device=True)[0]
    return out


def ptxas_resources(ptx: str, cc: tuple, scratch: Path) -> dict:
    """registers, spill bytes (stores + loads), stack and static shared bytes of one kernel's PTX,
    from `ptxas -v` (CUDA toolkit on PATH); `scratch` is a directory for its files."""
    source = Path(scratch) / "kernel.ptx"
    source.write_text(ptx)
    # -c: the persistent kernels call libcudadevrt's grid barrier, linked only at load time.
    result = subprocess.run(["ptxas", f"-arch=sm_{cc[0]}{cc[1]}", "-v", "-c", str(source),
                             "-o", str(Path(scratch) / "kernel.o")], capture_output=True, text=True,
                            check=True)
    info = result.stderr
    return {"registers": int(re.search(r"Used (\d+) registers", info).group(1)),
            "spills": sum(int(v) for v in re.findall(r"(\d+) bytes spill (?:stores|loads)", info)),
            "stack": int(re.search(r"(\d+) bytes stack frame", info).group(1)),
            # Numba's shared arrays are module-scope .shared variables, which `ptxas -c` does not count.
            "shared": sum(int(v) for v in re.findall(r"\.shared \.align \d+ \.b8 \w+\[(\d+)\]", ptx))}
