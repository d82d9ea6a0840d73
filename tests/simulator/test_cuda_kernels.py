"""Generated CUDA kernels and the layer's CUDA runtime in Numba's simulator, against the reference.

Every run takes both recurrence strategies: the per-step kernel, and the persistent kernel as one
block (the simulator runs a cooperative grid only as one block), which then takes every slice of
units in turn: with SLICE_UNITS < H that exercises the multi-block partition. The simulator runs
each thread as a Python thread, so shapes are tiny and hypothesis draws one example per case.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import cuda

import lstmgen
from cuda_helpers import assert_close, cuda_key
from lstmgen import reference
from lstmgen.cache import VARIANTS
from lstmgen.cuda_runtime import _device
from lstmgen.spec import LSTMSpec

# Rows: a hole and a masked last step; leading masked steps; fully masked; all used.
MASK = np.array([[1, 0, 1, 1],
                 [0, 0, 1, 1],
                 [0, 0, 0, 0],
                 [1, 1, 1, 1]], dtype=bool)
seeds = st.integers(0, 2**32 - 1)
one_example = settings(max_examples=1)

CASES = {
    "f32": dict(units=5, input_dim=3),
    "f64_backwards_sequences": dict(units=6, input_dim=2, dtype="float64", go_backwards=True,
                                    return_sequences=True),
    "f32_time_major_zero_output": dict(units=4, input_dim=3, time_major=True, return_sequences=True,
                                       zero_output_for_mask=True),
    "f64_no_bias_zero_output_last": dict(units=3, input_dim=2, dtype="float64", use_bias=False,
                                         zero_output_for_mask=True),
    "f64_activations": dict(units=4, input_dim=2, dtype="float64", activation="relu",
                            recurrent_activation="hard_sigmoid", return_sequences=True),
    "f32_activations_with_helpers": dict(units=4, input_dim=2, activation="softplus",
                                         recurrent_activation="hard_silu"),
    # SLICE_UNITS = 4 < H: three slices, the last one partial.
    "f32_three_slices": dict(units=9, input_dim=17, return_sequences=True),
}


def draw(rng, spec, n_batch, n_time, masked, scale=0.5):
    units, dtype = spec.units, spec.dtype
    weights = [rng.normal(0.0, scale, shape).astype(dtype) for shape in
               [(spec.input_dim, 4 * units), (units, 4 * units)] + ([(4 * units,)] if spec.use_bias else [])]
    shape = (n_time, n_batch, spec.input_dim) if spec.time_major else (n_batch, n_time, spec.input_dim)
    x = rng.normal(size=shape).astype(dtype)
    h0, c0 = (rng.normal(size=(n_batch, units)).astype(dtype) for _ in range(2))
    mask = MASK[:n_batch, :n_time] if masked else None
    return weights, x, h0, c0, mask


def run_module(module, name, strategy, args):
    output, h, c = getattr(module, name)(*args, persistent_blocks=1 if strategy == "persistent" else 0)
    return [output.copy_to_host(), h.copy_to_host(), c.copy_to_host()]


@pytest.mark.parametrize("strategy", ("persistent", "per_step"))
@pytest.mark.parametrize("case", sorted(CASES))
@one_example
@given(seed=seeds)
def test_masked_forward_matches_reference(case, strategy, seed):
    kwargs = dict(CASES[case])
    spec = LSTMSpec(kwargs.pop("units"), **kwargs)
    module = VARIANTS.get(cuda_key(spec.units, **kwargs))
    weights, x, h0, c0, mask = draw(np.random.default_rng(seed), spec, *MASK.shape, masked=True)
    actual = run_module(module, "forward_masked", strategy, [x, *weights, h0, c0, mask])
    expected = reference.forward(spec.replace(return_state=True), *weights[:2],
                                 weights[2] if spec.use_bias else None, x, mask=mask,
                                 initial_state=[h0, c0])
    for a, e in zip(actual, expected):
        assert_close(a, e, spec.dtype)


def dropout_masks(rng, spec, n_batch):
    """Inverted-dropout masks [K, N, C] and [K, N, H] (None where the rate is 0), K per the spec."""
    def draw(rate, width):
        keep = 1.0 - rate
        shape = (spec.dropout_mask_count, n_batch, width)
        return None if rate == 0 else np.where(rng.random(shape) < keep, 1.0 / keep, 0.0)

    return draw(spec.dropout, spec.input_dim), draw(spec.recurrent_dropout, spec.units)


@pytest.mark.parametrize("strategy", ("persistent", "per_step"))
@pytest.mark.parametrize("masked", (False, True))
@pytest.mark.parametrize("kwargs", [dict(dropout=0.3, recurrent_dropout=0.4, go_backwards=True),
                                    dict(dropout=0.5, implementation=1, time_major=True,
                                         return_sequences=True)], ids=["both", "per_gate_input"])
@one_example
@given(seed=seeds)
def test_training_dropout_matches_reference(kwargs, masked, strategy, seed):
    spec = LSTMSpec(5, input_dim=3, dtype="float64", **kwargs)
    module = VARIANTS.get(cuda_key(5, dtype="float64", input_dim=3, **kwargs))
    rng = np.random.default_rng(seed)
    weights, x, h0, c0, mask = draw(rng, spec, 3, 4, masked)
    input_masks, recurrent_masks = dropout_masks(rng, spec, 3)
    name = "forward_train_masked" if masked else "forward_train"
    args = [x, *weights, h0, c0] + ([mask] if masked else []) + [input_masks] + (
        [recurrent_masks] if recurrent_masks is not None else [])
    actual = run_module(module, name, strategy, args)
    expected = reference.forward(spec.replace(return_state=True), *weights, x, mask=mask,
                                 initial_state=[h0, c0], input_masks=input_masks,
                                 recurrent_masks=recurrent_masks)
    for a, e in zip(actual, expected):
        assert_close(a, e, "float64")


@one_example
@given(seed=seeds)
def test_per_step_kernel_across_blocks_of_rows(seed):
    """17 rows: two blocks of TILE rows per step."""
    spec = LSTMSpec(3, input_dim=2, dtype="float64", return_sequences=True)
    module = VARIANTS.get(cuda_key(3, input_dim=2, dtype="float64", return_sequences=True))
    weights, x, h0, c0, _ = draw(np.random.default_rng(seed), spec, 17, 2, masked=False)
    actual = run_module(module, "forward", "per_step", [x, *weights, h0, c0])
    expected = reference.forward(spec.replace(return_state=True), *weights, x, initial_state=[h0, c0])
    for a, e in zip(actual, expected):
        assert_close(a, e, "float64")


@one_example
@given(seed=seeds)
def test_step_device_function_from_a_user_kernel(seed):
    key = cuda_key(4, input_dim=3, dtype="float64")
    module = VARIANTS.get(key)
    step = module.step_masked

    @cuda.jit
    def one_step(x_t, h, h_out, c, kernel, recurrent_kernel, bias, mask_t):
        n, j = cuda.grid(2)
        if n < h.shape[0] and j < h.shape[1]:
            step(n, j, x_t, h, c, kernel, recurrent_kernel, bias, h_out, mask_t)

    spec = LSTMSpec(4, input_dim=3, dtype="float64", return_state=True)
    weights, x, h0, c0, mask = draw(np.random.default_rng(seed), spec, 4, 1, masked=True)
    h, h_out, c = _device(h0), cuda.device_array_like(h0), _device(c0.copy())
    one_step[(1, 1), (4, 4)](np.ascontiguousarray(x[:, 0]), h, h_out, c, *weights,
                             np.ascontiguousarray(mask[:, 0]))
    expected = reference.forward(spec, *weights, x, mask=mask, initial_state=[h0, c0])
    assert_close(h_out.copy_to_host(), expected[1], "float64")
    assert_close(c.copy_to_host(), expected[2], "float64")


@one_example
@given(seed=seeds)
def test_layer_keeps_device_arrays_and_states_on_the_device(seed):
    rng = np.random.default_rng(seed)
    layer = lstmgen.LSTM(3, dtype="float64", stateful=True, return_state=True, return_sequences=True)
    assert layer.target == "cuda" and "cuda: chosen" in layer.explain()
    x = rng.normal(size=(2, 3, 2))
    first = layer(x)  # host in, host out
    assert all(isinstance(r, np.ndarray) for r in first)
    x_device = cuda.to_device(rng.normal(size=(2, 3, 2)))
    assert _device(x_device) is x_device  # device inputs are used as they are
    second = layer(x_device, mask=cuda.to_device(np.ascontiguousarray(MASK[:2, :3])))
    assert all(hasattr(r, "copy_to_host") for r in second)  # device in, device out
    assert all(hasattr(s, "copy_to_host") for s in layer._states)  # states stay on the device
    assert layer._cuda.strategy.name == "persistent"
    spec = layer.spec.replace(stateful=False)
    expected = reference.forward(spec, *layer.get_weights(), x_device.copy_to_host(), mask=MASK[:2, :3],
                                 initial_state=[first[1], first[2]])
    for a, e in zip(second, expected):
        assert_close(a.copy_to_host(), e, "float64")
    for a, e in zip(layer.states, expected[1:]):
        assert isinstance(a, np.ndarray)
        assert_close(a, e, "float64")
    with pytest.raises(ValueError, match="device arrays are not cast"):
        layer(cuda.to_device(rng.normal(size=(2, 3, 2)).astype(np.float32)))


@one_example
@given(seed=seeds)
def test_layer_takes_the_per_step_kernel_for_large_batches_and_device_initial_state(seed):
    rng = np.random.default_rng(seed)
    layer = lstmgen.LSTM(2, return_state=True)
    x = rng.normal(size=(9, 2, 2)).astype(np.float32)
    initial_state = [cuda.to_device(rng.normal(size=(9, 2)).astype(np.float32)) for _ in range(2)]
    output, h, c = layer(x, initial_state=initial_state)
    assert layer._cuda.strategy.name == "per_step" and isinstance(output, np.ndarray)
    expected = reference.forward(layer.spec, *layer.get_weights(), x,
                                 initial_state=[s.copy_to_host() for s in initial_state])
    for a, e in zip((output, h, c), expected):
        assert_close(a, e, "float32")


CELL_OPTIONS = dict(use_recurrent_bias=True, use_peepholes=True, clip=0.8, input_forget=True,
                    output_activation={"name": "leaky_relu", "alpha": 0.01},
                    recurrent_activation={"name": "keras2_hard_sigmoid", "alpha": 0.3, "beta": 0.45},
                    return_sequences=True, dropout=0.3, recurrent_dropout=0.4)


@pytest.mark.parametrize("strategy", ("persistent", "per_step"))
@pytest.mark.parametrize("training", (False, True))
@one_example
@given(seed=seeds)
def test_cell_options_match_reference(training, strategy, seed):
    """Two biases, peepholes, clip, input_forget and parametrized activations (not proj_size,
    which runs on cpu), through the masked entry points of both strategies."""
    spec = LSTMSpec(3, input_dim=2, dtype="float64", **CELL_OPTIONS)
    module = VARIANTS.get(cuda_key(3, input_dim=2, dtype="float64", **CELL_OPTIONS))
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0.0, 0.6, shape) for shape in spec.weight_shapes(2)]
    _, x, h0, c0, mask = draw(rng, spec, *MASK.shape, masked=True)
    input_masks, recurrent_masks = dropout_masks(rng, spec, MASK.shape[0]) if training else (None, None)
    name = "forward_train_masked" if training else "forward_masked"
    args = [x, *weights, h0, c0, mask] + ([input_masks, recurrent_masks] if training else [])
    actual = run_module(module, name, strategy, args)
    named = dict(zip(spec.weight_names, weights))
    expected = reference.forward(spec.replace(return_state=True), named.pop("kernel"),
                                 named.pop("recurrent_kernel"), named.pop("bias"), x, mask=mask,
                                 initial_state=[h0, c0], input_masks=input_masks,
                                 recurrent_masks=recurrent_masks, **named)
    for a, e in zip(actual, expected):
        assert_close(a, e, "float64")


@one_example
@given(seed=seeds)
def test_layer_runs_cell_options_on_cuda_and_proj_size_on_cpu(seed):
    rng = np.random.default_rng(seed)
    layer = lstmgen.LSTM(2, return_sequences=True, use_recurrent_bias=True, use_peepholes=True,
                         clip=1.5, output_activation="softsign")
    x = rng.normal(size=(9, 2, 2)).astype(np.float32)
    layer.build(x.shape)
    layer.set_weights([rng.normal(0.0, 0.6, w.shape) for w in layer.get_weights()])
    output = layer(x, mask=MASK[:1].repeat(9, axis=0)[:, :2])
    assert layer.target == "cuda" and layer._cuda.strategy.name == "per_step"
    kernel, recurrent_kernel, bias, recurrent_bias, peephole = layer.get_weights()
    expected = reference.forward(layer.spec, kernel, recurrent_kernel, bias, x,
                                 mask=MASK[:1].repeat(9, axis=0)[:, :2],
                                 recurrent_bias=recurrent_bias, peephole=peephole)
    assert_close(output, expected, "float32")
    projected = lstmgen.LSTM(3, proj_size=2)
    assert projected.target == "cpu" and "cuda: proj_size=2" in projected.explain()
