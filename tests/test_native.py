"""Native libraries (lstmgen.native): forward_into compiled ahead of time, run through ctypes.

Each library is checked against the generated module's own forward_into (the JIT code it is
compiled from) and, through layers, against the float64 reference; a warm start is checked to
import neither Numba nor the generated module.
"""

import json
import os
import subprocess
import sys
import threading
import zlib
from types import SimpleNamespace

import numpy as np
import pytest

import lstmgen
from lstmgen import batch_threads, blas, native, reference
from lstmgen.cache import VARIANTS
from lstmgen.lower.cpu import (batch_axis, blocked_product, native_arguments, native_scratch,
                                native_shapes)
from lstmgen.lower.plan import VariantKey
from lstmgen.spec import LSTMSpec
from blas_helpers import skip_without
from test_blas import random_mask

OFF = f"native libraries {native.status()}"  # says why: not Linux, or LSTMGEN_NATIVE=0
pytestmark = pytest.mark.skipif(not native.enabled(), reason=OFF)

SPECS = [
    dict(units=16, input_dim=5),
    dict(units=8, input_dim=3, dtype="float64", go_backwards=True, return_sequences=False),
    dict(units=12, input_dim=4, time_major=True, use_bias=False, activation="relu"),
    dict(units=8, input_dim=6, use_recurrent_bias=True, use_peepholes=True, clip=1.5,
         input_forget=True, recurrent_activation="hard_sigmoid"),
]


MASKS = ["right-padded", "left-padded", True]  # padded sequences (nested rows), holes


def _arrays(key: VariantKey, entry_name: str, rng, n_batch: int, n_time: int, mask=None) -> list:
    """`<entry_name>_into`'s arguments for `key`: random inputs, weights and states, the mask
    (a random_mask kind); results and scratch full of NaN."""
    dtype, gates = np.dtype(key.dtype), 4 * key.units
    values = {"x": rng.normal(size=(n_time, n_batch, key.input_dim) if key.time_major
                              else (n_batch, n_time, key.input_dim)),
              "h0": rng.normal(size=(n_batch, key.units)), "c0": rng.normal(size=(n_batch, key.units))}
    for param, shape in native_shapes(key, entry_name):
        if param not in values and param not in ("mask", "zx", "zx_step", "zh", "output", "h", "c"):
            values[param] = rng.normal(0, 0.4, eval(shape))  # a weight: its shape is a literal
    values = {k: v.astype(dtype) for k, v in values.items()}
    output = ((n_time, n_batch) if key.time_major else (n_batch, n_time)) if key.return_sequences else (n_batch,)
    values.update(zx=np.full((n_batch * n_time, gates), np.nan, dtype),
                  zx_step=np.full((n_batch, gates), np.nan, dtype),
                  zh=np.full((n_batch, gates), np.nan, dtype),
                  output=np.full(output + (key.units,), np.nan, dtype),
                  h=np.full((n_batch, key.units), np.nan, dtype),
                  c=np.full((n_batch, key.units), np.nan, dtype))
    if mask is not None:
        values["mask"] = random_mask(rng, mask, n_batch, n_time)
    return [values[param] for param, _ in native_shapes(key, entry_name)]


def _check_library(tmp_path, fields: dict, entry_name: str, mask=None, blas_name="mkl") -> None:
    """The library of `<entry_name>_into` against the generated function, for several sizes."""
    key = VariantKey.from_spec(LSTMSpec(**fields), "cpu", blas_name)
    module = VARIANTS.get(key)
    path = native.library_path(key, entry_name, tmp_path)
    native.build(key, entry_name, module, path)
    run = native.NativeForward(key, entry_name, path, jit=lambda: pytest.fail("not the library"))
    rng = np.random.default_rng(zlib.crc32(repr((fields, mask)).encode()))
    for n_batch, n_time in ((3, 7), (1, 1), (9, 2), (6, 11)):  # one library for any batch and length
        ours = _arrays(key, entry_name, rng, n_batch, n_time, mask)
        theirs = [a.copy() for a in ours]
        run(*ours)
        getattr(module, f"{entry_name}_into")(*theirs)
        tolerance = 1e-6 if key.dtype == "float32" else 1e-13
        for got, want in zip(ours[-3:], theirs[-3:]):  # output, h, c
            np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("fields", SPECS, ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()))
