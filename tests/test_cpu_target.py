"""The CPU target, run through lstmgen.LSTM, against the NumPy reference (lstmgen/reference.py).

Tolerances: float64 layers within rtol = atol = 1e-12 of the float64 reference run on the same
float64 inputs. float32 layers within 2e-5 relative of the float64 reference run on the same
float32 inputs and weights (atol 2e-6 times the array's largest magnitude, for entries that
cancel to near zero).

Numba compiles each new variant in seconds, so structure (activations, flags, dtype, sizes) is
drawn from few values and hypothesis varies the data: weights, inputs, masks, batch and time.
"""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import llvmlite.binding
import numba
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import lstmgen
from lstmgen import reference
from lstmgen.activations import ACTIVATIONS
from lstmgen.cache import VARIANTS
from lstmgen.lower.plan import BLAS_CHOICES, VariantKey
from lstmgen.spec import LSTMSpec
from blas_helpers import skip_without

ROOT = Path(__file__).resolve().parents[1]
NAMES = sorted(ACTIVATIONS)
DTYPES = ("float32", "float64")
# Activations whose output stays within a few units whatever the input.
BOUNDED = frozenset({"tanh", "sigmoid", "hard_sigmoid", "keras2_hard_sigmoid", "relu6", "hard_tanh",
                     "softsign", "sparse_sigmoid"})
# Rows: a hole and a masked last step; leading masked steps; fully masked; all used.
MASK = np.array([[1, 0, 1, 1, 0],
                 [0, 0, 1, 1, 1],
                 [0, 0, 0, 0, 0],
                 [1, 1, 1, 1, 1]], dtype=bool)


def weight_scale(activation, recurrent_activation):
    """Standard deviation of the random weights: unbounded activations feed h back into the gates
    with growing magnitude (exponential doubly so), and an exploding recurrence is so
    ill-conditioned that float32 cannot match anything to 2e-5; smaller weights keep it tame."""
    if "exponential" in (activation, recurrent_activation):
        return 0.05
    if activation in BOUNDED and recurrent_activation in BOUNDED:
        return 0.5
    return 0.25


def random_weights(rng, input_dim, units, dtype, use_bias=True, scale=0.5):
    shapes = [(input_dim, 4 * units), (units, 4 * units)] + ([(4 * units,)] if use_bias else [])
    return [rng.normal(0.0, scale, shape).astype(dtype) for shape in shapes]


def make_layer(weights, units, **kwargs):
    layer = lstmgen.LSTM(units, **kwargs)
    layer.set_weights(weights)
    return layer


def run_reference(layer, weights, x, **kwargs):
    bias = weights[2] if layer.spec.use_bias else None
    return reference.forward(layer.spec, weights[0], weights[1], bias, x, **kwargs)


def as_list(result):
    return list(result) if isinstance(result, (list, tuple)) else [result]


def assert_matches(actual, expected, dtype):
    actual, expected = as_list(actual), as_list(expected)
    assert len(actual) == len(expected)
    for index, (a, e) in enumerate(zip(actual, expected)):
        assert isinstance(a, np.ndarray) and a.dtype == np.dtype(dtype), (index, type(a), a.dtype)
        assert a.shape == e.shape, (index, a.shape, e.shape)
        if np.dtype(dtype) == np.float64:
            np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12, err_msg=f"result {index}")
        else:
            finite = np.abs(e[np.isfinite(e)])
            scale = max(1.0, float(finite.max())) if finite.size else 1.0
            np.testing.assert_allclose(a, e, rtol=2e-5, atol=2e-6 * scale, err_msg=f"result {index}")


def well_conditioned(expected):
    """An exploding recurrence says nothing about the code (see weight_scale); skip such draws."""
    return all(np.isfinite(e).all() and np.abs(e).max() < 1e4 for e in as_list(expected))


