"""lstmgen.reference against a real Keras 3 LSTM (torch backend, CPU).

Keras behaviour these tests pin down, some of it surprising (Keras 3.15.1, torch backend):

- A masked step holds h and c and outputs the previous step's output; before the first unmasked
  step that is zeros, whatever the initial state. A fully masked row outputs zeros and returns
  its initial h and c.
- zero_output_for_mask=True with return_sequences=False: a sample whose last *processed* step is
  masked returns zeros, not its last valid output, while the returned h is still the last valid h.
- go_backwards reverses x and the mask together and returns the sequence in processing order
  (never flipped back); with return_sequences=False the output is that of input step 0.
- get_config() drops `implementation` and `use_cudnn`: a layer rebuilt from its config runs
  implementation 2, so these tests read the implementation from `layer.cell`.
- recurrent_dropout > 0 silently switches the cell to implementation 1.
- Dropout masks are drawn once per call, before the loop, and shared by every time step (the
  cell caches them and the layer clears the cache after the call). Implementation 2 draws one
  input mask [N, C]; implementation 1 draws four input masks and four recurrent masks [N, H],
  mask k for gate k (i, f, c, o). Values are 0 or 1 / (1 - rate).
- implementation=1 with dropout > 0 and recurrent_dropout == 0 crashes in training under the
  default use_cudnn="auto" (LSTM.inner_loop broadcasts the list of four masks as if it were one
  tensor); use_cudnn=False avoids it.
- unroll=True with a mask and go_backwards=True crashes (torch.flip applied to a tuple in
  backend/torch/rnn.py), so unroll is checked with masks only going forwards.
- unit_forget_bias=True: the docstring says it forces bias_initializer="zeros", but only the
  forget slice is set to exactly 1.0; the i, c and o slices still come from bias_initializer.
- Without a mask the torch backend runs its own LSTM loop (input projections of all steps
  precomputed); with a mask it runs the generic RNN loop. Both agree with the reference.
- dtype="float64" is not float64 throughout on the torch backend: Keras's type promotion maps
  float64 to float32 off TensorFlow, so ops.matmul, which LSTMCell uses (the path taken with a
  mask, unroll or dropout), rounds to float32; only the torch LSTM loop taken without a mask uses
  torch.matmul in float64. The fixture exact_float64_matmul restores float64 so that float64
  layers can be checked to 1e-12.
- keras.activations "softplus" on torch returns x itself for x > 20 (torch's threshold), so it
  differs from the exact softplus by up to exp(-20) ~ 2e-9.
"""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
ops = keras.ops

from keras_float64 import (  # noqa: E402,F401  (autouse fixture, and the test of its reason)
    exact_float64_matmul, test_keras_matmul_rounds_float64_to_float32)
import lstmgen  # noqa: E402
from lstmgen import reference  # noqa: E402
from lstmgen.activations import ACTIVATIONS  # noqa: E402
from lstmgen.spec import LSTMSpec  # noqa: E402

N, T, C, H = 4, 5, 3, 2
# Rows: a hole and a masked last step; leading masked steps (a masked last step going
# backwards); fully masked; right-padded.
MASK = np.array([[1, 0, 1, 1, 0],
                 [0, 0, 1, 1, 1],
                 [0, 0, 0, 0, 0],
                 [1, 1, 1, 0, 0]], dtype=bool)
DTYPES = ("float32", "float64")
KERAS_ACTIVATIONS = sorted(name for name, a in ACTIVATIONS.items()
                           if a.keras and name != "keras2_hard_sigmoid")


def build(rng, dtype="float32", **kwargs):
    """An LSTM with random non-zero weights (biases included) in `dtype`."""
    layer = keras.layers.LSTM(H, dtype=dtype, **kwargs)
    layer.build((N, T, C))
    layer.set_weights([rng.uniform(-0.8, 0.8, w.shape).astype(dtype)
                       for w in layer.get_weights()])
    return layer


def spec_of(layer, **changes):
    # get_config() does not record the implementation; the cell knows it.
    config = {**layer.get_config(), **changes}
    return LSTMSpec.from_keras_config(config).replace(implementation=layer.cell.implementation)


