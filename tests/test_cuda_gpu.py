"""The CUDA target on a real GPU (skipped without one): both strategies against the reference,
and device arrays in and out without copies. benchmarks/gpu.py runs this tier first."""

import os

import numpy as np
import pytest

from cuda_helpers import assert_close

numba_cuda = pytest.importorskip("numba_cuda")
from numba import cuda  # noqa: E402

pytestmark = pytest.mark.skipif(os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or not cuda.is_available(),
                                reason="needs a CUDA GPU (numba.cuda.is_available() is False)")

import lstmgen  # noqa: E402
from lstmgen import reference  # noqa: E402

MASK_KINDS = ("none", "holes")


def _layer_and_data(rng, units, input_dim, n_batch, n_time, dtype, **kwargs):
    layer = lstmgen.LSTM(units, target="cuda", dtype=dtype, return_sequences=True, return_state=True,
                         **kwargs)
    layer.build((n_batch, n_time, input_dim))
    # Scaled by fan-in as trained weights are: with a fixed scale, H = 1024 makes the recurrence
    # chaotic, and two exact implementations part by more than rounding over 20 steps.
    scales = [0.1 if w.ndim == 1 else 1 / np.sqrt(w.shape[0]) for w in layer.get_weights()]
    layer.set_weights([rng.normal(0.0, scale, w.shape).astype(dtype)
                       for scale, w in zip(scales, layer.get_weights())])
    x = rng.normal(size=(n_batch, n_time, input_dim)).astype(dtype)
    return layer, x


@pytest.mark.parametrize("dtype", ("float32", "float64"))
@pytest.mark.parametrize("n_batch, units", [(1, 128), (8, 256), (5, 1024), (64, 256)])
@pytest.mark.parametrize("mask_kind", MASK_KINDS)
def test_layer_matches_reference_on_the_gpu(dtype, n_batch, units, mask_kind):
    rng = np.random.default_rng(units * 100 + n_batch)
    layer, x = _layer_and_data(rng, units, 32, n_batch, 20, dtype, go_backwards=True)
    mask = rng.random((n_batch, 20)) > 0.3 if mask_kind == "holes" else None
    initial_state = [rng.normal(size=(n_batch, units)).astype(dtype) for _ in range(2)]
    actual = layer(x, mask=mask, initial_state=initial_state)
    expected = reference.forward(layer.spec, *layer.get_weights(), x, mask=mask,
                                 initial_state=initial_state)
    for a, e in zip(actual, expected):
        assert_close(a, e, dtype)
    if n_batch <= 8 and units <= 512:
        assert layer._cuda.strategy.name == "persistent", layer._cuda.strategy


def test_torch_cuda_tensors_go_in_without_a_copy():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this torch is a CPU build (torch.cuda.is_available() is False): "
                    "no CUDA tensors to pass in")
    rng = np.random.default_rng(7)
    layer, x = _layer_and_data(rng, 64, 16, 4, 10, "float32")
    x_torch = torch.from_numpy(x).cuda()
    output, h, c = layer(x_torch)
    assert hasattr(output, "copy_to_host")
    assert cuda.as_cuda_array(x_torch).device_ctypes_pointer.value == x_torch.data_ptr()
    expected = reference.forward(layer.spec, *layer.get_weights(), x)
    assert_close(output.copy_to_host(), expected[0], "float32")
