"""The BLAS choice of the cpu target: MKL's packed GEMM or NumPy's, each against the reference."""

import importlib.metadata
import sys
import zlib

import numba
import numpy as np
import pytest

import lstmgen
from lstmgen import blas, reference
from lstmgen.cache import VARIANTS, import_module
from lstmgen.lower.plan import BLAS_CHOICES, VariantKey
from lstmgen.render import render
from lstmgen.spec import LSTMSpec
from blas_helpers import skip_without


def test_choice_follows_the_environment(monkeypatch):
    monkeypatch.setenv(blas.ENV, "numpy")
    assert blas.choice() == "numpy"
    auto = "mkl" if blas.mkl_runtime() and not blas.torch_installed() else "numpy"
    monkeypatch.setenv(blas.ENV, "auto")
    assert blas.choice() == auto
    monkeypatch.delenv(blas.ENV)
    assert blas.choice() == auto
    skip_without("mkl")
    monkeypatch.setenv(blas.ENV, "MKL")
    assert blas.choice() == "mkl"
    monkeypatch.setenv(blas.ENV, "openblas")
    with pytest.raises(ValueError, match="LSTMGEN_BLAS='openblas': expected one of auto, mkl, numpy"):
        blas.choice()


@pytest.mark.parametrize("torch_installed", [False, True])
def test_auto_takes_mkl_where_torch_is_not_installed(monkeypatch, torch_installed):
    monkeypatch.delenv(blas.ENV, raising=False)
    monkeypatch.setattr(blas, "mkl_runtime", lambda: "/opt/libmkl_rt.so.2")
    monkeypatch.setattr(blas, "torch_installed", lambda: torch_installed)
    assert blas.choice() == ("numpy" if torch_installed else "mkl")


def test_asking_for_mkl_without_it_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(blas, "mkl_runtime", lambda: None)
    monkeypatch.setenv(blas.ENV, "mkl")
    with pytest.raises(ValueError, match=r"LSTMGEN_BLAS=mkl, but MKL is not installed .*lstmgen\[mkl\]"):
        blas.choice()
    monkeypatch.setenv(blas.ENV, "auto")
    assert blas.choice() == "numpy"


def test_the_key_records_the_blas():
    spec = LSTMSpec(3, input_dim=2)
    keys = {name: VariantKey.from_spec(spec, "cpu", name) for name in BLAS_CHOICES}
    assert len({k.module_name for k in keys.values()}) == len(BLAS_CHOICES)
    for name, key in keys.items():
        source = render(key)
        assert f'"blas":"{name}"' in source.splitlines()[3]  # the header's spec line
        assert f'BLAS = "{name}"' in source
    assert VariantKey.from_spec(spec, "cuda").blas is None
    with pytest.raises(ValueError, match="blas='openblas': must be one of mkl, numpy"):
        VariantKey.from_spec(spec, "cpu", "openblas")


def test_each_variant_holds_only_its_own_blas_code():
    """Specialized: the MKL module never calls np.dot (nor needs scipy); NumPy's has no MKL code."""
    for dtype, letter in (("float32", "s"), ("float64", "d")):
        spec = LSTMSpec(3, input_dim=2, dtype=dtype, dropout=0.2, recurrent_dropout=0.1)
        mkl = render(VariantKey.from_spec(spec, "cpu", "mkl"))
        numpy_blas = render(VariantKey.from_spec(spec, "cpu", "numpy"))
        assert "np.dot" not in mkl and f"cblas_{letter}gemm_compute" in mkl
        assert "cblas_" not in numpy_blas and "llvmlite.binding" not in numpy_blas and "np.dot" in numpy_blas
        other = "d" if letter == "s" else "s"
        assert f"cblas_{other}gemm" not in mkl


