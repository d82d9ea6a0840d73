"""lstmgen.LSTM against real Keras 3 LSTM layers (torch backend, CPU) holding the same weights.

Tolerances: float32 layers within rtol 2e-5, atol 1e-6 (both sides round in float32);
float64 layers (Keras `dtype="float64"`) within rtol = atol = 1e-12. Penalties (`losses`) within
rtol 1e-5 (float32) or 1e-7 (float64: Keras's L1 casts its factor through float32, so 0.01 is off
by 2e-8 relative); constrained weights within 1e-6 (float32) or 1e-12 (float64), except where
Keras hands back float32 for float64 weights (NonNeg: `ops.maximum(w, 0)` promotes to float32).

Keras 3.15's torch `ops.matmul` computes float64 operands in float32 (type promotion off
TensorFlow), and LSTMCell uses it on the masked, unrolled and dropout paths; the fixture
exact_float64_matmul (tests/keras_float64.py) restores float64 so that float64
layers can be held to 1e-12.

time_major is not compared: Keras 3 rejects it (tests/test_cpu_target.py checks it against the
reference). unroll with a mask is compared going forwards only: Keras 3.15 crashes on
unroll + mask + go_backwards (see tests/test_reference_keras.py).
"""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from keras_float64 import exact_float64_matmul  # noqa: E402,F401  (autouse fixture)

import lstmgen  # noqa: E402
from blas_helpers import skip_without  # noqa: E402
from lstmgen import blas  # noqa: E402
from lstmgen.lower.plan import BLAS_CHOICES  # noqa: E402

# Keras's own variables and tensors trip numpy 2's __array__(copy=) deprecation; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

N, T, C, H = 4, 5, 3, 2
# Rows: a hole and a masked last step; leading masked steps; fully masked; right-padded.
MASK = np.array([[1, 0, 1, 1, 0],
                 [0, 0, 1, 1, 1],
                 [0, 0, 0, 0, 0],
                 [1, 1, 1, 0, 0]], dtype=bool)
# Padded sequences of lengths 5, 3, 0, 1 (the rows each step uses nest: the generated code
# multiplies only those), right-padded (post) and left-padded (Keras's pad_sequences default).
LENGTHS = np.array([5, 3, 0, 1])
PADDED = {"right": np.arange(T)[None, :] < LENGTHS[:, None],
          "left": np.arange(T)[None, :] >= T - LENGTHS[:, None]}
DTYPES = ("float32", "float64")


@pytest.fixture(autouse=True, params=BLAS_CHOICES)
def blas_variant(request, monkeypatch):
    """Every comparison runs on the code for each BLAS (MKL's is skipped where not installed)."""
    skip_without(request.param)
    monkeypatch.setenv(blas.ENV, request.param)


def tolerances(dtype):
    return dict(rtol=2e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)


def numpy(value):
    return keras.ops.convert_to_numpy(value)


def as_list(result):
    return list(result) if isinstance(result, (list, tuple)) else [result]


def assert_same(ours, theirs, dtype):
    ours, theirs = as_list(ours), as_list(theirs)
    assert len(ours) == len(theirs)
    for index, (a, b) in enumerate(zip(ours, theirs)):
        b = numpy(b)
        assert a.dtype == b.dtype == np.dtype(dtype), (index, a.dtype, b.dtype)
        assert a.shape == b.shape, (index, a.shape, b.shape)
        np.testing.assert_allclose(a, b, err_msg=f"result {index}", **tolerances(dtype))


