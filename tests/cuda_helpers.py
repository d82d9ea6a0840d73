"""Shared by the CUDA tests: fresh imports of generated CUDA modules, spreads of variants, and
benchmarks/gpu.py as a module."""

import importlib.util
from pathlib import Path

from lstmgen.cache import import_module
from lstmgen.lower.plan import VariantKey
from lstmgen.render import generate
from lstmgen.spec import LSTMSpec


def cuda_key(units=3, input_dim=2, **kwargs) -> VariantKey:
    return VariantKey.from_spec(LSTMSpec(units, input_dim=input_dim, **kwargs), "cuda")


def fresh_module(key: VariantKey, directory):
    """A new module object (new dispatchers, nothing compiled yet) for `key`."""
    return import_module(generate(key, directory))


def assert_close(actual, expected, dtype):
    """float64 within 1e-12 of the float64 reference; float32 within 2e-5 relative (atol scaled
    by the largest magnitude), as tests/test_cpu_target.py holds the CPU target."""
    import numpy as np

    actual = np.asarray(actual)
    assert actual.dtype == np.dtype(dtype) and actual.shape == expected.shape, (actual.dtype, actual.shape)
    if np.dtype(dtype) == np.float64:
        np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)
    else:
        scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
        np.testing.assert_allclose(actual, expected, rtol=2e-5, atol=2e-6 * scale)


def load_gpu_bench():
    """benchmarks/gpu.py, loaded fresh, set to time each side once after its warm-up call."""
    spec = importlib.util.spec_from_file_location(
        "gpu_bench", Path(__file__).resolve().parent.parent / "benchmarks" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.REPEATS, module.BUDGET_PER_SIDE_S = 1, 0.0
    return module


def padded_cudnn_forward(units, kernel, recurrent, bias, x, lengths, h0, c0):
    """A NumPy stand-in for cudnnRNNForward on padded batch-major x [N, T, C] (float64): the
    reference run on each sample's first lengths[n] steps; y [N, T, H] zero past them, and the
    states after the last valid step."""
    import numpy as np

    from lstmgen import reference

    plain = LSTMSpec(units, return_sequences=True, return_state=True)
    y = np.zeros((len(lengths), x.shape[1], units))
    hy, cy = np.empty((len(lengths), units)), np.empty((len(lengths), units))
    for n, length in enumerate(lengths):
        out, h, c = reference.forward(plain, kernel, recurrent, bias, x[n:n + 1, :length],
                                      initial_state=[h0[n:n + 1], c0[n:n + 1]])
        y[n, :length], hy[n], cy[n] = out[0], h[0], c[0]
    return y, hy, cy