@st.composite
def masks(draw, n_batch, n_time):
    """[N, T] bool: padded sequences of random lengths (right- or left-padded: the rows each
    step uses nest, which the generated code runs on those rows only), or rows each drawn as
    random (holes), leading masked steps, fully masked or fully used."""
    layout = draw(st.sampled_from(("right-padded", "left-padded", "rows")))
    if layout != "rows":
        lengths = np.array(draw(st.lists(st.integers(0, n_time), min_size=n_batch, max_size=n_batch)))
        steps = np.arange(n_time)[None, :]
        if layout == "right-padded":
            return steps < lengths[:, None]
        return steps >= n_time - lengths[:, None]
    rows = []
    for _ in range(n_batch):
        kind = draw(st.sampled_from(("random", "leading", "none", "all")))
        if kind == "random":
            row = draw(st.lists(st.booleans(), min_size=n_time, max_size=n_time))
        elif kind == "leading":
            lead = draw(st.integers(1, n_time))
            row = [False] * lead + draw(st.lists(st.booleans(), min_size=n_time - lead,
                                                 max_size=n_time - lead))
        else:
            row = [kind == "all"] * n_time
        rows.append(row)
    return np.array(rows, dtype=bool).reshape(n_batch, n_time)


seeds = st.integers(0, 2**32 - 1)


@given(data=st.data(), seed=seeds, dtype=st.sampled_from(DTYPES),
       activation=st.sampled_from(NAMES), recurrent_activation=st.sampled_from(NAMES),
       units=st.integers(1, 4), input_dim=st.integers(1, 4),
       n_batch=st.integers(1, 4), n_time=st.integers(1, 5),
       go_backwards=st.booleans(), return_sequences=st.booleans(), return_state=st.booleans(),
       time_major=st.booleans(), zero_output_for_mask=st.booleans(), use_bias=st.booleans(),
       masked=st.booleans(), with_initial_state=st.booleans())
def test_layer_matches_reference(data, seed, dtype, activation, recurrent_activation, units,
                                 input_dim, n_batch, n_time, go_backwards, return_sequences,
                                 return_state, time_major, zero_output_for_mask, use_bias, masked,
                                 with_initial_state):
    rng = np.random.default_rng(seed)
    weights = random_weights(rng, input_dim, units, dtype, use_bias,
                             weight_scale(activation, recurrent_activation))
    layer = make_layer(weights, units, dtype=dtype, activation=activation,
                       recurrent_activation=recurrent_activation, use_bias=use_bias,
                       go_backwards=go_backwards, return_sequences=return_sequences,
                       return_state=return_state, time_major=time_major,
                       zero_output_for_mask=zero_output_for_mask)
    shape = (n_time, n_batch, input_dim) if time_major else (n_batch, n_time, input_dim)
    x = rng.normal(size=shape).astype(dtype)
    mask = data.draw(masks(n_batch, n_time), label="mask") if masked else None
    initial_state = ([rng.normal(size=(n_batch, units)).astype(dtype) for _ in range(2)]
                     if with_initial_state else None)

    with np.errstate(over="ignore", invalid="ignore"):  # exploding draws are dropped below
        expected = run_reference(layer, weights, x, mask=mask, initial_state=initial_state)
    assume(well_conditioned(expected))
    assert_matches(layer(x, mask=mask, initial_state=initial_state), expected, dtype)


@pytest.mark.parametrize("index", range(len(NAMES)),
                         ids=[f"{a}-{b}" for a, b in zip(NAMES, NAMES[1:] + NAMES[:1])])
def test_every_activation_float64(index):
    """Each registry activation once as activation and once as recurrent_activation (next one)."""
    activation, recurrent_activation = NAMES[index], NAMES[(index + 1) % len(NAMES)]
    rng = np.random.default_rng(1000 + index)
    n_batch, n_time = MASK.shape
    weights = random_weights(rng, 3, 2, "float64", scale=weight_scale(activation, recurrent_activation))
    layer = make_layer(weights, 2, dtype="float64", activation=activation,
                       recurrent_activation=recurrent_activation, return_sequences=True,
                       return_state=True)
    # Inputs spread wide enough to reach the clipping and shrinking branches of the activations.
    x = rng.normal(0.0, 2.0, size=(n_batch, n_time, 3))
    initial_state = [rng.normal(size=(n_batch, 2)) for _ in range(2)]
    expected = run_reference(layer, weights, x, mask=MASK, initial_state=initial_state)
    assert well_conditioned(expected)
    assert_matches(layer(x, mask=MASK, initial_state=initial_state), expected, "float64")


@given(data=st.data(), seed=seeds, n_batch=st.integers(1, 4), go_backwards=st.booleans(),
       return_sequences=st.booleans(), masked=st.booleans(), with_initial_state=st.booleans())
