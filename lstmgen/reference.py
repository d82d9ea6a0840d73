"""The NumPy oracle: what an LSTMSpec means, in plain float64 NumPy (no Numba).

Every target is tested against `forward`, and `forward` is tested against Keras 3
(tests/test_reference_keras.py). Glossary: T time steps, N batch, C input features, H units;
gates i, f, c, o along the last axis of every weight.
"""

import numpy as np

from lstmgen.activations import ACTIVATIONS

_GATES = 4


def forward(spec, kernel, recurrent_kernel, bias, x, *, mask=None, initial_state=None,
            input_masks=None, recurrent_masks=None):
    """Run the layer described by `spec` and return what a Keras 3 LSTM layer returns.

    kernel            [C, 4H]
    recurrent_kernel  [H, 4H]
    bias              [4H], or None when not spec.use_bias
    x                 [N, T, C] ([T, N, C] when spec.time_major)
    mask              [N, T] bool, True = use the step; None = every step
    initial_state     [h0 [N, H], c0 [N, H]]; None = zeros
    input_masks       [K, N, C] scaled dropout masks, K = spec.dropout_mask_count (a list of K
                      [N, C], or one [N, C] when K is 1, as the layer's getters return them);
                      None = no dropout
    recurrent_masks   [K, N, H] likewise for the recurrent state

    Returns `output`, or `[output, h, c]` with spec.return_state; `output` is [N, T, H]
    ([T, N, H] when time_major) with return_sequences, else [N, H]. All float64.
    """
    x = np.asarray(x, dtype=np.float64)
    if spec.time_major:
        x = x.transpose(1, 0, 2)
    n_batch, n_steps, n_in = x.shape
    units = spec.units
    kernel = _array("kernel", kernel, (n_in, _GATES * units))
    recurrent_kernel = _array("recurrent_kernel", recurrent_kernel, (units, _GATES * units))
    if spec.use_bias:
        bias = _array("bias", bias, (_GATES * units,))
    elif bias is not None:
        raise ValueError("bias must be None when spec.use_bias is False")
    if mask is None:
        mask = np.ones((n_batch, n_steps), dtype=bool)
    else:
        mask = _array("mask", mask, (n_batch, n_steps), dtype=bool)
    if initial_state is None:
        h = np.zeros((n_batch, units))
        c = np.zeros((n_batch, units))
    else:
        h0, c0 = initial_state
        h = _array("initial_state[0]", h0, (n_batch, units))
        c = _array("initial_state[1]", c0, (n_batch, units))
    count = spec.dropout_mask_count
    x_scales = _per_gate("input_masks", input_masks, (count, n_batch, n_in))
    h_scales = _per_gate("recurrent_masks", recurrent_masks, (count, n_batch, units))

    activation = ACTIVATIONS[spec.activation].numpy
    recurrent_activation = ACTIVATIONS[spec.recurrent_activation].numpy
    # Keras reverses x and the mask together and never flips the outputs back.
    steps = range(n_steps - 1, -1, -1) if spec.go_backwards else range(n_steps)
    # A masked step outputs the previous step's output; before any step that is zeros.
    output = np.zeros((n_batch, units))
    outputs = []
    for t in steps:
        z = np.empty((n_batch, _GATES * units))
        for k in range(_GATES):
            cols = slice(k * units, (k + 1) * units)
            z[:, cols] = ((x[:, t] * x_scales[k]) @ kernel[:, cols]
                          + (h * h_scales[k]) @ recurrent_kernel[:, cols])
        if bias is not None:
            z += bias
        z_i, z_f, z_c, z_o = np.split(z, _GATES, axis=1)
        new_c = recurrent_activation(z_f) * c + recurrent_activation(z_i) * activation(z_c)
        new_h = recurrent_activation(z_o) * activation(new_c)

        use = mask[:, t, None]
        h = np.where(use, new_h, h)
        c = np.where(use, new_c, c)
        output = np.where(use, new_h, 0.0 if spec.zero_output_for_mask else output)
        outputs.append(output)

    if spec.return_sequences:
        output = np.stack(outputs, axis=0 if spec.time_major else 1)
    # Otherwise `output` is the last processed step's (so zeros under zero_output_for_mask
    # when that step is masked, as Keras's last_output is).
    return [output, h, c] if spec.return_state else output


def _per_gate(name, masks, shape):
    """Four multipliers, one per gate: Keras shares one mask among the gates unless it has four."""
    if masks is None:
        return [1.0] * _GATES
    masks = np.asarray(masks, dtype=np.float64)
    # One [N, features] mask is what LSTM.get_dropout_mask_for_cell returns for count 1.
    masks = _array(name, masks[None] if masks.ndim == 2 else masks, shape)
    return [masks[k] if len(masks) == _GATES else masks[0] for k in range(_GATES)]


def _array(name, value, shape, dtype=np.float64):
    array = np.asarray(value, dtype=dtype)
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}; expected {shape}")
    return array
