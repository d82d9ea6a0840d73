"""The recurrent product in the generated module's own register-blocked code
(lstmgen.lower.cpu.blocked_product): which variants run it, its panels, and its result for every
row count. Layers on it are checked against the reference with the other BLAS cases
(tests/test_blas.py: CASES)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lstmgen
from lstmgen import blas, reference
from lstmgen.cache import VARIANTS
from lstmgen.lower.cpu import blocked_product, blocked_projection, native_scratch
from lstmgen.lower.plan import VariantKey
from lstmgen.render import render
from lstmgen.spec import LSTMSpec
from blas_helpers import skip_without


def _key(blas="numpy", **fields):
    return VariantKey.from_spec(LSTMSpec(input_dim=3, **fields), "cpu", blas)


@pytest.mark.parametrize("fields, blocked", [
    (dict(units=16), True),
    (dict(units=128, go_backwards=True), True),
    (dict(units=144), False),  # its recurrent kernel, 324 KB, is over 256 KB
    (dict(units=24), True),  # 4H = 96: a panel and a half, the last padded
    (dict(units=100), True),
    (dict(units=64, dtype="float64"), False),
    (dict(units=64, proj_size=32), False),
])
def test_which_variants_run_the_product_themselves(fields, blocked):
    for blas_name in ("numpy", "mkl"):
        key = _key(blas_name, **fields)
        assert blocked_product(key) == blocked
        source = render(key)
        assert ("def _block_product(" in source) == blocked
        if blas_name == "numpy":
            assert ("np.dot(h, recurrent_kernel, zh)" in source) != blocked
        else:
            assert ("_packed(recurrent_kernel, h.shape[0])" in source) != blocked
            if not fields.get("proj_size"):  # projected variants have no native twin
                expected = "blocked_recurrent_kernel" if blocked else "packed_recurrent_kernel"
                assert native_scratch(key, "forward")[0] == expected
                assert native_scratch(key, "forward_masked")[0] == expected


@pytest.mark.parametrize("fields, projects", [
    (dict(units=16, input_dim=16), True),
    (dict(units=128, input_dim=3, use_bias=False), True),
    (dict(units=16, input_dim=17), False),  # the kernel's panels would outgrow the recurrent one's
    (dict(units=24, input_dim=3), True),
    (dict(units=64, input_dim=3, dtype="float64"), False),  # no blocked product
])
def test_which_variants_project_in_the_same_code(fields, projects):
    for blas_name in ("numpy", "mkl"):
        key = VariantKey.from_spec(LSTMSpec(**fields), "cpu", blas_name)
        assert blocked_projection(key) == projects
        source = render(key)
        assert ("_blocked_product(x_rows, blocked_kernel, zx)" in source) == projects
        assert ("_matmul(x_rows, kernel, zx)" in source) != projects
        if blas_name == "mkl":
            scratch = ("blocked_kernel",) if projects else ()
            assert native_scratch(key, "forward")[1:] == scratch
            # A masked call projects each step's used rows, gathered into x_active.
            assert native_scratch(key, "forward_masked")[3:] == scratch + (("x_active",) if projects else ())
            # Step by step too, in place of MKL's packed kernel.
            assert ("blocked_kernel" in native_scratch(key, "forward_stepwise")) == projects
            assert ("packed_kernel" in native_scratch(key, "forward_stepwise")) != projects


def check_product_of_every_row_count(units):
    module = VARIANTS.get(_key(units=units))
    rng = np.random.default_rng(units)
    recurrent_kernel = rng.normal(size=(units, 4 * units)).astype(np.float32)
    panels = module._blocked(recurrent_kernel)
    assert panels.ctypes.data % 64 == 0 and panels.flags.c_contiguous
    count = -(-4 * units // 64)  # panels of 64 columns, the last padded with zeros
    padded = np.pad(recurrent_kernel, ((0, 0), (0, 64 * count - 4 * units)))
    np.testing.assert_array_equal(panels[:, :units], padded.reshape(units, count, 64).transpose(1, 0, 2))
    assert not panels[:, units].any()  # what the product starts from
    h = rng.normal(size=(11, units)).astype(np.float32)
    for rows in range(12):  # whole blocks of 4 rows and a block of the 1-3 rows that remain
        # zh [rows, 4H], then 64 floats that a last panel's padding must not reach
        guarded = np.full(rows * 4 * units + 64, np.nan, np.float32)
        zh = guarded[:rows * 4 * units].reshape(rows, 4 * units)
        module._blocked_product(h[:rows], panels, zh)
        assert np.isnan(guarded[rows * 4 * units:]).all()
        expected = h[:rows].astype(np.float64) @ recurrent_kernel.astype(np.float64)
        np.testing.assert_allclose(zh, expected, rtol=1e-5, atol=1e-5 * np.sqrt(units))


# 4H of 8 = 32 columns (less than one panel), 50 = 3 panels and 8 columns (a vector of 16 in part),
# 100 = 6 panels and 16: the last panel's real columns only.
@pytest.mark.parametrize("units", [16, 128, 8, 50, 100])
def test_product_of_every_row_count(units):
    check_product_of_every_row_count(units)


# A CPU without AVX-512 (Haswell's features): the product in vectors of 8, a row at a time; with
# a padded last panel (H = 50), its masked stores of 8 lanes.
_HASWELL = "+avx,+avx2,+fma,+f16c,+bmi,+bmi2,+lzcnt,+popcnt,+movbe,+sse4.2,+sse4.1,+ssse3,-avx512f"


def test_product_of_every_row_count_without_avx512(tmp_path):
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES=_HASWELL,
               LSTMGEN_CACHE_DIR=str(tmp_path), PYTHONPATH=str(Path(__file__).parent))
    check = ("import numba.core.config as c; assert '+avx512f' not in c.CPU_FEATURES; "
             "from test_blocked_product import check_product_of_every_row_count as check; "
             "check(16); check(64); check(50)")
    subprocess.run([sys.executable, "-c", check], env=env, check=True)


def test_projection_in_panels_adds_the_bias_to_every_row_count():
    module = VARIANTS.get(_key(units=16))  # C = 3
    rng = np.random.default_rng(8)
    kernel = rng.normal(size=(3, 64)).astype(np.float32)
    bias = rng.normal(size=64).astype(np.float32)
    panels = module._blocked_kernel(kernel, bias)
    x = rng.normal(size=(9, 3)).astype(np.float32)
    for rows in range(10):
        zx = np.full((rows, 64), np.nan, np.float32)
        module._blocked_product(x[:rows], panels, zx)
        expected = x[:rows].astype(np.float64) @ kernel.astype(np.float64) + bias
        np.testing.assert_allclose(zx, expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"kernel must be \[INPUT_DIM, 4 \* UNITS\]"):
        module._blocked_kernel(np.zeros((4, 64), np.float32), bias)
    with pytest.raises(ValueError, match=r"bias must be \[4 \* UNITS\]"):
        module._blocked_kernel(kernel, np.zeros(16, np.float32))


def test_a_recurrent_kernel_of_another_shape_is_refused():
    """The panels are copied by index: a wrong shape must not read past the array."""
    module = VARIANTS.get(_key(units=16))
    with pytest.raises(ValueError, match=r"recurrent_kernel must be \[UNITS, 4 \* UNITS\]"):
        module._blocked(np.zeros((16, 32), np.float32))


def test_blocked_any_size_lifts_the_weight_bound_only():
    """The key's blocked_any_size (CPUs for which MKL has no AVX-512 code): any H, still float32
    without a projection; a key field left out of the JSON when False, so that other variants
    keep their names."""
    spec = LSTMSpec(256, input_dim=3)
    plain, lifted = (VariantKey.from_spec(spec, "cpu", "numpy", flag) for flag in (False, True))
    assert not blocked_product(plain) and blocked_product(lifted)
    assert "blocked_any_size" not in plain.to_json() and '"blocked_any_size":true' in lifted.to_json()
    assert plain.module_name != lifted.module_name
    for other in (spec.replace(dtype="float64"), spec.replace(proj_size=8)):
        assert not blocked_product(VariantKey.from_spec(other, "cpu", "numpy", True))
    assert blocked_product(VariantKey.from_spec(spec.replace(units=200), "cpu", "numpy", True))
    assert not VariantKey.from_spec(spec, "cuda", blocked_any_size=True).blocked_any_size


@pytest.mark.parametrize("blas_name", ["numpy", "mkl"])
def test_a_layer_of_h_256_on_the_blocked_product_matches_the_reference(monkeypatch, blas_name):
    """Where blocked_any_size holds: both products (C <= H) in panels of the H = 256 weights, the
    batch split in two, with and without a mask."""
    skip_without(blas_name)
    monkeypatch.setenv(blas.ENV, blas_name)
    monkeypatch.setattr(blas, "blocked_any_size", lambda: True)
    rng = np.random.default_rng(5)
    layer = lstmgen.LSTM(256, return_sequences=True, return_state=True)
    weights = [rng.normal(0, 0.1, s) for s in [(48, 1024), (256, 1024), (1024,)]]
    layer.set_weights(weights)
    x = rng.normal(size=(8, 30, 48))
    mask = np.arange(30) < rng.integers(10, 31, size=8)[:, None]
    for m in (None, mask):
        expected = reference.forward(layer.spec, *weights, x, mask=m)
        for got, want in zip(layer(x, mask=m), expected):
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    key = VariantKey.from_spec(layer.spec, "cpu", blas_name, True)
    assert "def _block_product(" in VARIANTS.get(key).__loader__.get_source(key.module_name)


@pytest.mark.parametrize("fields, lifted", [
    ({"vendor_id": "AuthenticAMD", "flags": "fpu avx2 fma avx512f avx512bw"}, True),
    ({"vendor_id": "GenuineIntel", "flags": "fpu avx2 fma avx512f avx512bw"}, False),
    ({"vendor_id": "AuthenticAMD", "flags": "fpu avx2 fma"}, False),  # no AVX-512: MKL's AVX2
    ({}, False),  # not Linux, or no /proc
])
def test_blocked_any_size_where_mkl_has_no_avx512_code(monkeypatch, fields, lifted):
    monkeypatch.setattr(blas, "cpu_fields", lambda: fields)
    assert blas.blocked_any_size.__wrapped__() == lifted