def test_unroll_matches_reference(data, seed, n_batch, go_backwards, return_sequences, masked,
                                  with_initial_state):
    n_time, units, input_dim = 4, 3, 2
    rng = np.random.default_rng(seed)
    weights = random_weights(rng, input_dim, units, "float64")
    layer = make_layer(weights, units, dtype="float64", unroll=True, go_backwards=go_backwards,
                       return_sequences=return_sequences, return_state=True)
    x = rng.normal(size=(n_batch, n_time, input_dim))
    mask = data.draw(masks(n_batch, n_time), label="mask") if masked else None
    initial_state = ([rng.normal(size=(n_batch, units)) for _ in range(2)]
                     if with_initial_state else None)
    expected = run_reference(layer, weights, x, mask=mask, initial_state=initial_state)
    assert_matches(layer(x, mask=mask, initial_state=initial_state), expected, "float64")


rates = st.one_of(st.just(0.0), st.floats(0.05, 0.8))


@given(data=st.data(), seed=seeds, mask_seed=seeds, dropout=rates, recurrent_dropout=rates,
       implementation=st.sampled_from((1, 2)), n_batch=st.integers(1, 4),
       n_time=st.integers(1, 5), masked=st.booleans())
def test_training_dropout_matches_reference(data, seed, mask_seed, dropout, recurrent_dropout,
                                            implementation, n_batch, n_time, masked):
    """After a training call the mask getters return the masks it used (tests/test_dropout_masks.py);
    the reference run with them must agree, call after call. float64 only: training variants
    compile slowly, and test_inference_ignores_dropout runs float32 training."""
    units, input_dim, dtype = 3, 2, "float64"
    rng = np.random.default_rng(seed)
    weights = random_weights(rng, input_dim, units, dtype)
    layer = make_layer(weights, units, dtype=dtype, dropout=dropout, seed=mask_seed,
                       recurrent_dropout=recurrent_dropout, implementation=implementation,
                       return_sequences=True, return_state=True)
    x = rng.normal(size=(n_batch, n_time, input_dim)).astype(dtype)
    mask = data.draw(masks(n_batch, n_time), label="mask") if masked else None

    for _ in range(2):
        got = layer(x, mask=mask, training=True)
        expected = run_reference(layer, weights, x, mask=mask, **used_masks(layer, x[:, 0]))
        assert_matches(got, expected, dtype)


def used_masks(layer, step):
    """The masks of the layer's last training call, read back through its getters."""
    count, h = layer.spec.dropout_mask_count, np.empty((step.shape[0], layer.units))
    return {"input_masks": layer.get_dropout_mask_for_cell(step, True, count),
            "recurrent_masks": layer.get_recurrent_dropout_mask_for_cell(h, True, count)}


@pytest.mark.parametrize("masked, time_major", [(False, False), (True, True)])
def test_inference_ignores_dropout(masked, time_major):
    """training=False runs without masks and draws none: after it, a training call uses the
    same masks as a twin layer (same seed) that made no inference call, and really drops
    something. float32, and time-major (the masks stay [K, N, C] and [K, N, H])."""
    rng = np.random.default_rng(4)
    weights = random_weights(rng, 2, 3, "float32")
    layer, twin = (make_layer(weights, 3, dropout=0.5, recurrent_dropout=0.5, seed=9,
                              return_sequences=True, time_major=time_major) for _ in range(2))
    x = rng.normal(size=(5, 4, 2) if time_major else (4, 5, 2)).astype(np.float32)
    mask = MASK if masked else None
    plain = run_reference(layer, weights, x, mask=mask)
    assert_matches(layer(x, mask=mask), plain, "float32")
    assert_matches(layer(x, mask=mask, training=False), plain, "float32")
    trained = layer(x, mask=mask, training=True)
    twin(x, mask=mask, training=True)
    step = x[0] if time_major else x[:, 0]
    used = used_masks(layer, step)
    for name, masks in used_masks(twin, step).items():
        np.testing.assert_array_equal(used[name], masks)
    assert_matches(trained, run_reference(layer, weights, x, mask=mask, **used), "float32")
    assert not np.allclose(trained, plain)