def run_reference(layer, x, spec=None, **kwargs):
    weights = layer.get_weights()
    bias = weights[2] if layer.use_bias else None
    return reference.forward(spec or spec_of(layer), weights[0], weights[1], bias, x, **kwargs)


def inputs(rng, dtype, scale=1.0):
    return (scale * rng.normal(size=(N, T, C))).astype(dtype)


def initial_state(rng, dtype):
    return [rng.normal(size=(N, H)).astype(dtype) for _ in range(2)]


def assert_matches(keras_result, want, dtype):
    got = keras_result if isinstance(keras_result, (list, tuple)) else [keras_result]
    want = want if isinstance(want, list) else [want]
    assert len(got) == len(want)
    tolerance = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=2e-5, atol=2e-6)
    for g, w in zip(got, want):
        assert w.dtype == np.float64
        np.testing.assert_allclose(ops.convert_to_numpy(g), w, **tolerance)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("role", ["activation", "recurrent_activation"])
@pytest.mark.parametrize("name", KERAS_ACTIVATIONS)
def test_activation(name, role, dtype):
    rng = np.random.default_rng(1)
    layer = build(rng, dtype, return_sequences=True, return_state=True, **{role: name})
    assert getattr(spec_of(layer), role) == name
    x = inputs(rng, dtype, scale=0.5)
    assert_matches(layer(x), run_reference(layer, x), dtype)


def test_keras2_hard_sigmoid():
    x = np.concatenate([np.linspace(-30.0, 30.0, 601), [-2.5, 2.5, -2.4, 2.4]])
    np.testing.assert_array_equal(ACTIVATIONS["keras2_hard_sigmoid"].numpy(x),
                                  np.clip(0.2 * x + 0.5, 0.0, 1.0))
    # The same formula given to Keras as a callable, end to end.
    rng = np.random.default_rng(2)
    layer = build(rng, "float64", return_sequences=True,
                  recurrent_activation=lambda z: ops.clip(0.2 * z + 0.5, 0.0, 1.0))
    spec = spec_of(layer, recurrent_activation="keras2_hard_sigmoid")
    x = inputs(rng, "float64", scale=2.0)
    assert_matches(layer(x), run_reference(layer, x, spec), "float64")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("masked", [False, True])
def test_no_bias(masked, dtype):
    rng = np.random.default_rng(3)
    layer = build(rng, dtype, use_bias=False, return_sequences=True, return_state=True)
    assert len(layer.get_weights()) == 2
    x = inputs(rng, dtype)
    mask = MASK if masked else None
    assert_matches(layer(x, mask=mask), run_reference(layer, x, mask=mask), dtype)


