"""The cuDNN path's layer plumbing in the simulator, everything but cudnnRNNForward itself:
the layer's per-call target choice, CudnnRunner and DeviceRunner (device arrays in and out, states
on the device), the sequence kernels, and the fallbacks, with CudnnForward replaced by a stand-in
that runs cuda_helpers.padded_cudnn_forward between the real to_cudnn and from_cudnn."""

import numpy as np
import pytest
from numba import cuda

import lstmgen
import lstmgen.cudnn.forward
import lstmgen.runtime
from lstmgen import reference
from lstmgen.cudnn.sequences import from_cudnn, to_cudnn

from cuda_helpers import assert_close, padded_cudnn_forward

N_BATCH, N_TIME, INPUT_DIM, UNITS = 3, 5, 2, 4


class StandInForward:
    """CudnnForward's interface; cudnnRNNForward's part done by the NumPy stand-in."""

    def __init__(self, spec):
        self.spec = spec

    def __call__(self, weights, x, lengths, h0, c0, input_mask=None):
        d_lengths = cuda.to_device(lengths)
        padded = to_cudnn(self.spec, x, d_lengths, input_mask).copy_to_host()
        y, hy, cy = padded_cudnn_forward(self.spec.units, *weights, padded, lengths,
                                         h0.copy_to_host(), c0.copy_to_host())
        d_y, d_h, d_c = (cuda.to_device(a.astype(self.spec.dtype)) for a in (y, hy, cy))
        return from_cudnn(self.spec, d_y, d_h, lengths, d_lengths), d_h, d_c


@pytest.fixture(autouse=True)
def cudnn_stand_in(monkeypatch):
    monkeypatch.setattr(lstmgen.runtime, "_probe_devices",
                        lambda spec, target: {"cuda": None, "cudnn": None})
    monkeypatch.setattr(lstmgen.cudnn.forward, "CudnnForward", StandInForward)


def _layer(rng, **kwargs):
    layer = lstmgen.LSTM(UNITS, dtype="float64", return_state=True, **kwargs)
    assert layer.target == "cudnn"
    shape = (N_TIME, N_BATCH, INPUT_DIM) if kwargs.get("time_major") else (N_BATCH, N_TIME, INPUT_DIM)
    layer.build(shape)
    layer.set_weights([rng.normal(0.0, 0.5, w.shape) for w in layer.get_weights()])
    return layer, rng.normal(size=shape)


def _assert_reference(layer, actual, x, **kwargs):
    expected = reference.forward(layer.spec, *layer.get_weights(), x, **kwargs)
    for a, e in zip(actual, expected):
        assert_close(a.copy_to_host() if hasattr(a, "copy_to_host") else a, e, "float64")


RIGHT_PADDED = np.arange(N_TIME)[None, :] < np.array([[5], [2], [4]])


def test_device_arrays_stay_on_the_device_and_host_arrays_on_the_host():
    rng = np.random.default_rng(1)
    layer, x = _layer(rng, go_backwards=True, return_sequences=True, time_major=True)
    device = layer(cuda.to_device(x), mask=cuda.to_device(RIGHT_PADDED))
    assert all(hasattr(a, "copy_to_host") for a in device) and layer._cuda is None
    _assert_reference(layer, device, x, mask=RIGHT_PADDED)
    host = layer(x, mask=RIGHT_PADDED)
    assert all(isinstance(a, np.ndarray) for a in host)
    _assert_reference(layer, host, x, mask=RIGHT_PADDED)


def test_input_dropout_in_training_is_the_mask_the_layer_reports():
    rng = np.random.default_rng(2)
    layer, x = _layer(rng, dropout=0.5, return_sequences=True, seed=4)
    actual = layer(cuda.to_device(x), training=True)
    used = layer.get_dropout_mask_for_cell(x[:, 0], True)
    _assert_reference(layer, actual, x, input_masks=np.asarray(used)[None])


def test_masks_cudnn_cannot_run_go_to_cuda_on_the_device_and_cpu_on_the_host():
    rng = np.random.default_rng(3)
    holes = np.array([[1, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 0, 1]], bool)
    layer, x = _layer(rng, return_sequences=True, stateful=True)
    states = [np.zeros((N_BATCH, UNITS))] * 2
    # cuDNN (device states), cpu from them (host inputs), CUDA target (device inputs), cuDNN.
    for inputs, mask in ((x, RIGHT_PADDED), (x, holes), (cuda.to_device(x), holes), (x, None)):
        actual = layer(inputs, mask=mask)
        _assert_reference(layer, actual, x, mask=mask, initial_state=states)
        states = layer.states
    assert layer._cudnn is not None and layer._cuda is not None