def nested_order(mask):
    """(nested, order, active) from the generated _nested_order."""
    module = VARIANTS.get(VariantKey.from_spec(LSTMSpec(2, input_dim=1), "cpu", "numpy"))
    order, active = np.empty(mask.shape[0], np.intp), np.empty(mask.shape[1], np.intp)
    counts = np.full(mask.shape[0] + mask.shape[1] + 1, 99, np.intp)  # scratch: set before use
    return module._nested_order(mask, order, active, counts), order, active


@given(lengths=st.lists(st.integers(0, 6), min_size=1, max_size=6), left=st.booleans(),
       hole=st.integers(-1, 5))
def test_nested_order_finds_each_steps_rows(lengths, left, hole):
    """Padded masks (right or left, with or without a step no row uses) nest: _nested_order
    orders the rows by used steps, and each step's rows are its count of first rows."""
    n_time, lengths = 6, np.array(lengths)
    steps = np.arange(n_time)[None, :]
    mask = steps >= n_time - lengths[:, None] if left else steps < lengths[:, None]
    if hole >= 0:
        mask[:, hole] = False
    nested, order, active = nested_order(mask)
    assert nested
    assert sorted(order) == list(range(len(lengths)))
    assert (np.diff(mask.sum(axis=1)[order]) <= 0).all()
    np.testing.assert_array_equal(active, mask.sum(axis=0))
    for t in range(n_time):
        assert mask[order[:active[t]], t].all()


@pytest.mark.parametrize("blas_name", BLAS_CHOICES)
# Right-padded lengths of 6 rows of 20 steps (one row uses none): 40 steps of 120, or 99.
@pytest.mark.parametrize("lengths", [(0, 1, 9, 10, 10, 10), (0, 19, 20, 20, 20, 20)])
def test_masked_projection_fills_every_row_a_step_reads(blas_name, lengths):
    """_project_used leaves out the steps before a row's first used one and after its last (row
    by row when that skips over a fifth of the steps, else nothing): every zx row that a used
    step reads, a row's holes included, equals the whole projection's (to rounding)."""
    skip_without(blas_name)
    # C > H: projected by BLAS, not in the blocked product (lower.cpu.blocked_projection)
    units, input_dim, n_batch, n_time = 4, 5, 6, 20
    spec = LSTMSpec(units, input_dim=input_dim, return_sequences=True)
    module = VARIANTS.get(VariantKey.from_spec(spec, "cpu", blas_name))
    rng = np.random.default_rng(sum(lengths))
    x = rng.normal(size=(n_batch, n_time, input_dim)).astype(np.float32)
    kernel = rng.normal(size=(input_dim, 4 * units)).astype(np.float32)
    bias = rng.normal(size=4 * units).astype(np.float32)
    lengths = np.array(lengths)
    mask = np.arange(n_time)[None, :] < lengths[:, None]
    mask[3, 4] = False  # a hole
    whole, part = (np.full((n_batch * n_time, 4 * units), np.nan, np.float32) for _ in range(2))
    module._project(x, kernel, bias, whole)
    bounds = np.full(2 * n_batch, -7, np.intp)  # scratch: set before use
    module._project_used(x, x.reshape(n_batch * n_time, input_dim), kernel, bias, mask, part, bounds)
    by_row = lengths.sum() < module.USED_STEPS_TO_PROJECT_BY_ROW * n_batch * n_time
    assert by_row == (lengths.sum() == 40)
    for n, length in enumerate(lengths):
        rows = slice(n * n_time, (n + 1) * n_time)
        projected = length if by_row else n_time
        # Within float32 rounding: MKL 2026.2 multiplies one row in another order than many.
        np.testing.assert_allclose(part[rows][:projected], whole[rows][:projected], rtol=1e-6,
                                   atol=1e-6)
        assert np.isnan(part[rows][projected:]).all()


@pytest.mark.parametrize("rows", [[[1, 1, 0], [0, 1, 1]], [[1, 0, 1, 0], [0, 1, 0, 1]],
                                  [[1, 1, 1, 1], [1, 1, 0, 0], [0, 1, 1, 0]]])
def test_nested_order_rejects_crossing_rows(rows):
    """Two rows that each use a step the other skips do not nest: the code then takes every row
    into each step's product (order 0..N-1, all active) and masks row by row."""
    mask = np.array(rows, dtype=bool)
    nested, order, active = nested_order(mask)
    assert not nested
    np.testing.assert_array_equal(order, np.arange(mask.shape[0]))
    np.testing.assert_array_equal(active, np.full(mask.shape[1], mask.shape[0]))