def test_library_computes_what_forward_into_does(tmp_path, fields):
    skip_without("mkl")
    _check_library(tmp_path, fields, "forward")


@pytest.mark.parametrize("fields", SPECS, ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()))
def test_library_computes_what_forward_stepwise_into_does(tmp_path, fields):
    skip_without("mkl")
    _check_library(tmp_path, fields, "forward_stepwise")


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("fields", SPECS + [dict(units=8, input_dim=3, zero_output_for_mask=False,
                                                 go_backwards=True)],
                         ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()))
def test_library_computes_what_forward_masked_into_does(tmp_path, fields, mask):
    skip_without("mkl")
    _check_library(tmp_path, fields, "forward_masked", mask)


# float32 and C <= H: both products run in the module's blocked product (H = 20: its last panel
# of weights padded).
BLOCKED_SPECS = [dict(units=16, input_dim=5), dict(units=32, input_dim=32, time_major=True),
                 dict(units=16, input_dim=7, go_backwards=True, return_sequences=False),
                 dict(units=20, input_dim=6)]


@pytest.mark.parametrize("entry_name, mask", [("forward", None), ("forward_stepwise", None)]
                         + [("forward_masked", mask) for mask in MASKS])
@pytest.mark.parametrize("fields", BLOCKED_SPECS, ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()))
def test_numpy_blas_variants_that_call_no_blas_have_libraries(tmp_path, fields, entry_name, mask):
    """No MKL needed: the library links no BLAS (step by step too: it projects in panels)."""
    _check_library(tmp_path, fields, entry_name, mask, "numpy")
    needed = subprocess.run(["ldd", str(next(tmp_path.glob("*.so")))], capture_output=True,
                            text=True).stdout
    assert "mkl" not in needed and "blas" not in needed


def test_arrays_it_cannot_take_go_to_the_generated_function(tmp_path):
    """A strided array (a part of a time-major batch) runs the JIT code instead."""
    skip_without("mkl")
    key = VariantKey.from_spec(LSTMSpec(4, input_dim=3, time_major=True), "cpu", "mkl")
    path = native.library_path(key, "forward", tmp_path)
    native.build(key, "forward", VARIANTS.get(key), path)
    calls = []
    run = native.NativeForward(key, "forward", path, jit=lambda: lambda *a: calls.append(a))
    arrays = _arrays(key, "forward", np.random.default_rng(1), 4, 5)
    arrays[0] = arrays[0][:, :2]  # x: two of four rows, strided
    run(*arrays)
    assert len(calls) == 1 and calls[0][0] is arrays[0]


@pytest.mark.parametrize("time_major", [False, True])
def test_parts_arguments_address_what_slicing_the_batch_would(tmp_path, time_major):
    """batch_threads.run hands a library's parts their rows by address (no slicing): the same
    addresses as each part's slices, and its own scratch; none for time-major parts (strided)."""
    skip_without("mkl")
    key = VariantKey.from_spec(LSTMSpec(16, input_dim=5, time_major=time_major), "cpu", "mkl")
    path = native.library_path(key, "forward_masked", tmp_path)
    native.build(key, "forward_masked", VARIANTS.get(key), path)
    run = native.NativeForward(key, "forward_masked", path, jit=lambda: pytest.fail("not used"))
    arrays = _arrays(key, "forward_masked", np.random.default_rng(2), 7, 3, mask=True)
    params = [param for param, _ in native_shapes(key, "forward_masked")]
    axes = [batch_axis(param, key) for param in params]
    bounds = [(0, 3), (3, 7)]
    parts = run.part_arguments(arrays, axes, bounds)
    if time_major:
        assert parts is None
        return
    for k, (lo, hi) in enumerate(bounds):
        sliced = run.part_arguments([batch_threads._rows(a, axis, lo, hi, 3)
                                     for a, axis in zip(arrays, axes)])[0]
        assert parts[k][:len(arrays)].tolist() == sliced[:len(arrays)].tolist()  # addresses
        assert parts[k][-2:].tolist() == [hi - lo, 3]  # n_batch, n_time
    # A part's own scratch; the weights in panels (blocked_*) are the caller's, read by both.
    names = native_scratch(key, "forward_masked")
    own = [len(arrays) + k for k, name in enumerate(names) if not name.startswith("blocked")]
    shared = [len(arrays) + k for k, name in enumerate(names) if name.startswith("blocked")]
    assert not set(parts[0][own].tolist()) & set(parts[1][own].tolist())
    assert parts[0][shared].tolist() == parts[1][shared].tolist()


