"""Registers, spills and shared memory of the CUDA target's kernels, from `ptxas -v`, no GPU needed.

    .venv/bin/python benchmarks/cuda_resources.py > table.md   (needs numba-cuda and ptxas on PATH)

Prints the Markdown table BENCHMARKS.md records: float32 inference, masked and unmasked, at the
(C, H) of the four benchmark shapes, for sm_80 and sm_90.
"""

import sys
import tempfile
from pathlib import Path

from lstmgen.cache import import_module
from lstmgen.lower.plan import VariantKey
from lstmgen.ptx import module_ptx, ptxas_resources
from lstmgen.render import generate
from lstmgen.spec import LSTMSpec

SHAPES = {"batch": (128, 256), "stream": (64, 128), "small": (32, 64), "large": (512, 512)}
ARCHS = ((8, 0), (9, 0))
KERNELS = ("_project", "_per_step_forward", "_per_step_forward_masked", "_persistent_forward",
           "_persistent_forward_masked")


def main() -> int:
    print("| shape (C, H) | kernel | sm | registers | spill bytes | stack bytes | static shared bytes |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for name, (input_dim, units) in SHAPES.items():
            key = VariantKey.from_spec(LSTMSpec(units, input_dim=input_dim, return_sequences=True), "cuda")
            for arch, ptx in module_ptx(import_module(generate(key, Path(scratch))), ARCHS).items():
                for kernel in KERNELS:
                    used = ptxas_resources(ptx[kernel], arch, Path(scratch))
                    print(f"| {name} ({input_dim}, {units}) | `{kernel}` | {arch[0]}{arch[1]} | "
                          f"{used['registers']} | {used['spills']} | {used['stack']} | {used['shared']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