STATEFUL_UNITS, STATEFUL_INPUT_DIM = 3, 2


@given(data=st.data(), seed=seeds, dtype=st.sampled_from(DTYPES), n_batch=st.integers(1, 3),
       n_time=st.integers(2, 7), masked=st.booleans(), zero_output_for_mask=st.booleans())
def test_stateful_calls_equal_one_call(data, seed, dtype, n_batch, n_time, masked,
                                       zero_output_for_mask):
    """Chunked calls of a stateful layer carry h and c over: they equal the reference chained by
    passing states, and one call on the whole sequence. Each call's outputs start from zeros
    (Keras too), so outputs match the single call where masked steps output zeros."""
    units, input_dim = STATEFUL_UNITS, STATEFUL_INPUT_DIM
    rng = np.random.default_rng(seed)
    weights = random_weights(rng, input_dim, units, dtype)
    kwargs = dict(dtype=dtype, return_sequences=True, return_state=True,
                  zero_output_for_mask=zero_output_for_mask)
    layer = make_layer(weights, units, stateful=True, **kwargs)
    x = rng.normal(size=(n_batch, n_time, input_dim)).astype(dtype)
    mask = data.draw(masks(n_batch, n_time), label="mask") if masked else None
    cuts = data.draw(st.lists(st.integers(1, n_time - 1), unique=True, max_size=3), label="cuts")
    bounds = [0] + sorted(cuts) + [n_time]

    outputs, state = [], None
    for start, stop in zip(bounds, bounds[1:]):
        chunk_mask = None if mask is None else mask[:, start:stop]
        output, h, c = layer(x[:, start:stop], mask=chunk_mask)
        expected = run_reference(layer, weights, x[:, start:stop], mask=chunk_mask,
                                 initial_state=state)
        assert_matches([output, h, c], expected, dtype)
        assert_matches(layer.states, [h, c], dtype)
        outputs.append(output)
        state = [h, c]

    whole = make_layer(weights, units, **kwargs)(x, mask=mask)
    assert_matches(state, whole[1:], dtype)
    if mask is None or zero_output_for_mask:
        assert_matches(np.concatenate(outputs, axis=1), whole[0], dtype)


def stateful_layer(dtype="float64", n_batch=2, seed=7):
    rng = np.random.default_rng(seed)
    weights = random_weights(rng, STATEFUL_INPUT_DIM, STATEFUL_UNITS, dtype)
    layer = make_layer(weights, STATEFUL_UNITS, dtype=dtype, stateful=True,
                       return_sequences=True, return_state=True)
    x = rng.normal(size=(n_batch, 4, STATEFUL_INPUT_DIM)).astype(dtype)
    return layer, weights, x


def test_reset_states_zeros_and_sets():
    layer, weights, x = stateful_layer()
    assert layer.states == [None, None]
    first = layer(x)
    second = layer(x)
    assert not np.allclose(first[0], second[0])  # the state carried over
    layer.reset_states()
    for state in layer.states:
        np.testing.assert_array_equal(state, np.zeros((2, STATEFUL_UNITS)))
    assert_matches(layer(x), first, "float64")

    rng = np.random.default_rng(3)
    h, c = (rng.normal(size=(2, STATEFUL_UNITS)) for _ in range(2))
    layer.reset_states([h, c])
    assert_matches(layer.states, [h, c], "float64")
    assert_matches(layer(x), run_reference(layer, weights, x, initial_state=[h, c]), "float64")
    # An explicit initial_state overrides the kept state for that call only, and is then kept.
    result = layer(x, initial_state=[h, c])
    assert_matches(result, run_reference(layer, weights, x, initial_state=[h, c]), "float64")
    assert_matches(layer.states, result[1:], "float64")