def test_variants_that_need_numbas_runtime_have_none():
    spec = LSTMSpec(4, input_dim=3, dropout=0.5)
    key = VariantKey.from_spec(spec, "cpu", "mkl")
    assert native_shapes(key, "forward") and native_shapes(key, "forward_masked")
    assert not native_shapes(key, "forward_train")  # dropout: temporaries allocated
    assert native_shapes(key, "forward_stepwise")
    assert not native_shapes(VariantKey.from_spec(spec.replace(dtype="float64"), "cpu", "numpy"),
                             "forward")  # np.dot: Numba's BLAS
    blocked = LSTMSpec(16, input_dim=5)  # no np.dot, step by step too
    assert all(native_shapes(VariantKey.from_spec(blocked, "cpu", "numpy"), name)
               for name in ("forward", "forward_masked", "forward_stepwise"))
    for other in (blocked.replace(input_dim=17), blocked.replace(dtype="float64")):
        assert not native_shapes(VariantKey.from_spec(other, "cpu", "numpy"), "forward")  # np.dot
    dropped = VariantKey.from_spec(blocked.replace(dropout=0.5), "cpu", "numpy")
    assert native_shapes(dropped, "forward") and not native_shapes(dropped, "forward_train")
    for other in (spec.replace(unroll=True, timesteps=3), spec.replace(proj_size=2)):
        assert not native_shapes(VariantKey.from_spec(other, "cpu", "mkl"), "forward")


def test_a_refused_build_is_recorded_and_not_tried_again(tmp_path, monkeypatch):
    skip_without("mkl")
    key = VariantKey.from_spec(LSTMSpec(5, input_dim=2, dtype="float64"), "cpu", "mkl")  # cblas_dgemm
    monkeypatch.setattr(native, "_provided_outside_numba", lambda name: False)
    function = native.entry_function(key, "forward", tmp_path, lambda: VARIANTS.get(key))
    assert function is VARIANTS.get(key).forward_into
    assert not native.library_path(key, "forward", tmp_path).exists()
    reason = native.why_not_path(native.library_path(key, "forward", tmp_path)).read_text()
    assert "needs Numba's runtime (it calls cblas_dgemm" in reason

    def build(*args):
        raise AssertionError("built again")

    monkeypatch.setattr(native, "build", build)
    assert native.entry_function(key, "forward", tmp_path, lambda: VARIANTS.get(key)) is function


def test_a_failed_link_leaves_no_library(tmp_path, monkeypatch):
    skip_without("mkl")
    key = VariantKey.from_spec(LSTMSpec(5, input_dim=2), "cpu", "mkl")
    monkeypatch.setattr(native.shutil, "which", lambda name: "/bin/false")
    path = native.library_path(key, "forward", tmp_path)
    with pytest.raises(native.NativeUnavailable, match="cc could not link it"):
        native.build(key, "forward", VARIANTS.get(key), path)
    assert list(tmp_path.iterdir()) == []


def test_no_compiler_no_library(tmp_path, monkeypatch):
    key = VariantKey.from_spec(LSTMSpec(5, input_dim=2), "cpu", "mkl")
    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    with pytest.raises(native.NativeUnavailable, match=r"no C compiler \(cc\)"):
        native.build(key, "forward", SimpleNamespace(native_forward_into=None, CODEGEN_OPTIONS={}),
                     native.library_path(key, "forward", tmp_path))