@pytest.mark.parametrize("initializer", ["zeros", "ones", "random_normal"])
def test_unit_forget_bias_sets_only_the_forget_slice(initializer):
    layer = keras.layers.LSTM(H, bias_initializer=initializer, unit_forget_bias=True)
    layer.build((N, T, C))
    bias = ops.convert_to_numpy(layer.cell.bias)
    np.testing.assert_array_equal(bias[H:2 * H], 1.0)
    others = np.concatenate([bias[:H], bias[2 * H:]])
    if initializer == "random_normal":
        assert np.all(others != 1.0) and np.all(others != 0.0)
    else:
        np.testing.assert_array_equal(others, 1.0 if initializer == "ones" else 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_initial_state", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_mask(go_backwards, zero_output_for_mask, return_sequences, with_initial_state, dtype):
    rng = np.random.default_rng(4)
    layer = build(rng, dtype, go_backwards=go_backwards, zero_output_for_mask=zero_output_for_mask,
                  return_sequences=return_sequences, return_state=True)
    x = inputs(rng, dtype)
    state = initial_state(rng, dtype) if with_initial_state else None
    got = layer(x, mask=MASK, initial_state=state)
    assert_matches(got, run_reference(layer, x, mask=MASK, initial_state=state), dtype)

    output, h, _ = (ops.convert_to_numpy(r) for r in got)
    # The fully masked row keeps its initial state and outputs zeros.
    np.testing.assert_array_equal(h[2], 0.0 if state is None else state[0][2])
    np.testing.assert_array_equal(output[2], 0.0)
    if zero_output_for_mask and not return_sequences:
        last_masked = ~MASK[:, 0 if go_backwards else -1]
        np.testing.assert_array_equal(output[last_masked], 0.0)
        assert np.all(h[last_masked & MASK.any(axis=1)] != 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_go_backwards(go_backwards, return_sequences, dtype):
    rng = np.random.default_rng(5)
    layer = build(rng, dtype, go_backwards=go_backwards, return_sequences=return_sequences)
    x = inputs(rng, dtype)
    assert_matches(layer(x), run_reference(layer, x), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_initial_state", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
def test_return_state_and_initial_state(return_state, with_initial_state, dtype):
    rng = np.random.default_rng(6)
    layer = build(rng, dtype, return_state=return_state)
    x = inputs(rng, dtype)
    state = initial_state(rng, dtype) if with_initial_state else None
    got = layer(x, initial_state=state)
    assert isinstance(got, (list, tuple)) == return_state
    assert_matches(got, run_reference(layer, x, initial_state=state), dtype)


@pytest.mark.parametrize("zero_output_for_mask", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("mask, go_backwards", [(None, False), (None, True), (MASK, False)])
def test_unroll(mask, go_backwards, return_sequences, zero_output_for_mask):
    rng = np.random.default_rng(7)
    layer = build(rng, "float64", unroll=True, go_backwards=go_backwards,
                  return_sequences=return_sequences, zero_output_for_mask=zero_output_for_mask,
                  return_state=True)
    x = inputs(rng, "float64")
    state = initial_state(rng, "float64")
    got = layer(x, mask=mask, initial_state=state)
    assert_matches(got, run_reference(layer, x, mask=mask, initial_state=state), "float64")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("implementation", [1, 2])
def test_implementation(implementation, masked, dtype):
    rng = np.random.default_rng(8)
    layer = build(rng, dtype, implementation=implementation, return_sequences=True,
                  return_state=True)
    assert layer.cell.implementation == implementation
    x = inputs(rng, dtype)
    mask = MASK if masked else None
    assert_matches(layer(x, mask=mask), run_reference(layer, x, mask=mask), dtype)


@pytest.mark.parametrize("return_sequences", [False, True])
def test_time_major(return_sequences):
    # Keras 3 has no time_major; the reference must equal Keras on transposed data.
    rng = np.random.default_rng(9)
    layer = build(rng, "float64", return_sequences=return_sequences, return_state=True)
    x = inputs(rng, "float64")
    spec = spec_of(layer).replace(time_major=True)
    want = run_reference(layer, x.transpose(1, 0, 2), spec, mask=MASK)
    if return_sequences:
        want[0] = want[0].transpose(1, 0, 2)
    assert_matches(layer(x, mask=MASK), want, "float64")


def test_stateful_carries_state_between_calls():
    rng = np.random.default_rng(10)
    layer = build(rng, "float64", stateful=True, return_sequences=True)
    spec = spec_of(layer).replace(return_state=True)
    state = None
    for _ in range(2):
        x = inputs(rng, "float64")
        output, *state = run_reference(layer, x, spec, mask=MASK, initial_state=state)
        assert_matches(layer(x, mask=MASK), output, "float64")


def record_dropout_masks(cell):
    """Keras draws its masks from torch's RNG, so wrap the cell's getters to see them."""
    seen = {"get_dropout_mask": [], "get_recurrent_dropout_mask": []}
    for name, calls in seen.items():
        def record(step_input, original=getattr(cell, name), calls=calls):
            mask = original(step_input)
            calls.append(mask)
            return mask
        setattr(cell, name, record)
    return seen


def used_mask(calls, shape, rate):
    """The one mask Keras used in a call, as [K, N, features]; None when it drew none."""
    drawn = [m for m in calls if m is not None]
    if not drawn:
        return None
    assert all(m is drawn[0] for m in drawn), "one mask per call, shared by every step"
    mask = drawn[0]
    mask = (np.stack([ops.convert_to_numpy(m) for m in mask]) if isinstance(mask, list)
            else ops.convert_to_numpy(mask)[None])
    assert mask.shape == shape
    scaled = np.float64(np.asarray(1.0 / (1.0 - rate), dtype=mask.dtype))
    assert set(np.unique(mask)) <= {0.0, scaled}
    return mask


DROPOUT_CASES = [
    dict(dropout=0.4),
    dict(dropout=0.4, implementation=1, use_cudnn=False),
    dict(recurrent_dropout=0.3),
    dict(dropout=0.4, recurrent_dropout=0.3),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("kwargs", DROPOUT_CASES, ids=lambda kw: "-".join(map(str, kw.values())))
def test_dropout_in_training(kwargs, masked, dtype):
    rng = np.random.default_rng(11)
    layer = build(rng, dtype, return_sequences=True, return_state=True,
                  go_backwards=masked, **kwargs)
    spec = spec_of(layer)
    count = 4 if "recurrent_dropout" in kwargs or "implementation" in kwargs else 1
    assert spec.dropout_mask_count == count
    seen = record_dropout_masks(layer.cell)
    x = inputs(rng, dtype)
    mask = MASK if masked else None
    state = initial_state(rng, dtype)
    got = layer(x, mask=mask, initial_state=state, training=True)

    input_masks = used_mask(seen["get_dropout_mask"], (count, N, C), spec.dropout)
    recurrent_masks = used_mask(seen["get_recurrent_dropout_mask"], (count, N, H),
                                spec.recurrent_dropout)
    assert (input_masks is None) == (spec.dropout == 0)
    assert (recurrent_masks is None) == (spec.recurrent_dropout == 0)
    want = run_reference(layer, x, mask=mask, initial_state=state,
                         input_masks=input_masks, recurrent_masks=recurrent_masks)
    assert_matches(got, want, dtype)

    # The masks lstmgen's layer asks its getters for (count = spec.dropout_mask_count) are of
    # the same kind as Keras's: one array, or a list of four, of the same shapes.
    ours = lstmgen.LSTM(**spec.to_dict())
    got_masks = (ours.get_dropout_mask_for_cell(x[:, 0], True, count),
                 ours.get_recurrent_dropout_mask_for_cell(state[0], True, count))
    for keras_mask, our_mask in zip((input_masks, recurrent_masks), got_masks):
        assert (our_mask is None) == (keras_mask is None)
        if our_mask is not None:
            assert isinstance(our_mask, list) == (count > 1)
            assert np.shape(our_mask) == (keras_mask.shape if count > 1 else keras_mask.shape[1:])

    # The next call draws fresh masks.
    first = [calls[-1] for calls in seen.values()]
    layer(x, mask=mask, initial_state=state, training=True)
    for old, calls in zip(first, seen.values()):
        assert old is None or calls[-1] is not old


def test_training_false_ignores_dropout():
    rng = np.random.default_rng(12)
    layer = build(rng, "float64", dropout=0.4, recurrent_dropout=0.3, return_sequences=True)
    x = inputs(rng, "float64")
    want = run_reference(layer, x, mask=MASK)
    assert_matches(layer(x, mask=MASK, training=False), want, "float64")
    assert_matches(layer(x, mask=MASK), want, "float64")


@pytest.mark.parametrize("name", KERAS_ACTIVATIONS)
def test_activations_match_keras(name):
    x = np.concatenate([np.linspace(-30.0, 30.0, 601),
                        [-6.0, -3.0, -1.0, -0.5, -1e-8, 0.0, 1e-8, 0.5, 1.0, 3.0, 6.0]])
    got = ops.convert_to_numpy(keras.activations.get(name)(ops.convert_to_tensor(x, "float64")))
    # torch's softplus returns x itself above 20 (see the module docstring).
    rtol = 1e-10 if name == "softplus" else 1e-12
    np.testing.assert_allclose(got, ACTIVATIONS[name].numpy(x), rtol=rtol, atol=1e-300)
