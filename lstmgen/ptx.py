"""PTX of a generated CUDA module's kernels for chosen GPU architectures, without a GPU.

`numba.cuda.compile_ptx` needs no driver for a kernel alone, but numba-cuda compiles every device
function a kernel calls (ours, and `cuda.cg.this_grid()`'s overload) for "the current device",
which it asks the driver for. `pinned_device(cc)` answers that question with `cc` instead, so the
kernels that ship, grid barrier included, compile as they are. The NVVM IR does not depend on the
architecture here (no architecture-specific intrinsics), so each function is typed and lowered
once and its IR compiled to PTX for every architecture asked for: the same PTX as separate
compiles (compared up to the names of shared arrays), in half the time of two.
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


def module_ptx(module: ModuleType, ccs: tuple, kernels: bool = True) -> dict:
    """{cc: {name: PTX}} for each architecture in `ccs`, of every kernel (SIGNATURES, unless not
    `kernels`) and exposed device function (DEVICE_SIGNATURES) of a generated CUDA module."""
    # numba.cuda.compile_ptx less its last step, which makes PTX for one architecture only.
    from numba.cuda.compiler import _compile_pyfunc_with_fixup

    functions = [(name, types, False)
                 for name, types in (module.SIGNATURES if kernels else {}).items()]
    functions += [(name, types, True) for name, types in module.DEVICE_SIGNATURES.items()]
    out = {cc: {} for cc in ccs}
    with pinned_device(ccs[0]):
        for name, types, device in functions:
            dispatcher = getattr(module, name)
            # compile_ptx ignores the decorator's launch bounds: they are passed again.
            library, _ = _compile_pyfunc_with_fixup(
                dispatcher.py_func, types, device=device, cc=ccs[0], abi="numba",
                launch_bounds=None if device else dispatcher.targetoptions.get("launch_bounds"))
            for cc in ccs:
                (out[cc][name],) = library.get_asm_strs(cc=cc)
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
