"""One part of a call on one core, its input projected for the whole sequence first
(forward_into) or right before each step (forward_stepwise_into), in a variant whose products
both run in its blocked product: what lstmgen.runtime.STEPWISE_FROM["panels"] was measured with.

    .venv/bin/python benchmarks/projection_by_step.py --rows 32 --steps 100 --features 128 --units 256

Both are the generated module's own functions on the same arrays, called alternately; prints the
median of the rounds' medians in ms, and zx's size (what the whole-sequence projection writes).
"""

import argparse

import numpy as np

import lstmgen
from lstmgen import blas
from lstmgen.bench import time_call
from lstmgen.lower.cpu import blocked_projection, cpu_entry_points
from lstmgen.lower.plan import VariantKey
from lstmgen.runtime import VARIANTS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=32, help="batch rows of the part")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--features", type=int, default=128, help="C, at most H")
    parser.add_argument("--units", type=int, default=256, help="H, a multiple of 16")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    n, t, c, h = args.rows, args.steps, args.features, args.units
    layer = lstmgen.LSTM(h, return_sequences=True)
    layer.build((None, None, c))
    key = VariantKey.from_spec(layer.spec, "cpu", blas.choice(), blocked_any_size=True)
    if not blocked_projection(key):
        parser.error("the variant does not project in its blocked product (C <= H, H % 16 == 0)")
    module = VARIANTS.get(key)
    rng = np.random.default_rng(0)
    drawn = {"x": rng.normal(size=(n, t, c)), "kernel": rng.normal(0, c ** -0.5, (c, 4 * h)),
             "recurrent_kernel": rng.normal(0, h ** -0.5, (h, 4 * h)),
             "bias": rng.normal(0, 0.1, 4 * h), "h0": rng.normal(size=(n, h)),
             "c0": rng.normal(size=(n, h))}
    scratch = {"zx": (n * t, 4 * h), "zx_step": (n, 4 * h), "zh": (n, 4 * h), "output": (n, t, h),
               "h": (n, h), "c": (n, h)}
    values = {**{name: value.astype(np.float32) for name, value in drawn.items()},
              **{name: np.empty(shape, np.float32) for name, shape in scratch.items()}}
    calls = {}
    for entry in cpu_entry_points(key):
        if entry.name in ("forward", "forward_stepwise"):
            function, arrays = getattr(module, f"{entry.name}_into"), [values[p] for p in entry.into_params]
            calls[entry.name] = lambda function=function, arrays=arrays: function(*arrays)
    outputs = {}
    for name, call in calls.items():
        call()
        outputs[name] = values["output"].copy()
    np.testing.assert_allclose(outputs["forward"], outputs["forward_stepwise"], rtol=1e-5, atol=1e-6)
    times = {name: [] for name in calls}
    for _ in range(args.rounds):
        for name, call in calls.items():
            times[name].append(np.median(time_call(call, 3, 0.2)))
    print(f"{n} rows x {t} steps, {c} -> {h}, one core (zx {n * t * 4 * h * 4 / 2 ** 20:.1f} MiB): "
          + ", ".join(f"{name} {1e3 * np.median(runs):.2f} ms" for name, runs in times.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