def test_reset_states_errors():
    with pytest.raises(AttributeError, match="must be stateful"):
        lstmgen.LSTM(3, name="plain").reset_states()
    with pytest.raises(ValueError, match="batch size"):
        lstmgen.LSTM(3, stateful=True).reset_states()

    layer, _, x = stateful_layer("float32")
    layer(x)
    h = np.zeros((2, STATEFUL_UNITS), np.float32)
    with pytest.raises(ValueError, match=r"expects 2 states.*received 1"):
        layer.reset_states([h])
    with pytest.raises(ValueError, match=r"expects 2 states.*received 3"):
        layer.reset_states([h, h, h])
    with pytest.raises(ValueError, match=r"State 1 .*expected shape=\(2, 3\) but found shape=\(3, 3\)"):
        layer.reset_states([h, np.zeros((3, STATEFUL_UNITS), np.float32)])
    with pytest.raises(ValueError, match=r"State 0 .*expected dtype=float32 but found dtype=float64"):
        layer.reset_states([h.astype(np.float64), h])
    with pytest.raises(ValueError, match=r"batch size 3.*batch size 2"):
        layer(np.ones((3, 4, STATEFUL_INPUT_DIM), np.float32))
    # Failed resets and calls leave the state alone.
    layer.reset_states([h + 1, h + 2])
    with pytest.raises(ValueError):
        layer.reset_states([h, h[:1]])
    np.testing.assert_array_equal(layer.states[0], h + 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("masked", [False, True])
def test_nan_and_inf_propagate(dtype, masked):
    rng = np.random.default_rng(11)
    weights = random_weights(rng, STATEFUL_INPUT_DIM, STATEFUL_UNITS, dtype)
    layer = make_layer(weights, STATEFUL_UNITS, dtype=dtype, return_sequences=True,
                       return_state=True)
    x = rng.normal(size=(4, 5, STATEFUL_INPUT_DIM)).astype(dtype)
    x[0, 1, 0] = np.nan
    x[1, 2, 1] = np.inf
    x[2, 0, 0] = -np.inf
    mask = MASK.copy() if masked else None
    if masked:
        mask[0] = [True, True, False, True, True]
    with np.errstate(all="ignore"):
        expected = run_reference(layer, weights, x, mask=mask)
        result = layer(x, mask=mask)
    for a, e in zip(result, expected):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(e))
        np.testing.assert_array_equal(np.isposinf(a), np.isposinf(e))
        np.testing.assert_array_equal(np.isneginf(a), np.isneginf(e))
    assert_matches(result, expected, dtype)
    # The NaN of row 0 at step 1 reaches every later output and the final state.
    assert np.isnan(result[0][0, 1:]).all() and np.isnan(result[1][0]).all()
    assert np.isfinite(result[0][0, 0]).all()
    assert np.isfinite(result[0][3]).all()


@pytest.mark.parametrize("dtype, wide", [("float32", True), ("float64", False)])
def test_float32_gate_loops_ask_for_512_bit_vectors(dtype, wide):
    """float32 gate loops are vectorized for 512-bit registers (_wide_vectors: LLVM would pick
    256 bits on CPUs with AVX-512); float64's are left at LLVM's choice, measured faster there."""
    spec = LSTMSpec(16, input_dim=3, dtype=dtype)
    step = VARIANTS.get(VariantKey.from_spec(spec, "cpu", "numpy")).step
    rng = np.random.default_rng(11)
    weights = random_weights(rng, 3, 16, dtype)
    h, c = rng.normal(size=(2, 4, 16)).astype(dtype)
    step(rng.normal(size=(4, 3)).astype(dtype), h, c, *weights)
    signature = step.signatures[0]
    assert ('"prefer-vector-width"="512"' in step.inspect_llvm(signature)) == wide
    if wide and "+avx512f" in llvmlite.binding.get_host_cpu_features().flatten():
        assert "%zmm" in step.inspect_asm(signature)