# Structural variants, each run on both BLAS and checked against the float64 reference. N=7 with
# enough work splits the batch into parts of 3 and 4 rows, each packing the weights for its rows.
CASES = [
    dict(dtype="float32", n_batch=7, n_time=20, input_dim=32, units=64),
    dict(dtype="float64", n_batch=7, n_time=20, input_dim=32, units=64, go_backwards=True),
    dict(dtype="float32", n_batch=3, n_time=6, input_dim=5, units=4, masked=True, time_major=True,
         return_sequences=False),
    dict(dtype="float64", n_batch=4, n_time=5, input_dim=3, units=6, masked=True, use_bias=False,
         zero_output_for_mask=False, unroll=True),
    dict(dtype="float32", n_batch=5, n_time=7, input_dim=4, units=8, training=True, dropout=0.3,
         recurrent_dropout=0.2, implementation=1),
    dict(dtype="float64", n_batch=1, n_time=30, input_dim=4, units=16),
    # Padded sequences: each step's product runs on the rows that use it (MKL: fewer rows than
    # the packed kernel was packed for). 7 rows, 40 steps: two parts of 3 and 4 rows.
    dict(dtype="float32", n_batch=7, n_time=40, input_dim=32, units=64, masked="right-padded"),
    dict(dtype="float64", n_batch=5, n_time=9, input_dim=3, units=6, masked="left-padded",
         go_backwards=True, return_sequences=False, zero_output_for_mask=False),
    # float32 up to H = 128 runs the recurrent product in its own blocked code
    # (lower.cpu.blocked_product), also unrolled, in training without recurrent dropout, on
    # the padded rows in use (blocks of 4 rows and what remains), and where 4H is not whole
    # panels of 64 columns (H = 20, 50).
    dict(dtype="float32", n_batch=1, n_time=12, input_dim=3, units=16, masked=True, unroll=True),
    dict(dtype="float32", n_batch=6, n_time=8, input_dim=5, units=32, training=True, dropout=0.3,
         go_backwards=True),
    dict(dtype="float32", n_batch=9, n_time=9, input_dim=4, units=128, masked="left-padded"),
    dict(dtype="float32", n_batch=6, n_time=7, input_dim=5, units=20, masked="right-padded"),
    dict(dtype="float32", n_batch=5, n_time=6, input_dim=50, units=50, go_backwards=True),
]


def random_mask(rng, kind, n_batch: int, n_time: int) -> np.ndarray:
    """True: random holes; "right-padded" / "left-padded": sequences of random lengths (0 to T)."""
    if kind is True:
        return rng.random((n_batch, n_time)) < 0.7
    lengths = rng.integers(0, n_time + 1, n_batch)
    steps = np.arange(n_time)[None, :]
    return steps < lengths[:, None] if kind == "right-padded" else steps >= n_time - lengths[:, None]


