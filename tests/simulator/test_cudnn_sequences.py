"""The device side of the cuDNN path around cudnnRNNForward, in the simulator: cuDNN's padded
answer turned into Keras's by lstmgen.cudnn.sequences' kernels.

A NumPy stand-in for cudnnRNNForward (cuda_helpers.padded_cudnn_forward) goes between to_cudnn
and from_cudnn, and the result must equal the reference with the right-padded mask, for every flag
that changes it, with and without input dropout.
"""

import itertools

import numpy as np
import pytest
from numba import cuda

from lstmgen import reference
from lstmgen.cudnn.sequences import from_cudnn, lengths_from_mask, to_cudnn
from lstmgen.spec import LSTMSpec

from cuda_helpers import padded_cudnn_forward

N, T, C, H = 4, 6, 3, 5
FLAGS = list(itertools.product([False, True], repeat=4))


@pytest.mark.parametrize("go_backwards, zero_output_for_mask, return_sequences, time_major", FLAGS)
@pytest.mark.parametrize("lengths", ([6, 1, 3, 5], [6] * 4))
def test_padded_cudnn_outputs_become_keras_masked_outputs(go_backwards, zero_output_for_mask,
                                                          return_sequences, time_major, lengths):
    spec = LSTMSpec(H, go_backwards=go_backwards, zero_output_for_mask=zero_output_for_mask,
                    return_sequences=return_sequences, time_major=time_major, return_state=True)
    rng = np.random.default_rng(7)
    kernel, recurrent, bias = (rng.normal(size=s) for s in ((C, 4 * H), (H, 4 * H), (4 * H,)))
    x = rng.normal(size=(T, N, C) if time_major else (N, T, C))
    h0, c0 = rng.normal(size=(N, H)), rng.normal(size=(N, H))
    input_mask = rng.choice([0.0, 2.0], size=(N, C)) if go_backwards == time_major else None
    mask = np.arange(T) < np.array(lengths)[:, None]
    lengths = lengths_from_mask(mask, N, T)
    d_lengths = cuda.to_device(lengths)
    d_x = to_cudnn(spec, cuda.to_device(x), d_lengths,
                   None if input_mask is None else cuda.to_device(input_mask))
    y, hy, cy = padded_cudnn_forward(H, kernel, recurrent, bias, d_x.copy_to_host(), lengths, h0, c0)
    expected = reference.forward(spec, kernel, recurrent, bias, x, mask=mask, initial_state=[h0, c0],
                                 input_masks=None if input_mask is None else input_mask[None])
    output = from_cudnn(spec, cuda.to_device(y), cuda.to_device(hy), lengths, d_lengths)
    for got, e in zip([output.copy_to_host(), hy, cy], expected):
        np.testing.assert_allclose(got, e, rtol=1e-12, atol=1e-12)


def test_lengths_without_a_mask_are_the_full_sequence():
    assert lengths_from_mask(None, 3, 7).tolist() == [7, 7, 7]
    assert lengths_from_mask(np.array([[1, 1, 0], [1, 0, 0]], bool), 2, 3).dtype == np.int32


def test_go_backwards_reverses_each_sample_within_its_length():
    spec = LSTMSpec(1, go_backwards=True)
    x = np.arange(2 * 4, dtype=float).reshape(2, 4, 1)
    lengths = np.array([4, 2], np.int32)
    out = to_cudnn(spec, cuda.to_device(x), cuda.to_device(lengths)).copy_to_host()[..., 0]
    assert out[0].tolist() == [3, 2, 1, 0] and out[1, :2].tolist() == [5, 4]


def test_arrays_that_need_no_change_pass_through():
    spec = LSTMSpec(H, return_sequences=True)
    lengths = np.full(N, T, np.int32)
    x, y = cuda.to_device(np.ones((N, T, C))), cuda.to_device(np.ones((N, T, H)))
    assert to_cudnn(spec, x, cuda.to_device(lengths)) is x
    assert from_cudnn(spec, y, None, lengths, cuda.to_device(lengths)) is y
