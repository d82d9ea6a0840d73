"""Demo: compile the bundled example specs into generated/, import each module on its own,
run it on sample data and check it against the NumPy reference."""

import sys
import time
from pathlib import Path

import numpy as np

from lstmgen import reference
from lstmgen.cache import import_module
from lstmgen.cli import compile_spec, load_spec

EXAMPLES = Path(__file__).resolve().parent
BATCH, STEPS = 8, 20


def run_example(spec_path: Path, rng: np.random.Generator) -> tuple:
    spec = load_spec(str(spec_path))
    module = import_module(compile_spec(spec, Path("generated"), "auto"))
    dtype, units = np.dtype(spec.dtype), spec.units
    weights = [rng.normal(0, 0.3, shape).astype(dtype)
               for shape in [(spec.input_dim, 4 * units), (units, 4 * units), (4 * units,)]]
    x = rng.normal(size=(BATCH, STEPS, spec.input_dim)).astype(dtype)
    h0, c0 = (rng.normal(size=(BATCH, units)).astype(dtype) for _ in range(2))
    # Right-padded sequences of random lengths, with one hole, as a masked pipeline sees them.
    mask = np.arange(STEPS) < rng.integers(STEPS // 2, STEPS + 1, size=(BATCH, 1))
    mask[0, 3] = False
    args = (x, *weights, h0, c0, mask)
    module.forward_masked(*args)  # compile (or load from Numba's disk cache)
    start = time.perf_counter()
    output, h, c = module.forward_masked(*args)
    elapsed = time.perf_counter() - start
    expected = reference.forward(spec, *weights, x, mask=mask, initial_state=[h0, c0])
    expected = expected if spec.return_state else [expected, None, None]
    error = max(float(np.max(np.abs(got - want))) for got, want in zip((output, h, c), expected)
                if want is not None)
    return spec_path.name, Path(module.__file__).name, output.shape, spec.dtype, error, elapsed


def main() -> int:
    rng = np.random.default_rng(2026)
    rows = [run_example(path, rng) for path in sorted(EXAMPLES.glob("*.json"))]
    print(f"{'spec':<24} {'generated module':<40} {'output':<14} {'dtype':<8} {'max |err|':>10} {'ms':>8}")
    for name, module, shape, dtype, error, elapsed in rows:
        print(f"{name:<24} {module:<40} {str(shape):<14} {dtype:<8} {error:>10.2e} {elapsed * 1e3:>8.3f}")
    tolerance = {"float32": 1e-5, "float64": 1e-12}
    ok = all(error <= tolerance[dtype] for _, _, _, dtype, error, _ in rows)
    print("all outputs match the NumPy reference" if ok else "MISMATCH against the NumPy reference")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
