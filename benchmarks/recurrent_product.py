"""The per-step recurrent product of a small batch: MKL's packed product, as generated modules
call it, against register-blocked kernels written in Numba (issue 3 asked whether a hand-
specialized kernel beats a BLAS call per step here).

    LSTMGEN_BLAS=mkl .venv/bin/python benchmarks/recurrent_product.py [--rows 16] [--units 64]

Times h [rows, units] · recurrent_kernel [units, 4·units] on one core, alternating the two, and
prints µs per product and GFLOP/s for each blocking (rows x columns of accumulators).
"""

import argparse
import time

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic

import lstmgen
from lstmgen import blas
from lstmgen.lower.plan import VariantKey
from lstmgen.runtime import VARIANTS

# (rows, 16-float vectors) per block: 4 x 4 is the classic AVX-512 shape (16 accumulators).
BLOCKINGS = ((4, 4), (2, 8), (8, 2))


def blocked_product(rows: int, vectors: int, k_size: int, n_rows: int, n_columns: int):
    """A Numba function out = h · w for these sizes, in blocks of rows x (16 * vectors) columns
    whose accumulators live in a stack buffer that LLVM can promote to registers."""
    columns = 16 * vectors

    @intrinsic
    def accumulators(typingctx):
        def codegen(context, builder, signature, args):
            set.add(builder.function.attributes, '"prefer-vector-width"="512"')
            return cgutils.alloca_once(builder, context.get_value_type(types.float32),
                                       size=rows * columns)
        return types.CPointer(types.float32)(), codegen

    @numba.njit(inline="always", error_model="numpy", fastmath={"contract"})
    def block(h, w, out, r0, c0):
        acc = numba.carray(accumulators(), (rows, columns))
        for r in range(rows):
            for j in range(columns):
                acc[r, j] = 0.0
        for k in range(k_size):
            for r in range(rows):
                a = h[r0 + r, k]
                for j in range(columns):
                    acc[r, j] += a * w[k, c0 + j]
        for r in range(rows):
            for j in range(columns):
                out[r0 + r, c0 + j] = acc[r, j]

    @numba.njit(error_model="numpy", fastmath={"contract"})
    def product(h, w, out, calls):
        for _ in range(calls):
            for c in range(n_columns // columns):
                for r in range(n_rows // rows):
                    block(h, w, out, r * rows, c * columns)

    return product


def aligned(matrix: np.ndarray, alignment: int = 64) -> np.ndarray:
    """A copy of `matrix` whose rows start on 64-byte cache lines (when each row's size is a
    multiple of 64 bytes): NumPy aligns to 16 bytes, and zmm loads that straddle cache lines
    made the kernels 35% slower."""
    buffer = np.empty(matrix.nbytes + alignment, np.uint8)
    start = -buffer.ctypes.data % alignment
    copy = buffer[start:start + matrix.nbytes].view(matrix.dtype).reshape(matrix.shape)
    copy[...] = matrix
    return copy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16, help="batch rows of one part")
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if blas.choice() != "mkl":
        parser.error("needs MKL: pip install mkl and set LSTMGEN_BLAS=mkl")
    n_rows, k_size, n_columns = args.rows, args.units, 4 * args.units
    numba.set_num_threads(1)
    rng = np.random.default_rng()
    h = rng.standard_normal((n_rows, k_size)).astype(np.float32)
    w = aligned(rng.standard_normal((k_size, n_columns)).astype(np.float32))
    exact = h.astype(np.float64) @ w

    layer = lstmgen.LSTM(args.units)
    layer(np.zeros((1, 1, 1), np.float32))  # builds the layer's generated module
    module = VARIANTS.get(VariantKey.from_spec(layer.spec, "cpu", "mkl"))
    packed = module._packed(w, n_rows)

    @numba.njit
    def mkl(h, packed, out, calls):
        for _ in range(calls):
            module._recurrent_product(h, packed, out)

    sides = {"MKL packed": (mkl, packed)}
    for rows, vectors in BLOCKINGS:
        if n_rows % rows == 0 and n_columns % (16 * vectors) == 0:
            sides[f"Numba {rows} x {16 * vectors}"] = (
                blocked_product(rows, vectors, k_size, n_rows, n_columns), w)
    times = {name: [] for name in sides}
    for name, (function, weights) in sides.items():
        out = np.zeros((n_rows, n_columns), np.float32)
        function(h, weights, out, 1)
        assert np.abs(out - exact).max() <= 1e-4 * np.abs(exact).max(), name
    for _ in range(args.rounds):
        for name, (function, weights) in sides.items():
            start = time.perf_counter()
            function(h, weights, out, args.calls)
            times[name].append((time.perf_counter() - start) / args.calls)
    flops = 2 * n_rows * k_size * n_columns
    print(f"h [{n_rows}, {k_size}] · w [{k_size}, {n_columns}], one core, median of {args.rounds} "
          f"rounds of {args.calls}")
    for name, runs in times.items():
        print(f"{name:>16}: {np.median(runs) * 1e6:6.2f} µs  {flops / np.median(runs) / 1e9:5.0f} GFLOP/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