def test_switched_off_by_the_environment(monkeypatch):
    key = VariantKey.from_spec(LSTMSpec(5, input_dim=2), "cpu", "mkl")
    monkeypatch.setenv(native.ENV, "0")
    assert not native.supported(key, "forward")
    assert native.spin_functions("unused") is None


@pytest.mark.parametrize("mask", [None, "right-padded", True])
@pytest.mark.parametrize("time_major", [False, True])
def test_layer_on_the_library_matches_the_reference(monkeypatch, time_major, mask):
    """Through the layer, with the batch split into parts (contiguous batch-major parts run the
    library, strided time-major ones the JIT code): both against the float64 reference."""
    skip_without("mkl")
    monkeypatch.setenv(blas.ENV, "mkl")
    rng = np.random.default_rng(7)
    layer = lstmgen.LSTM(64, return_sequences=True, return_state=True, time_major=time_major)
    weights = [rng.normal(0, 0.3, s) for s in [(32, 256), (64, 256), (256,)]]
    layer.set_weights(weights)
    x = rng.normal(size=(40, 9, 32) if time_major else (9, 40, 32))
    initial = [rng.normal(size=(9, 64)) for _ in range(2)]
    mask = None if mask is None else random_mask(rng, mask, 9, 40)
    ours = layer(x, mask=mask, initial_state=initial)
    key = VariantKey.from_spec(layer.spec, "cpu", "mkl", blas.blocked_any_size())
    entry = "forward" if mask is None else "forward_masked"
    assert native.library_path(key, entry, VARIANTS.directory).exists()
    assert isinstance(layer._entries[(None, mask is not None, False, False)].function, native.NativeForward)
    expected = reference.forward(layer.spec, *weights, x, mask=mask, initial_state=initial)
    for got, want in zip(ours, expected):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("mask", [None, "right-padded"])
def test_new_weights_take_effect_and_old_arrays_do_not(mask):
    """The library reads the weights in panels laid out once per weight arrays: weights set anew
    between calls are used at the next call, split into parts or not, and changing the arrays
    passed to set_weights changes nothing (set_weights copies, as Keras assigns values)."""
    rng = np.random.default_rng(11)
    layer = lstmgen.LSTM(16, return_sequences=True, return_state=True)
    x = rng.normal(size=(12, 240, 8)).astype(np.float32)  # 12 rows: two parts
    mask = None if mask is None else random_mask(rng, mask, 12, 240)
    for _ in range(3):
        weights = [rng.normal(0, 0.3, s).astype(np.float32) for s in [(8, 64), (16, 64), (64,)]]
        layer.set_weights(weights)
        expected = reference.forward(layer.spec, *weights, x, mask=mask)
        key = layer._cpu_key(layer.spec)
        assert blocked_product(key) and native.supported(key, "forward")  # panels in use
        assert batch_threads.parts(12, 12 * 240 * 16 * 4 * 24) == 2 or batch_threads.get_num_threads() == 1
        for rows in (12, 1):  # split into parts, and not
            got = layer(x[:rows], mask=None if mask is None else mask[:rows])
            for a, e in zip(got, expected):
                np.testing.assert_allclose(a, e[:rows], rtol=2e-5, atol=2e-5)
        for w in weights:
            w[...] = rng.normal(size=w.shape)  # the layer holds copies
        assert not any(np.array_equal(w, kept) for w, kept in zip(weights, layer.get_weights()))
        got = layer(x, mask=mask)
        for a, e in zip(got, expected):
            np.testing.assert_allclose(a, e, rtol=2e-5, atol=2e-5)
    assert isinstance(layer._entries[(None, mask is not None, False, False)].function, native.NativeForward)


@pytest.mark.parametrize("units", [64, 50])  # 4H = 200: the last panel padded
def test_panels_are_the_generated_modules_layout(units):
    """native.to_panels lays weights out as the generated module's _to_panels and _start_from."""
    key = VariantKey.from_spec(LSTMSpec(units, input_dim=24), "cpu", "numpy", True)
    module = VARIANTS.get(key)
    rng = np.random.default_rng(5)
    kernel = rng.normal(size=(24, 4 * units)).astype(np.float32)
    bias = rng.normal(size=4 * units).astype(np.float32)
    assert module.BLOCK_COLUMNS == native.PANEL_COLUMNS
    np.testing.assert_array_equal(native.to_panels(kernel, bias), module._blocked_kernel(kernel, bias))
    np.testing.assert_array_equal(native.to_panels(kernel), module._panels(kernel))


