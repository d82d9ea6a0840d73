"""Named converters between tf.keras CuDNNLSTM weights and Keras LSTM weights.

CuDNNLSTM: kernel [C, 4H], recurrent_kernel [H, 4H], bias [8H] = input biases then recurrent
biases, gates i, f, c, o throughout. tf.keras handed each gate slice to cuDNN as its flat
row-major bytes, which cuDNN reads as an [H, in] matrix: so the LSTM-form input slice is
`k.reshape(H, C).T` (Keras 2's `k.T.reshape(k.shape, order="F")`) and the LSTM-form recurrent
slice is `k.T`. The LSTM bias is the sum of the two biases.
"""

import numpy as np

_GATES = 4


def cudnnlstm_to_lstm(kernel, recurrent_kernel, bias) -> tuple:
    """(kernel [C, 4H], recurrent_kernel [H, 4H], bias [4H]) of the LSTM that computes the same."""
    kernel, recurrent_kernel, input_bias, recurrent_bias = cudnnlstm_to_canonical(
        kernel, recurrent_kernel, bias)
    return kernel, recurrent_kernel, input_bias + recurrent_bias


def cudnnlstm_to_canonical(kernel, recurrent_kernel, bias) -> tuple:
    """LSTM-form kernels with the two biases kept apart: (kernel, recurrent_kernel,
    input_bias [4H], recurrent_bias [4H]), as cuDNN's weight space holds them."""
    kernel, recurrent_kernel, bias = map(np.asarray, (kernel, recurrent_kernel, bias))
    n_in, units = kernel.shape[0], recurrent_kernel.shape[0]
    kernel = _per_gate(kernel, units, lambda k: k.reshape(units, n_in).T)
    recurrent_kernel = _per_gate(recurrent_kernel, units, lambda k: k.T)
    return kernel, recurrent_kernel, bias[:_GATES * units].copy(), bias[_GATES * units:].copy()


def lstm_to_cudnnlstm(kernel, recurrent_kernel, bias=None) -> tuple:
    """(kernel, recurrent_kernel, bias [8H]) of the CuDNNLSTM that computes the same as an LSTM
    (no bias: zeros); the whole bias goes to the input half, the recurrent half is zero."""
    kernel, recurrent_kernel = np.asarray(kernel), np.asarray(recurrent_kernel)
    n_in, units = kernel.shape[0], recurrent_kernel.shape[0]
    stored_kernel = _per_gate(kernel, units, lambda k: k.T.reshape(n_in, units))
    stored_recurrent = _per_gate(recurrent_kernel, units, lambda k: k.T)
    bias = np.zeros(_GATES * units, kernel.dtype) if bias is None else np.asarray(bias)
    return stored_kernel, stored_recurrent, np.concatenate([bias, np.zeros_like(bias)])


def _per_gate(weight, units, convert):
    slices = [convert(weight[:, g * units:(g + 1) * units]) for g in range(_GATES)]
    return np.ascontiguousarray(np.concatenate(slices, axis=1))