@pytest.mark.parametrize("blas_name", BLAS_CHOICES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_layer_matches_reference(monkeypatch, blas_name, case):
    check_layer_against_reference(monkeypatch, blas_name, case)


def check_layer_against_reference(monkeypatch, blas_name, case):
    """Run a layer of `case` on `blas_name` against the float64 reference; return the layer."""
    skip_without(blas_name)
    monkeypatch.setenv(blas.ENV, blas_name)
    case = dict(case)
    dtype, n_batch, n_time = case.pop("dtype"), case.pop("n_batch"), case.pop("n_time")
    input_dim, units = case.pop("input_dim"), case.pop("units")
    masked, training = case.pop("masked", False), case.pop("training", False)
    rng = np.random.default_rng(zlib.crc32(repr((blas_name, dtype, n_batch)).encode()))
    layer = lstmgen.LSTM(units, dtype=dtype, return_state=True, seed=3,
                         **{"return_sequences": True, **case})
    use_bias = case.get("use_bias", True)
    weights = [rng.normal(0, 0.5, (input_dim, 4 * units)), rng.normal(0, 0.5, (units, 4 * units))]
    weights += [rng.normal(0, 0.1, 4 * units)] if use_bias else []
    layer.set_weights(weights)
    shape = (n_time, n_batch, input_dim) if case.get("time_major") else (n_batch, n_time, input_dim)
    x = rng.normal(size=shape)
    mask = random_mask(rng, masked, n_batch, n_time) if masked else None
    initial = [rng.normal(size=(n_batch, units)) for _ in range(2)]
    ours = layer(x, mask=mask, training=training, initial_state=initial)
    masks = {}
    if training:  # the masks the call used, read back through the layer's getters
        count = layer.spec.dropout_mask_count
        masks = dict(input_masks=layer.get_dropout_mask_for_cell(np.empty((n_batch, input_dim)), True, count),
                     recurrent_masks=layer.get_recurrent_dropout_mask_for_cell(
                         np.empty((n_batch, units)), True, count))
    expected = reference.forward(layer.spec, *[np.asarray(w, np.float64) for w in weights[:2]],
                                 np.asarray(weights[2]) if use_bias else None, x, mask=mask,
                                 initial_state=initial, **masks)
    tolerance = dict(rtol=2e-5, atol=2e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-10)
    for got, want in zip(ours, expected):
        np.testing.assert_allclose(got, want, **tolerance)
    return layer


# None blocked_product's (float32 from 128 units: without blocked_any_size, its weights' bound).
@pytest.mark.parametrize("dtype, units, rows", [("float64", 4, 7), ("float64", 72, 32),
                                                ("float64", 256, 64), ("float32", 144, 7),
                                                ("float32", 256, 64)])
def test_mkl_packed_kernel_serves_fewer_rows(dtype, units, rows):
    """Padded sequences multiply fewer rows than the recurrent kernel was packed for (MKL
    documents packing with m but gives every m the same packed size): every prefix of rows
    gets its product. (Not always bit for bit the product with a kernel packed for that many
    rows: MKL may sum in another order for another m.)"""
    skip_without("mkl")
    module = VARIANTS.get(VariantKey.from_spec(LSTMSpec(units, input_dim=2, dtype=dtype), "cpu", "mkl"))
    rng = np.random.default_rng(units)
    recurrent_kernel = rng.normal(size=(units, 4 * units)).astype(dtype)
    h = rng.normal(size=(rows, units)).astype(dtype)
    packed = module._packed(recurrent_kernel, rows)
    tolerance = 1e-5 if dtype == "float32" else 1e-12
    for m in range(rows + 1):
        zh = np.full((m, 4 * units), np.nan, dtype)
        module._recurrent_product(h[:m], packed, zh)
        expected = h[:m].astype(np.float64) @ recurrent_kernel.astype(np.float64)
        np.testing.assert_allclose(zh, expected, rtol=tolerance, atol=tolerance * np.sqrt(units))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mkl_into_from_user_njit_checks_contiguity(dtype):
    skip_without("mkl")
    units, input_dim, n_batch, n_time = 4, 3, 5, 6
    spec = LSTMSpec(units, input_dim=input_dim, dtype=dtype, return_sequences=True)
    module = VARIANTS.get(VariantKey.from_spec(spec, "cpu", "mkl"))
    into = module.forward_into

    @numba.njit
    def run(x, kernel, recurrent_kernel, bias, h0, c0, zx, zh, output, h, c):
        into(x, kernel, recurrent_kernel, bias, h0, c0, zx, zh, output, h, c)

    rng = np.random.default_rng(11)
    kernel, recurrent_kernel = (rng.normal(0, 0.5, s).astype(dtype)
                                for s in [(input_dim, 4 * units), (units, 4 * units)])
    bias = rng.normal(0, 0.1, 4 * units).astype(dtype)
    x = rng.normal(size=(n_batch, n_time, input_dim)).astype(dtype)
    h0, c0 = (rng.normal(size=(n_batch, units)).astype(dtype) for _ in range(2))
    buffers = dict(zx=np.empty((n_batch * n_time, 4 * units), dtype), zh=np.empty((n_batch, 4 * units), dtype),
                   output=np.empty((n_batch, n_time, units), dtype), h=np.empty((n_batch, units), dtype),
                   c=np.empty((n_batch, units), dtype))
    run(x, kernel, recurrent_kernel, bias, h0, c0, *buffers.values())
    expected = reference.forward(spec.replace(return_state=True), kernel.astype(np.float64),
                                 recurrent_kernel.astype(np.float64), bias.astype(np.float64), x,
                                 initial_state=[h0, c0])
    tolerance = 2e-5 if dtype == "float32" else 1e-10
    for name, want in zip(("output", "h", "c"), expected):
        np.testing.assert_allclose(buffers[name], want, rtol=tolerance, atol=tolerance)
    strided = np.empty((n_batch, 8 * units), dtype)[:, ::2]
    with pytest.raises(ValueError, match="zx, zh and h must be C-contiguous"):
        run(x, kernel, recurrent_kernel, bias, h0, c0, buffers["zx"], strided, buffers["output"],
            buffers["h"], buffers["c"])


def test_mkl_module_without_mkl_raises_import_error(monkeypatch, tmp_path):
    """A module generated for MKL names the missing package instead of failing in a BLAS call."""
    path = tmp_path / "lstm_for_mkl.py"
    path.write_text(render(VariantKey.from_spec(LSTMSpec(3, input_dim=2), "cpu", "mkl")))

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ImportError, match="generated for MKL .* the mkl package is not installed"):
        import_module(path)
    sys.modules.pop(path.stem, None)


