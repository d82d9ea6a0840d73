"""Which BLAS generated CPU code calls: MKL when the `mkl` wheel is installed, else NumPy's.

"mkl": the recurrent product of every step runs on MKL's packed GEMM (the recurrent kernel is
packed once per call), the input projection on MKL's GEMM, both called straight from the compiled
code. "numpy": Numba's np.dot, which calls the OpenBLAS behind scipy. $LSTMGEN_BLAS picks one:
auto (the default), mkl, or numpy.

"auto" takes MKL only where torch is not installed. MKL loads its libraries with global symbols,
and torch's CPU wheel carries its own MKL with global symbols too; in one process each ends up
calling into the other (measured here: torch's float64 LSTM 29x slower after lstmgen's MKL ran,
torch's matrix products 2x slower when torch was imported after it).
"""

import functools
import importlib.util
import os
from importlib import metadata

from lstmgen.lower.plan import BLAS_CHOICES
from lstmgen.sources import templates_dir

ENV = "LSTMGEN_BLAS"


@functools.lru_cache(maxsize=1)
def mkl_runtime():
    """The path of libmkl_rt, found as generated modules find it (the same source), or None."""
    path = templates_dir() / "cpu" / "_find_mkl.py.j2"
    namespace = {"metadata": metadata, "os": os}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)
    return namespace["find_mkl_runtime"]()


@functools.lru_cache(maxsize=1)
def torch_installed() -> bool:
    """Whether torch could be imported here (looked up without importing it)."""
    return importlib.util.find_spec("torch") is not None


@functools.lru_cache(maxsize=1)
def cpu_fields() -> dict:
    """The first CPU's fields in /proc/cpuinfo (Linux; {} elsewhere): name -> value."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            first = f.read().split("\n\n", 1)[0]
    except OSError:
        return {}
    return {key.strip(): value.strip()
            for key, _, value in (line.partition(":") for line in first.splitlines())}


@functools.lru_cache(maxsize=1)
def blocked_any_size() -> bool:
    """Whether layers here run their float32 products in generated code at any size (the
    variant key's blocked_any_size): on CPUs with AVX-512 that are not Intel's, for which MKL
    has no AVX-512 code. Measured on an AMD EPYC (Zen 4), one core, generated / MKL packed: 32
    rows of H = 256 147 / 197 us, 64 rows of H = 512 1.22 / 1.83 ms; the benchmark's batch case
    26-28 ms instead of 41-52. (On a Sapphire Rapids MKL was 10% faster at H = 256 from 8 rows:
    there the bound stays.)"""
    fields = cpu_fields()
    return fields.get("vendor_id") != "GenuineIntel" and "avx512f" in fields.get("flags", "").split()


def choice() -> str:
    """The BLAS new CPU variants are generated for: $LSTMGEN_BLAS, resolving "auto"."""
    setting = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if setting not in ("auto",) + BLAS_CHOICES:
        raise ValueError(f"{ENV}={os.environ[ENV]!r}: expected one of auto, "
                         + ", ".join(BLAS_CHOICES))
    if setting == "auto":
        return "mkl" if mkl_runtime() and not torch_installed() else "numpy"
    if setting == "mkl" and not mkl_runtime():
        raise ValueError(f"{ENV}=mkl, but MKL is not installed (pip install 'lstmgen[mkl]', "
                         "or unset it to use NumPy's BLAS)")
    return setting
