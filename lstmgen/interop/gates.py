"""Named converters between Keras's LSTM weight layout and ONNX's and PyTorch's.

Keras: kernel [C, 4H], recurrent_kernel [H, 4H], bias [4H]; gate order i, f, c, o.
ONNX:  W [1, 4H, C], R [1, 4H, H], B [1, 8H] (input then recurrent biases); gate order i, o, f, c.
torch: weight_ih [4H, C], weight_hh [4H, H], bias_ih [4H], bias_hh [4H]; gate order i, f, g(=c), o.
"""

import numpy as np

# Position of each ONNX gate (i, o, f, c) in Keras's order (i, f, c, o), and the inverse.
_ONNX_FROM_KERAS = (0, 3, 1, 2)
_KERAS_FROM_ONNX = (0, 2, 3, 1)


def _reorder(weight: np.ndarray, order: tuple) -> np.ndarray:
    """Permute the four gate blocks along the first axis."""
    blocks = np.split(np.asarray(weight), 4, axis=0)
    return np.concatenate([blocks[k] for k in order], axis=0)


def keras_to_onnx(kernel, recurrent_kernel, bias=None) -> tuple:
    """(W, R, B) for one forward ONNX LSTM direction; B sums to the Keras bias (recurrent half 0)."""
    units = np.shape(recurrent_kernel)[0]
    w = _reorder(np.asarray(kernel).T, _ONNX_FROM_KERAS)[None]
    r = _reorder(np.asarray(recurrent_kernel).T, _ONNX_FROM_KERAS)[None]
    b_in = np.zeros(4 * units, w.dtype) if bias is None else _reorder(bias, _ONNX_FROM_KERAS)
    b = np.concatenate([b_in, np.zeros(4 * units, w.dtype)])[None]
    return w, r, b


def onnx_to_keras(w, r, b=None) -> tuple:
    """(kernel, recurrent_kernel, bias) from one ONNX direction; the two ONNX biases are summed."""
    w, r = np.asarray(w)[0], np.asarray(r)[0]
    units = r.shape[1]
    kernel = _reorder(w, _KERAS_FROM_ONNX).T
    recurrent_kernel = _reorder(r, _KERAS_FROM_ONNX).T
    if b is None:
        return kernel, recurrent_kernel, np.zeros(4 * units, w.dtype)
    b = np.asarray(b)[0]
    return kernel, recurrent_kernel, _reorder(b[:4 * units] + b[4 * units:], _KERAS_FROM_ONNX)


def keras_to_torch(kernel, recurrent_kernel, bias=None) -> dict:
    """A one-layer nn.LSTM state_dict (as NumPy arrays); PyTorch's gate order equals Keras's."""
    kernel = np.asarray(kernel)
    units = np.shape(recurrent_kernel)[0]
    bias = np.zeros(4 * units, kernel.dtype) if bias is None else np.asarray(bias)
    return {"weight_ih_l0": np.ascontiguousarray(kernel.T),
            "weight_hh_l0": np.ascontiguousarray(np.asarray(recurrent_kernel).T),
            "bias_ih_l0": bias.copy(), "bias_hh_l0": np.zeros_like(bias)}


def torch_to_keras(state: dict) -> tuple:
    """(kernel, recurrent_kernel, bias) from a one-layer nn.LSTM state_dict; the biases are summed."""
    as_numpy = {k: np.asarray(v.detach().cpu() if hasattr(v, "detach") else v) for k, v in state.items()}
    return (as_numpy["weight_ih_l0"].T.copy(), as_numpy["weight_hh_l0"].T.copy(),
            as_numpy["bias_ih_l0"] + as_numpy["bias_hh_l0"])
