"""The registry's vectorizable float32 activations stay within their stated error bound."""

import math

import numba
import numpy as np
import pytest

from lstmgen.activations import ACTIVATIONS, FAST_FLOAT32_ABS_ERROR, SCALAR_HELPERS

FAST = sorted(name for name, a in ACTIVATIONS.items() if a.fast_float32_source)


def compile_fast(name):
    """An elementwise Numba function built from the registry's fast source and helpers, as templates do."""
    lines = []
    for helper, body in SCALAR_HELPERS.items():
        lines.append(f"@numba.njit(inline='always', error_model='numpy', fastmath={{'contract'}})\ndef {helper}(x):")
        lines += [f"    {line}" for line in body]
    lines.append("@numba.njit(error_model='numpy', fastmath={'contract'})\ndef apply(xs, out):")
    lines.append("    for k in range(xs.size):\n        x = xs[k]")
    lines.append(f"        out[k] = {ACTIVATIONS[name].fast_float32_source}")
    namespace = {"numba": numba, "np": np, "math": math}
    exec("\n".join(lines), namespace)
    return namespace["apply"]


def test_tanh_and_sigmoid_have_fast_forms():
    assert FAST == ["sigmoid", "tanh"]


@pytest.mark.parametrize("name", FAST)
def test_fast_form_error_is_bounded_on_a_dense_grid(name):
    xs = np.concatenate([np.linspace(-30, 30, 3_000_001), np.geomspace(1e-30, 1e-2, 10_000),
                         -np.geomspace(1e-30, 1e-2, 10_000), [0.0, -0.0]]).astype(np.float32)
    out = np.empty_like(xs)
    compile_fast(name)(xs, out)
    exact = ACTIVATIONS[name].numpy(xs.astype(np.float64))
    assert out.dtype == np.float32
    assert np.max(np.abs(out - exact)) <= FAST_FLOAT32_ABS_ERROR


@pytest.mark.parametrize("name, at_inf, at_minus_inf", [("tanh", 1.0, -1.0), ("sigmoid", 1.0, 0.0)])
def test_fast_form_saturates_and_propagates_nan(name, at_inf, at_minus_inf):
    xs = np.array([np.inf, -np.inf, np.nan], np.float32)
    out = np.empty_like(xs)
    compile_fast(name)(xs, out)
    assert abs(out[0] - at_inf) <= FAST_FLOAT32_ABS_ERROR
    assert abs(out[1] - at_minus_inf) <= FAST_FLOAT32_ABS_ERROR
    assert np.isnan(out[2])