@pytest.mark.parametrize("blas", BLAS_CHOICES)
def test_generated_functions_callable_from_user_njit(blas):
    skip_without(blas)
    units, input_dim, n_batch, n_time = 3, 2, 3, 5
    spec = LSTMSpec(units, input_dim=input_dim, dtype="float64", return_sequences=True)
    module = VARIANTS.get(VariantKey.from_spec(spec, "cpu", blas))
    step, step_masked, forward = module.step, module.step_masked, module.forward

    @numba.njit
    def run_steps(xs, kernel, recurrent_kernel, bias, h0, c0, mask):
        """Time-major xs [T, N, C]; mask [T, N]."""
        h, c = h0.copy(), c0.copy()
        out = np.empty((xs.shape[1], xs.shape[0], h.shape[1]))
        for t in range(xs.shape[0]):
            step_masked(xs[t], h, c, kernel, recurrent_kernel, bias, mask[t])
            out[:, t, :] = h
        h_plain, c_plain = h0.copy(), c0.copy()
        for t in range(xs.shape[0]):
            step(xs[t], h_plain, c_plain, kernel, recurrent_kernel, bias)
        return out, h, c, h_plain, c_plain

    @numba.njit
    def run_forward(x, kernel, recurrent_kernel, bias, h0, c0):
        return forward(x, kernel, recurrent_kernel, bias, h0, c0)

    rng = np.random.default_rng(5)
    kernel, recurrent_kernel, bias = random_weights(rng, input_dim, units, "float64")
    x = rng.normal(size=(n_batch, n_time, input_dim))
    h0, c0 = (rng.normal(size=(n_batch, units)) for _ in range(2))
    mask = MASK[:n_batch]
    spec_state = spec.replace(return_state=True)

    out, h, c, h_plain, c_plain = run_steps(np.ascontiguousarray(x.transpose(1, 0, 2)), kernel,
                                            recurrent_kernel, bias, h0, c0,
                                            np.ascontiguousarray(mask.T))
    expected = reference.forward(spec_state, kernel, recurrent_kernel, bias, x, mask=mask,
                                 initial_state=[h0, c0])
    assert_matches([h, c], expected[1:], "float64")
    # step_masked leaves masked rows' h alone (the reference outputs zeros or the previous output).
    for n in range(n_batch):
        np.testing.assert_allclose(out[n, mask[n]], expected[0][n, mask[n]], rtol=1e-12, atol=1e-12)
    expected_plain = reference.forward(spec_state, kernel, recurrent_kernel, bias, x,
                                       initial_state=[h0, c0])
    assert_matches([h_plain, c_plain], expected_plain[1:], "float64")
    assert_matches(list(run_forward(x, kernel, recurrent_kernel, bias, h0, c0)), expected_plain,
                   "float64")


def test_second_layer_with_same_spec_hits_memory_cache():
    # float64: no native library on NumPy's BLAS (np.dot), so each layer asks for the module
    rng = np.random.default_rng(2)
    weights = random_weights(rng, 2, 3, "float64")
    x = rng.normal(size=(2, 3, 2))
    first = make_layer(weights, 3, name="first", return_sequences=True, dtype="float64")
    expected = first(x)
    before = Counter(VARIANTS.stats)
    second = make_layer(weights, 3, name="second", return_sequences=True, dtype="float64")
    assert_matches(second(x), expected, "float64")
    assert VARIANTS.stats["memory"] == before["memory"] + 1
    assert VARIANTS.stats["rendered"] == before["rendered"]
    assert VARIANTS.stats["module"] == before["module"]


CROSS_PROCESS_SCRIPT = """
import json
import numpy as np
import lstmgen
from lstmgen import blas
from lstmgen.cache import VARIANTS
from lstmgen.lower.plan import VariantKey

rng = np.random.default_rng(0)
layer = lstmgen.LSTM(3, dtype="float64", return_sequences=True)
layer.set_weights([rng.normal(0.0, 0.5, s) for s in [(2, 12), (3, 12), (12,)]])
y = layer(rng.normal(size=(2, 4, 2)))
stats = dict(VARIANTS.stats)
fn = VARIANTS.get(VariantKey.from_spec(layer.spec, layer.target, blas.choice(), blas.blocked_any_size())).forward_into
print(json.dumps({"rendered": stats.get("rendered", 0), "module": stats.get("module", 0),
                  "cache_hits": sum(fn.stats.cache_hits.values()),
                  "cache_misses": sum(fn.stats.cache_misses.values()), "y": y.tolist()}))
"""


def test_disk_caches_work_across_processes(tmp_path):
    env = dict(os.environ, LSTMGEN_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))

    def run():
        done = subprocess.run([sys.executable, "-c", CROSS_PROCESS_SCRIPT], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    first, second = run(), run()
    assert (first["rendered"], first["module"]) == (1, 0)
    assert (first["cache_hits"], first["cache_misses"]) == (0, 1)
    assert (second["rendered"], second["module"]) == (0, 1)
    assert (second["cache_hits"], second["cache_misses"]) == (1, 0)
    assert second["y"] == first["y"]
