"""The cuDNN path on a real GPU (skipped without one): every eligible configuration against the
float64 reference, to the tolerance the CPU target is held to in tests/test_cpu_target.py, so the
two targets agree wherever both run. benchmarks/gpu.py runs this tier with the CUDA one."""

import numpy as np
import pytest

import lstmgen
from lstmgen import reference
from lstmgen.devices import unavailable

from cuda_helpers import assert_close

pytestmark = pytest.mark.skipif(unavailable()["cudnn"] is not None,
                                reason=f"needs cuDNN on a GPU: {unavailable()['cudnn']}")

N_BATCH, N_TIME, INPUT_DIM, UNITS = 5, 12, 7, 16


def _layer(rng, dtype="float32", use_cudnn=True, **kwargs):
    """A built layer on cuDNN with fresh random weights, and inputs in its layout."""
    layer = lstmgen.LSTM(UNITS, use_cudnn=use_cudnn, dtype=dtype, return_state=True, **kwargs)
    assert layer.target == "cudnn"
    shape = (N_TIME, N_BATCH, INPUT_DIM) if kwargs.get("time_major") else (N_BATCH, N_TIME, INPUT_DIM)
    layer.build(shape)
    layer.set_weights([rng.normal(0.0, 0.4, w.shape).astype(dtype) for w in layer.get_weights()])
    return layer, rng.normal(size=shape).astype(dtype)


def _right_padded(lengths):
    return np.arange(N_TIME)[None, :] < np.asarray(lengths)[:, None]


def _assert_reference(layer, actual, x, **kwargs):
    expected = reference.forward(layer.spec, *layer.get_weights(), x, **kwargs)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert_close(a, e, layer.spec.dtype)


@pytest.mark.parametrize("dtype", ("float32", "float64"))
@pytest.mark.parametrize("go_backwards", (False, True))
@pytest.mark.parametrize("return_sequences", (False, True))
@pytest.mark.parametrize("zero_output_for_mask", (False, True))
@pytest.mark.parametrize("lengths", (None, [12, 5, 1, 9, 12], [12] * 5))
def test_cudnn_matches_the_reference(dtype, go_backwards, return_sequences, zero_output_for_mask,
                                     lengths):
    rng = np.random.default_rng([go_backwards, return_sequences, zero_output_for_mask, len(dtype)])
    layer, x = _layer(rng, dtype, go_backwards=go_backwards, return_sequences=return_sequences,
                      zero_output_for_mask=zero_output_for_mask)
    mask = None if lengths is None else _right_padded(lengths)
    initial_state = [rng.normal(size=(N_BATCH, UNITS)).astype(dtype) for _ in range(2)]
    actual = layer(x, mask=mask, initial_state=initial_state)
    _assert_reference(layer, actual, x, mask=mask, initial_state=initial_state)


def test_time_major_stateful_calls_carry_their_states():
    rng = np.random.default_rng(1)
    layer, x = _layer(rng, time_major=True, stateful=True, return_sequences=True)
    states = [np.zeros((N_BATCH, UNITS), np.float32)] * 2
    for mask in (None, _right_padded([3, 12, 7, 1, 12])):
        actual = layer(x, mask=mask)
        _assert_reference(layer, actual, x, mask=mask, initial_state=states)
        states = [np.asarray(s) for s in layer.states]
        x = rng.normal(size=x.shape).astype(np.float32)


def test_training_applies_the_input_dropout_mask_the_layer_reports():
    rng = np.random.default_rng(2)
    layer, x = _layer(rng, dropout=0.4, return_sequences=True)
    actual = layer(x, training=True)
    used = layer.get_dropout_mask_for_cell(x[:, 0], True)
    assert (used == 0).any()
    _assert_reference(layer, actual, x, input_masks=np.asarray(used)[None])


def test_new_weights_and_batch_shapes_are_picked_up():
    rng = np.random.default_rng(3)
    layer, x = _layer(rng, return_sequences=True)
    _assert_reference(layer, layer(x), x)
    layer.set_weights([rng.normal(0.0, 0.4, w.shape).astype(np.float32) for w in layer.get_weights()])
    _assert_reference(layer, layer(x), x)
    fewer = x[:3, :8]
    _assert_reference(layer, layer(fewer), fewer)


def test_a_mask_with_holes_runs_on_cpu_under_auto_and_raises_under_true():
    rng = np.random.default_rng(4)
    holes = rng.random((N_BATCH, N_TIME)) > 0.3
    holes[:, 0] = False  # not right-padded in any row
    layer, x = _layer(rng, use_cudnn="auto", return_sequences=True)
    _assert_reference(layer, layer(x, mask=holes), x, mask=holes)
    strict, x = _layer(rng, return_sequences=True)
    with pytest.raises(ValueError, match="not strictly right-padded"):
        strict(x, mask=holes)


def test_device_arrays_stay_on_the_device():
    from numba import cuda

    rng = np.random.default_rng(5)
    layer, x = _layer(rng, go_backwards=True, return_sequences=True, stateful=True)
    mask = _right_padded([12, 4, 9, 1, 12])
    actual = layer(cuda.to_device(x), mask=cuda.to_device(mask))
    assert all(hasattr(a, "copy_to_host") for a in actual)  # device in, device out
    assert all(hasattr(s, "copy_to_host") for s in layer._states)  # states kept on the device
    zeros = [np.zeros((N_BATCH, UNITS), np.float32)] * 2
    _assert_reference(layer, [a.copy_to_host() for a in actual], x, mask=mask, initial_state=zeros)


def test_a_mask_with_holes_on_device_inputs_runs_on_the_cuda_target():
    from numba import cuda

    rng = np.random.default_rng(6)
    holes = rng.random((N_BATCH, N_TIME)) > 0.3
    holes[:, 0] = False
    layer, x = _layer(rng, use_cudnn="auto", return_sequences=True)
    actual = layer(cuda.to_device(x), mask=holes)
    assert layer._cuda is not None and layer._cudnn is None
    _assert_reference(layer, [a.copy_to_host() for a in actual], x, mask=holes)


def test_a_stateful_layer_carries_its_states_between_cudnn_and_cpu_calls():
    rng = np.random.default_rng(7)
    layer, x = _layer(rng, use_cudnn="auto", stateful=True, return_sequences=True)
    holes = rng.random((N_BATCH, N_TIME)) > 0.3
    holes[:, 0] = False
    states = [np.zeros((N_BATCH, UNITS), np.float32)] * 2
    for mask in (_right_padded([12, 3, 7, 1, 12]), holes, None):  # cuDNN, then cpu, then cuDNN
        actual = layer(x, mask=mask)
        _assert_reference(layer, actual, x, mask=mask, initial_state=states)
        states = layer.states
