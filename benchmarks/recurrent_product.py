"""The per-step recurrent product of a small batch: MKL's packed product against the register-
blocked product that generated modules run where lstmgen.lower.cpu.blocked_product says so.

    LSTMGEN_BLAS=mkl .venv/bin/python benchmarks/recurrent_product.py [--rows 16] [--units 64]

Times h [rows, units] · recurrent_kernel [units, 4·units] on one core, the sides alternating, and
prints µs per product (median of the rounds) and GFLOP/s.
"""

import argparse
import time

import numba
import numpy as np

import lstmgen
from lstmgen import blas
from lstmgen.lower.cpu import blocked_product
from lstmgen.lower.plan import VariantKey
from lstmgen.runtime import VARIANTS

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16, help="batch rows of one part")
    parser.add_argument("--units", type=int, default=64, help="H; blocked_product needs H % 16 == 0")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if blas.choice() != "mkl":
        parser.error("needs MKL: pip install mkl and set LSTMGEN_BLAS=mkl")
    n_rows, units, gates = args.rows, args.units, 4 * args.units
    layer = lstmgen.LSTM(units)
    layer.build((None, None, 1))
    key = VariantKey.from_spec(layer.spec, "cpu", "mkl")
    if not blocked_product(key):
        parser.error(f"--units {units}: the generated module calls MKL (see blocked_product)")
    module = VARIANTS.get(key)
    rng = np.random.default_rng()
    h = rng.standard_normal((n_rows, units)).astype(np.float32)
    w = rng.standard_normal((units, gates)).astype(np.float32)
    exact = h.astype(np.float64) @ w

    @numba.njit
    def mkl(h, packed, out, calls):
        for _ in range(calls):
            module._MKL_COMPUTE(module.ROW_MAJOR, module.NO_TRANS, module.PACKED, h.shape[0], gates,
                                units, h.ctypes.data, units, packed.ctypes.data, gates,
                                module._ZERO, out.ctypes.data, gates)

    @numba.njit
    def generated(h, panels, out, calls):
        for _ in range(calls):
            module._blocked_product(h, panels, out)

    sides = {"MKL packed": (mkl, module._packed(w, n_rows)),
             "generated (panels)": (generated, module._blocked(w))}
    out = np.zeros((n_rows, gates), np.float32)
    for name, (function, weights) in sides.items():
        out[...] = np.nan
        function(h, weights, out, 1)
        assert np.abs(out - exact).max() <= 1e-4 * np.abs(exact).max(), name
    times = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, (function, weights) in sides.items():
            start = time.perf_counter()
            function(h, weights, out, args.calls)
            times[name].append((time.perf_counter() - start) / args.calls)
    flops = 2 * n_rows * units * gates
    print(f"h [{n_rows}, {units}] · w [{units}, {gates}], one core, median of {args.rounds} rounds "
          f"of {args.calls}")
    for name, runs in times.items():
        median = np.median(runs)
        print(f"{name:>22}: {median * 1e6:6.2f} µs  {flops / median / 1e9:5.0f} GFLOP/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