_WARM_START = """
import json, sys
import numpy as np, lstmgen
rng = np.random.default_rng(3)
layer = lstmgen.LSTM(16, return_sequences=True)
layer.set_weights([rng.normal(0, 0.3, s) for s in [(4, 64), (16, 64), (64,)]])
x = rng.normal(size=(3, 6, 4))
out = layer(x)
masked = layer(x, mask=np.arange(6) < np.array([[6], [2], [4]]))
print(json.dumps({"numba": "numba" in sys.modules, "out": out.tolist(), "masked": masked.tolist()}))
"""


@pytest.mark.parametrize("blas_name", ["mkl", "numpy"])  # NumPy's: a blocked variant (H = 16)
def test_a_warm_start_imports_neither_numba_nor_the_generated_module(tmp_path, blas_name):
    skip_without(blas_name)
    env = dict(os.environ, LSTMGEN_CACHE_DIR=str(tmp_path), LSTMGEN_BLAS=blas_name)
    runs = [json.loads(subprocess.run([sys.executable, "-c", _WARM_START], env=env, check=True,
                                      capture_output=True, text=True).stdout)
            for _ in range(2)]
    jit = json.loads(subprocess.run([sys.executable, "-c", _WARM_START], check=True, text=True,
                                    env=dict(env, LSTMGEN_NATIVE="0"), capture_output=True).stdout)
    assert [r["numba"] for r in runs] == [True, False]  # the first run compiled and built
    assert jit["numba"] is True
    for result in ("out", "masked"):
        np.testing.assert_allclose(runs[1][result], jit[result], rtol=1e-6, atol=1e-6)
        assert runs[0][result] == runs[1][result]


def test_a_build_that_fails_unexpectedly_warns_and_runs_the_jit_code(tmp_path, monkeypatch):
    skip_without("mkl")
    key = VariantKey.from_spec(LSTMSpec(5, input_dim=2), "cpu", "mkl")
    monkeypatch.setattr(native, "build", lambda *args: 1 / 0)
    with pytest.warns(RuntimeWarning, match="build failed: ZeroDivisionError"):
        function = native.entry_function(key, "forward", tmp_path, lambda: VARIANTS.get(key))
    assert function is VARIANTS.get(key).forward_into
    assert list(tmp_path.iterdir()) == []  # nothing recorded: the next process tries again


def test_a_library_that_does_not_load_warns_and_runs_the_jit_code(tmp_path):
    skip_without("mkl")
    key = VariantKey.from_spec(LSTMSpec(5, input_dim=2), "cpu", "mkl")
    native.library_path(key, "forward", tmp_path).write_bytes(b"not a shared library")
    with pytest.warns(RuntimeWarning, match="does not load"):
        function = native.entry_function(key, "forward", tmp_path, lambda: VARIANTS.get(key))
    assert function is VARIANTS.get(key).forward_into


def test_status_says_why_they_are_off(monkeypatch):
    monkeypatch.setenv(native.ENV, "0")
    assert native.status() == "off (LSTMGEN_NATIVE=0)"
    monkeypatch.setenv(native.ENV, "1")
    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    assert native.status() == "off (no C compiler, cc, on the PATH to link them)"


# forward_units: forward_into run by two threads at once, each on its part of the units
# (unit_split): each on its own units' panels (H % 128 == 0), or on half the panels, waiting for
# the other's before its gates (H = 64 and 80: whole panels, 80 an odd number of them, time_major;
# H = 100: the last one padded).
UNIT_SPECS = [dict(units=128, input_dim=32, return_sequences=True),
              dict(units=100, input_dim=64, return_sequences=True, go_backwards=True),
              dict(units=128, input_dim=128, return_sequences=False, go_backwards=True),
              dict(units=64, input_dim=24, return_sequences=False),
              dict(units=128, input_dim=16, time_major=True, use_bias=False, activation="relu"),
              dict(units=80, input_dim=16, time_major=True, use_peepholes=True),
              dict(units=128, input_dim=8, use_recurrent_bias=True, use_peepholes=True, clip=1.5)]


