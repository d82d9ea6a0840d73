"""Named converters between Keras's LSTM weight layout and ONNX's and PyTorch's.

Keras: kernel [C, 4H], recurrent_kernel [H, 4H], bias [4H]; gate order i, f, c, o; lstmgen's cell
       options add recurrent_bias [4H], peephole [3H] (i, f, o) and projection [H, P]
       (lstmgen.spec), and recurrent_kernel is then [P, 4H].
ONNX:  W [1, 4H, C], R [1, 4H, H], B [1, 8H] (input then recurrent biases), P [1, 3H] (i, o, f);
       gate order i, o, f, c.
torch: weight_ih [4H, C], weight_hh [4H, P], bias_ih [4H], bias_hh [4H], weight_hr [P, H] (with
       proj_size P, else P = H); gate order i, f, g(=c), o.
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
    bias, recurrent_bias = onnx_biases_to_keras(b)
    return kernel, recurrent_kernel, bias + recurrent_bias


def onnx_biases_to_keras(b) -> tuple:
    """(bias, recurrent_bias), each [4H] in Keras's gate order, from one ONNX direction's B [1, 8H]."""
    wb, rb = np.split(np.asarray(b)[0], 2)
    return _reorder(wb, _KERAS_FROM_ONNX), _reorder(rb, _KERAS_FROM_ONNX)


def onnx_peepholes_to_keras(p) -> np.ndarray:
    """lstmgen's peephole [3H] (i, f, o) from one ONNX direction's P [1, 3H] (i, o, f)."""
    p_i, p_o, p_f = np.split(np.asarray(p)[0], 3)
    return np.concatenate([p_i, p_f, p_o])


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
    weights = torch_to_lstmgen(state)
    return weights["kernel"], weights["recurrent_kernel"], weights["bias"] + weights["recurrent_bias"]


def torch_to_lstmgen(state: dict) -> dict:
    """lstmgen's weights by name (kernel, recurrent_kernel, bias, recurrent_bias, projection; those
    the one-layer nn.LSTM state_dict has), the two biases kept apart as PyTorch adds them."""
    as_numpy = {k: np.asarray(v.detach().cpu() if hasattr(v, "detach") else v) for k, v in state.items()}
    names = {"weight_ih_l0": "kernel", "weight_hh_l0": "recurrent_kernel", "bias_ih_l0": "bias",
             "bias_hh_l0": "recurrent_bias", "weight_hr_l0": "projection"}
    return {names[k]: (v.T.copy() if v.ndim == 2 else v) for k, v in as_numpy.items() if k in names}
