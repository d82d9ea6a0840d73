"""cuDNN's LSTM weight space: where each lin layer lies, and packing Keras-form weights into it.

cuDNN numbers the eight matrices of one LSTM layer by linLayerID: 0-3 multiply the input
(gates i, f, c, o: Keras's order), 4-7 the recurrent state (same order). Each matrix is
[H, in] row-major, so it is the transpose of the Keras slice [in, H]; each bias is [H], and
with CUDNN_RNN_DOUBLE_BIAS bias 0-3 is the input bias and 4-7 the recurrent bias of that gate.
The offsets are cuDNN's to choose: on a GPU they come from cudnnGetRNNWeightParams
(`layout_from_cudnn`); `canonical_layout` is the NumPy model the packing is tested against.
"""

import ctypes
from dataclasses import dataclass

import numpy as np

GATES = 4
LIN_LAYERS = 2 * GATES


@dataclass(frozen=True)
class WeightLayout:
    """Element offsets of one LSTM layer's matrices and biases in a flat weight space."""

    size: int  # elements in the whole weight space
    matrices: tuple  # per linLayerID 0-7: (offset, rows, cols); rows = H, cols = C or H
    biases: tuple  # per linLayerID 0-7: offset of an [H] vector


def canonical_layout(input_size: int, units: int) -> WeightLayout:
    """The model: matrices 0-7 back to back, then biases 0-7 (cuDNN's order for one layer)."""
    matrices, offset = [], 0
    for lin in range(LIN_LAYERS):
        cols = input_size if lin < GATES else units
        matrices.append((offset, units, cols))
        offset += units * cols
    biases = tuple(offset + lin * units for lin in range(LIN_LAYERS))
    return WeightLayout(offset + LIN_LAYERS * units, tuple(matrices), biases)


def pack(layout: WeightLayout, kernel, recurrent_kernel, input_bias, recurrent_bias,
         dtype) -> np.ndarray:
    """A flat weight space from Keras-form weights.

    kernel [C, 4H], recurrent_kernel [H, 4H], input_bias [4H], recurrent_bias [4H].
    Space that no lin layer claims is zero.
    """
    flat = np.zeros(layout.size, dtype)
    sources = _per_lin_layer(kernel, recurrent_kernel, input_bias, recurrent_bias)
    for (offset, rows, cols), bias_offset, (matrix, bias) in zip(layout.matrices, layout.biases,
                                                                 sources):
        if matrix.shape != (cols, rows):
            raise ValueError(f"weight slice of shape {matrix.shape} does not fit cuDNN's "
                             f"[{rows}, {cols}] matrix")
        flat[offset:offset + rows * cols] = matrix.T.ravel()
        flat[bias_offset:bias_offset + rows] = bias
    return flat


def unpack(layout: WeightLayout, flat) -> tuple:
    """(kernel [C, 4H], recurrent_kernel [H, 4H], input_bias [4H], recurrent_bias [4H])."""
    flat = np.asarray(flat)
    parts = []
    for (offset, rows, cols), bias_offset in zip(layout.matrices, layout.biases):
        parts.append((flat[offset:offset + rows * cols].reshape(rows, cols).T,
                      flat[bias_offset:bias_offset + rows]))
    kernel = np.concatenate([m for m, _ in parts[:GATES]], axis=1)
    recurrent_kernel = np.concatenate([m for m, _ in parts[GATES:]], axis=1)
    input_bias = np.concatenate([b for _, b in parts[:GATES]])
    recurrent_bias = np.concatenate([b for _, b in parts[GATES:]])
    return kernel, recurrent_kernel, input_bias, recurrent_bias


def _per_lin_layer(kernel, recurrent_kernel, input_bias, recurrent_bias) -> list:
    """[(matrix [in, H], bias [H])] in linLayerID order."""
    units = np.shape(recurrent_kernel)[0]
    out = []
    for matrix, bias in ((kernel, input_bias), (recurrent_kernel, recurrent_bias)):
        matrix, bias = np.asarray(matrix), np.asarray(bias)
        out += [(matrix[:, g * units:(g + 1) * units], bias[g * units:(g + 1) * units])
                for g in range(GATES)]
    return out


def layout_from_cudnn(handle, rnn, size_bytes: int, base: int, itemsize: int) -> WeightLayout:
    """Ask cuDNN where each lin layer of `rnn` lies in the weight space at device address `base`."""
    from lstmgen.cudnn.bindings import api
    from lstmgen.cudnn.descriptors import TensorDescriptor

    matrices, biases = [], []
    with TensorDescriptor() as m_desc, TensorDescriptor() as b_desc:
        for lin in range(LIN_LAYERS):
            m_addr, b_addr = ctypes.c_void_p(), ctypes.c_void_p()
            api.cudnnGetRNNWeightParams(handle.value, rnn.value, 0, size_bytes, ctypes.c_void_p(base),
                                        lin, m_desc.value, ctypes.byref(m_addr), b_desc.value,
                                        ctypes.byref(b_addr))
            # The matrix descriptor is [1, rows, cols] (packed); the bias one [1, rows, 1].
            _, rows, cols = m_desc.dims()
            matrices.append(((m_addr.value - base) // itemsize, rows, cols))
            biases.append((b_addr.value - base) // itemsize)
    return WeightLayout(size_bytes // itemsize, tuple(matrices), tuple(biases))