def test_which_variants_split_their_units():
    for fields, split in ((dict(units=128, input_dim=128), True), (dict(units=64, input_dim=8), True),
                          (dict(units=100, input_dim=8), True), (dict(units=48, input_dim=8), False),
                          (dict(units=128, input_dim=129), False),
                          (dict(units=128, input_dim=8, dtype="float64"), False)):
        key = VariantKey.from_spec(LSTMSpec(**fields), "cpu", "numpy")
        assert bool(native_shapes(key, "forward_units")) == split, fields
    arguments = native_arguments(VariantKey.from_spec(LSTMSpec(128, input_dim=4), "cpu", "mkl"),
                                 "forward_units")
    assert arguments[-1] == ("part", None)


@pytest.mark.parametrize("blas_name", ["mkl", "numpy"])
@pytest.mark.parametrize("fields", UNIT_SPECS, ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()))
def test_both_halves_compute_what_forward_into_does(tmp_path, fields, blas_name):
    """The two halves on two threads of their own (ctypes drops the GIL): what forward_into
    computes, for one row and for a few, one step and many."""
    skip_without(blas_name)
    key = VariantKey.from_spec(LSTMSpec(**fields), "cpu", blas_name)
    module = VARIANTS.get(key)
    path = native.library_path(key, "forward_units", tmp_path)
    native.build(key, "forward_units", module, path)
    run = native.NativeForward(key, "forward_units", path, jit=None)
    rng = np.random.default_rng(zlib.crc32(repr(fields).encode()))
    for n_batch, n_time in ((1, 9), (3, 1), (2, 17)):
        ours = _arrays(key, "forward_units", rng, n_batch, n_time)
        theirs = [a.copy() for a in ours]
        halves = run.unit_arguments(ours)
        assert [h[:-1].tolist() for h in halves] == [halves[0][:-1].tolist()] * 2
        threads = [threading.Thread(target=run.call, args=(half,)) for half in halves]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        module.forward_into(*theirs)
        for got, want in zip(ours[-3:], theirs[-3:]):  # output, h, c
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fields", UNIT_SPECS[:3], ids=lambda f: "-".join(f"{k}={v}" for k, v in f.items()))
def test_a_layer_whose_batch_is_too_small_to_split_splits_its_units(monkeypatch, fields):
    """Through the layer (one row, then three): against the float64 reference."""
    if min(batch_threads.get_num_threads(), len(batch_threads._CPUS)) < 2:
        pytest.skip("needs two CPUs: with one, layers never split their units (the two threads "
                    "would wait for each other at every step)")
    ran = []
    monkeypatch.setattr(batch_threads, "run_units",
                        lambda *args, run=batch_threads.run_units: ran.append(run(*args)) or ran[-1])
    rng = np.random.default_rng(11)
    spec = LSTMSpec(**fields)
    units = spec.units
    layer = lstmgen.LSTM(units, return_state=True, **{k: v for k, v in fields.items()
                                                       if k not in ("units", "input_dim")})
    weights = [rng.normal(0, 0.3 / np.sqrt(s[0]), s)
               for s in [(spec.input_dim, 4 * units), (units, 4 * units), (4 * units,)]]
    layer.set_weights(weights)
    for n_batch in (1, 3):
        x = rng.normal(size=(n_batch, 40, spec.input_dim))
        initial = [rng.normal(size=(n_batch, units)) for _ in range(2)]
        ours = layer(x, initial_state=initial)
        expected = reference.forward(layer.spec, *weights, x, initial_state=initial)
        for got, want in zip(ours, expected):
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
    assert ran == [True, True]
    # forward_into's own library (or function) was never needed: not built (a cold start's time)
    assert "function" not in vars(layer._entries[(None, False, False, False)])
