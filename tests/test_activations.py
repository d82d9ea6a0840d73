"""The registry's vectorizable float32 and float64 activations stay within their stated error bounds."""

import math

import numba
import numpy as np
import pytest

from lstmgen.activations import (ACTIVATIONS, FAST_FLOAT32_ABS_ERROR, FAST_FLOAT64_ABS_ERROR,
                                 FLOAT32_CONSTANTS, SCALAR_HELPERS, source, written_out)
from lstmgen.lower.cpu import constants_used, helpers_used

FAST = sorted(name for name, a in ACTIVATIONS.items() if a.fast_float32_source)
FAST_64 = sorted(name for name, a in ACTIVATIONS.items() if a.fast_float64_source)


def compile_fast(name, dtype="float32"):
    """An elementwise Numba function built from the registry's fast source and helpers, as templates do."""
    expression = getattr(ACTIVATIONS[name], f"fast_{dtype}_source")
    lines = [f"{name} = {definition}" for name, definition in constants_used([expression])]
    for helper in helpers_used([expression]):  # only these, as templates include them
        body = SCALAR_HELPERS[helper]
        lines.append(f"@numba.njit(inline='always', error_model='numpy', fastmath={{'contract'}})\ndef {helper}(x):")
        lines += [f"    {line}" for line in body]
    lines.append("@numba.njit(error_model='numpy', fastmath={'contract'})\ndef apply(xs, out):")
    lines.append("    for k in range(xs.size):\n        x = xs[k]")
    lines.append(f"        out[k] = {expression}")
    namespace = {"numba": numba, "np": np, "math": math}
    exec("\n".join(lines), namespace)
    return namespace["apply"]


def test_tanh_and_sigmoid_have_fast_forms():
    assert FAST == FAST_64 == ["sigmoid", "tanh"]


@pytest.mark.parametrize("name", FAST)
def test_fast_form_error_is_bounded_on_a_dense_grid(name):
    xs = np.concatenate([np.linspace(-30, 30, 3_000_001), np.geomspace(1e-30, 1e-2, 10_000),
                         -np.geomspace(1e-30, 1e-2, 10_000), [0.0, -0.0]]).astype(np.float32)
    out = np.empty_like(xs)
    compile_fast(name)(xs, out)
    exact = ACTIVATIONS[name].numpy(xs.astype(np.float64))
    assert out.dtype == np.float32
    assert np.max(np.abs(out - exact)) <= FAST_FLOAT32_ABS_ERROR


def special_values(dtype, extremes=()):
    """inf, -inf, NaN and extremes at every position of vectors of 16 (the vectorized loop's
    lanes, not only its scalar remainder), between ordinary values."""
    specials = [np.inf, -np.inf, np.nan, *extremes]
    xs = np.linspace(-3, 3, 16 * 16 * len(specials)).astype(dtype)
    xs[::17] = np.resize(specials, xs[::17].size)
    return xs


@pytest.mark.parametrize("name, at_inf, at_minus_inf", [("tanh", 1.0, -1.0), ("sigmoid", 1.0, 0.0)])
def test_fast_form_saturates_and_propagates_nan(name, at_inf, at_minus_inf):
    xs = special_values(np.float32)
    out = np.empty_like(xs)
    compile_fast(name)(xs, out)
    assert np.all(np.abs(out[xs == np.inf] - at_inf) <= FAST_FLOAT32_ABS_ERROR)
    assert np.all(np.abs(out[xs == -np.inf] - at_minus_inf) <= FAST_FLOAT32_ABS_ERROR)
    assert np.array_equal(np.isnan(out), np.isnan(xs))


def float64_grid():
    tiny = np.geomspace(1e-300, 1e-2, 30_000)
    return np.concatenate([np.linspace(-60, 60, 2_000_001), tiny, -tiny, np.geomspace(1, 800, 10_000),
                           -np.geomspace(1, 800, 10_000), [0.0, -0.0]])


@pytest.mark.parametrize("name", FAST_64)
def test_float64_fast_form_error_is_bounded_on_a_dense_grid(name):
    xs = float64_grid()
    out = np.empty_like(xs)
    compile_fast(name, "float64")(xs, out)
    with np.errstate(over="ignore"):
        exact = ACTIVATIONS[name].numpy(xs)
    assert np.max(np.abs(out - exact)) <= FAST_FLOAT64_ABS_ERROR
    # Relative to the value too, tanh near 0 and sigmoid's tail included, down to e**-700 (the
    # sigmoid form clamps its argument at 708).
    kept = (exact != 0) & (xs > -700)
    assert np.max(np.abs(out - exact)[kept] / np.abs(exact[kept])) <= 1e-12


@pytest.mark.parametrize("name, at_inf, at_minus_inf", [("tanh", 1.0, -1.0), ("sigmoid", 1.0, 0.0)])
def test_float64_fast_form_saturates_and_propagates_nan(name, at_inf, at_minus_inf):
    xs = special_values(np.float64, (1e308, -1e308))
    out = np.empty_like(xs)
    compile_fast(name, "float64")(xs, out)
    assert np.allclose(out[xs >= 1e308], at_inf, rtol=0, atol=FAST_FLOAT64_ABS_ERROR)
    assert np.allclose(out[xs <= -1e308], at_minus_inf, rtol=0, atol=FAST_FLOAT64_ABS_ERROR)
    assert np.array_equal(np.isnan(out), np.isnan(xs))


@pytest.mark.parametrize("dtype", ["", "float32", "float64"])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_written_out_activations_compute_what_their_functions_do(name, dtype):
    """`_gates` applies each activation as written_out's lines: no helper call left, and (run as
    plain Python here) bit for bit the value of the `x`-expression with its helpers called."""
    expression = source(name, dtype)
    lines = written_out(expression, "y", "a + b", "k")
    assert not any(f"{helper}(" in line for line in lines for helper in SCALAR_HELPERS)
    namespace = {"math": math, "np": np, **{k: np.float32(v) for k, v in FLOAT32_CONSTANTS.items()}}
    for helper, body in SCALAR_HELPERS.items():
        exec(f"def {helper}(x):\n" + "".join(f"    {line}\n" for line in body), namespace)
    exec("def called(x):\n    return " + expression + "\n", namespace)
    exec("def written(a, b):\n" + "".join(f"    {line}\n" for line in lines) + "    return y\n",
         namespace)
    cast = np.float32 if dtype == "float32" else float
    for a in (-30.0, -2.5, -0.3, 0.0, 0.7, 4.0, 60.0):
        expected = namespace["called"](cast(a) + cast(0.125))
        actual = namespace["written"](cast(a), cast(0.125))
        assert np.asarray(actual).tobytes() == np.asarray(expected).tobytes(), (a, expected, actual)