def twin_layers(rng, dtype, **kwargs):
    """A Keras LSTM and an lstmgen LSTM with the same arguments and random weights N(0, 0.5)."""
    theirs = keras.layers.LSTM(H, dtype=dtype, **kwargs)
    theirs.build((N, T, C))
    weights = [rng.normal(0.0, 0.5, w.shape).astype(dtype) for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours = lstmgen.LSTM(H, dtype=dtype, **kwargs)
    ours.set_weights(weights)
    return ours, theirs


CASES = {
    "defaults": (dict(), False, False),
    "sequences-mask-initial-state": (dict(return_sequences=True), True, True),
    "backwards-state-mask": (dict(go_backwards=True, return_sequences=True, return_state=True),
                             True, True),
    "backwards-last-output": (dict(go_backwards=True, return_state=True), True, False),
    "zero-output-sequences": (dict(zero_output_for_mask=True, return_sequences=True), True, True),
    "zero-output-last-output": (dict(zero_output_for_mask=True, return_state=True), True, False),
    "last-output-mask-initial-state": (dict(return_state=True), True, True),
    "unroll-mask": (dict(unroll=True, return_sequences=True, return_state=True), True, True),
    "unroll-backwards": (dict(unroll=True, go_backwards=True, return_sequences=True), False, True),
    "no-bias": (dict(use_bias=False, return_sequences=True), True, False),
    "other-activations": (dict(activation="softsign", recurrent_activation="hard_sigmoid",
                               return_sequences=True), True, True),
    "right-padded-sequences": (dict(return_sequences=True, return_state=True), "right", True),
    "left-padded-backwards": (dict(go_backwards=True, return_sequences=True, return_state=True),
                              "left", True),
    "right-padded-backwards-zero-output": (dict(go_backwards=True, zero_output_for_mask=True,
                                                return_state=True), "right", False),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_keras(case, dtype):
    kwargs, masked, with_initial_state = CASES[case]
    rng = np.random.default_rng(sorted(CASES).index(case))
    ours, theirs = twin_layers(rng, dtype, **kwargs)
    x = rng.normal(size=(N, T, C)).astype(dtype)
    mask = PADDED[masked] if masked in PADDED else MASK if masked else None
    initial_state = ([rng.normal(size=(N, H)).astype(dtype) for _ in range(2)]
                     if with_initial_state else None)
    expected = theirs(x, mask=mask, initial_state=initial_state)
    assert_same(ours(x, mask=mask, initial_state=initial_state), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("masked", [False, True])
def test_stateful_matches_keras(dtype, masked):
    """Three calls carry the states over, reset_states() zeros them, and a fourth call starts anew."""
    rng = np.random.default_rng(40)
    kwargs = dict(stateful=True, return_sequences=True, return_state=True)
    ours, theirs = twin_layers(rng, dtype, **kwargs)
    x = rng.normal(size=(N, 3 * T, C)).astype(dtype)
    mask = np.concatenate([MASK, MASK[::-1], MASK[:, ::-1]], axis=1) if masked else None
    for k in range(3):
        steps = slice(k * T, (k + 1) * T)
        chunk_mask = None if mask is None else mask[:, steps]
        expected = theirs(x[:, steps], mask=chunk_mask)
        assert_same(ours(x[:, steps], mask=chunk_mask), expected, dtype)
        assert_same(ours.states, [numpy(s) for s in theirs.states], dtype)
    ours.reset_states()
    theirs.reset_states()
    assert_same(ours.states, [numpy(s) for s in theirs.states], dtype)
    chunk_mask = None if mask is None else mask[:, :T]
    assert_same(ours(x[:, :T], mask=chunk_mask), theirs(x[:, :T], mask=chunk_mask), dtype)


L1L2 = {"class_name": "L1L2", "config": {"l1": 0.01, "l2": 0.02}}
REGULARIZERS = {
    "l1-l2-l1l2": dict(kernel_regularizer="l1", recurrent_regularizer="l2", bias_regularizer=L1L2,
                       activity_regularizer="l2"),
    "l1l2-zero-and-activity-l1": dict(kernel_regularizer="l1l2", recurrent_regularizer=L1L2,
                                      activity_regularizer="l1"),
    "l2-factors": dict(kernel_regularizer={"class_name": "L2", "config": {"l2": 0.3}},
                       bias_regularizer={"class_name": "L1", "config": {"l1": 0.2}},
                       activity_regularizer=L1L2),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("config", sorted(REGULARIZERS))
def test_losses_match_keras(config, return_state, dtype):
    """Keras's order: the last call's activity penalties (one per returned tensor), then
    kernel, recurrent and bias penalties."""
    rng = np.random.default_rng(50)
    ours, theirs = twin_layers(rng, dtype, return_sequences=True, return_state=return_state,
                               **REGULARIZERS[config])
    assert ours.losses == pytest.approx([float(numpy(v)) for v in theirs.losses], rel=1e-5)
    rtol = 1e-5 if dtype == "float32" else 1e-7
    for n_batch in (N, 2):
        x = rng.normal(size=(n_batch, T, C)).astype(dtype)
        theirs(x)
        ours(x)
        expected = [float(numpy(v)) for v in theirs.losses]
        assert len(expected) >= 1
        assert ours.losses == pytest.approx(expected, rel=rtol, abs=1e-12)


CONSTRAINTS = {
    "max_norm": "max_norm",
    "max_norm-0.5-axis-1": {"class_name": "MaxNorm", "config": {"max_value": 0.5, "axis": 1}},
    "non_neg": "non_neg",
    "unit_norm": "unit_norm",
    "unit_norm-axis-1": {"class_name": "UnitNorm", "config": {"axis": 1}},
    "min_max_norm": "min_max_norm",
    "min_max_norm-rate": {"class_name": "MinMaxNorm",
                          "config": {"min_value": 1.5, "max_value": 2.5, "rate": 0.7, "axis": 0}},
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
def test_apply_constraints_matches_keras(name, dtype):
    identifier = CONSTRAINTS[name]
    # axis=1 only makes sense for the 2-D weights; the bias then gets non_neg instead.
    on_axis_1 = isinstance(identifier, dict) and identifier["config"].get("axis", 0) == 1
    bias_identifier = "non_neg" if on_axis_1 else identifier
    ours = lstmgen.LSTM(H, dtype=dtype, kernel_constraint=identifier,
                        recurrent_constraint=identifier, bias_constraint=bias_identifier)
    rng = np.random.default_rng(60)
    # Norms on both sides of every bound: some columns small, some large.
    weights = [(rng.normal(0.0, 1.0, shape) * rng.uniform(0.1, 3.0, shape[-1])).astype(dtype)
               for shape in [(C, 4 * H), (H, 4 * H), (4 * H,)]]
    ours.set_weights(weights)
    ours.apply_constraints()
    keras_constraints = [keras.constraints.get(identifier), keras.constraints.get(identifier),
                         keras.constraints.get(bias_identifier)]
    expected = [numpy(k(keras.ops.convert_to_tensor(w, dtype=dtype)))
                for k, w in zip(keras_constraints, weights)]
    for got, want in zip(ours.get_weights(), expected):
        assert got.dtype == np.dtype(dtype)
        tol = 1e-12 if want.dtype == got.dtype == np.float64 else 1e-6
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    assert any(not np.allclose(a, b) for a, b in zip(ours.get_weights(), weights))