STEPWISE_CASES = [
    dict(dtype="float32", n_batch=7, n_time=20, input_dim=80, units=64),  # C > H: no panels
    dict(dtype="float64", n_batch=7, n_time=20, input_dim=32, units=64, go_backwards=True),
    # Time-major parts of the batch are strided views of x: step t's rows are read in place.
    dict(dtype="float32", n_batch=5, n_time=6, input_dim=5, units=4, time_major=True,
         return_sequences=False),
    dict(dtype="float64", n_batch=1, n_time=30, input_dim=4, units=16, use_bias=False),
    # Float32, C <= H: projected in the blocked product, step t's rows read through x's strides.
    dict(dtype="float32", n_batch=7, n_time=20, input_dim=32, units=64),
    dict(dtype="float32", n_batch=6, n_time=9, input_dim=16, units=32, time_major=True,
         go_backwards=True, use_bias=False),
]


@pytest.mark.parametrize("blas_name", BLAS_CHOICES)
@pytest.mark.parametrize("case", STEPWISE_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_layer_projects_each_step_where_zx_would_be_big(monkeypatch, blas_name, case):
    """forward_stepwise (each step's input projected right before the step), which the layer
    takes for parts whose zx would be big, here for every call, split into parts."""
    from lstmgen import batch_threads, runtime

    monkeypatch.setattr(runtime, "STEPWISE_FROM", {"blas": (1, 0), "panels": (1, 0)})
    monkeypatch.setattr(batch_threads, "MIN_MULTIPLY_ADDS_PER_PART", 1)
    layer = check_layer_against_reference(monkeypatch, blas_name, case)
    assert [key[-1] for key in layer._entries if isinstance(key, tuple)] == [True]


def test_parts_project_each_step_only_where_zx_would_be_big():
    from lstmgen.runtime import _projects_by_step

    # Through BLAS, from tens of MB.
    assert _projects_by_step(64, 100, 512, 4, False)  # the large benchmark's part: zx 52 MB
    assert not _projects_by_step(32, 100, 256, 4, False)  # the batch case's: 13 MB, no faster
    assert not _projects_by_step(16, 50, 64, 4, False) and not _projects_by_step(1, 100000, 512, 4, False)
    # In the blocked product, from a few MB and a block of rows.
    assert _projects_by_step(32, 100, 256, 4, True) and _projects_by_step(4, 1000, 128, 4, True)
    assert not _projects_by_step(16, 50, 64, 4, True)  # the small case's part: 0.8 MB
    assert not _projects_by_step(2, 2000, 64, 4, True)  # too few rows for a product per step
