"""The NumPy oracle: what an LSTMSpec means, in plain float64 NumPy (no Numba).

Every target is tested against `forward`, and `forward` is tested against Keras 3
(tests/test_reference_keras.py). Glossary: T time steps, N batch, C input features, H units;
gates i, f, c, o along the last axis of every weight.
"""

import numpy as np

from lstmgen.activations import numpy_form

_GATES = 4


def forward(spec, kernel, recurrent_kernel, bias, x, *, mask=None, initial_state=None,
            input_masks=None, recurrent_masks=None, recurrent_bias=None, peephole=None,
            projection=None):
    """Run the layer described by `spec` and return what a Keras 3 LSTM layer returns.

    P is spec.output_size (proj_size, or H without a projection).
    kernel            [C, 4H]
    recurrent_kernel  [P, 4H]
    bias              [4H], or None when not spec.use_bias
    x                 [N, T, C] ([T, N, C] when spec.time_major)
    mask              [N, T] bool, True = use the step; None = every step
    initial_state     [h0 [N, P], c0 [N, H]]; None = zeros
    input_masks       [K, N, C] scaled dropout masks, K = spec.dropout_mask_count (a list of K
                      [N, C], or one [N, C] when K is 1, as the layer's getters return them);
                      None = no dropout
    recurrent_masks   [K, N, P] likewise for the recurrent state
    recurrent_bias    [4H] with spec.use_recurrent_bias, else None
    peephole          [3H] (gates i, f, o) with spec.use_peepholes, else None
    projection        [H, P] with spec.proj_size, else None

    The cell (ONNX's equations in Keras's gate order; ra = recurrent_activation, a = activation,
    ha = output_activation or a, clip(z) = z bounded to [-clip, clip] when spec.clip is set):
        z = x_t·kernel + bias + h·recurrent_kernel + recurrent_bias
        i = ra(clip(z_i + p_i * c));  f = 1 - i (input_forget) or ra(clip(z_f + p_f * c))
        c' = f * c + i * a(clip(z_c));  o = ra(clip(z_o + p_o * c'));  h' = (o * ha(c'))·projection

    Returns `output`, or `[output, h, c]` with spec.return_state; `output` is [N, T, P]
    ([T, N, P] when time_major) with return_sequences, else [N, P]. All float64.
    """
    x = np.asarray(x, dtype=np.float64)
    if spec.time_major:
        x = x.transpose(1, 0, 2)
    n_batch, n_steps, n_in = x.shape
    units, width = spec.units, spec.output_size
    given = {"kernel": kernel, "recurrent_kernel": recurrent_kernel, "bias": bias,
             "recurrent_bias": recurrent_bias, "peephole": peephole, "projection": projection}
    weights = dict.fromkeys(given)
    for name, shape in zip(spec.weight_names, spec.weight_shapes(n_in)):
        weights[name] = _array(name, given[name], shape)
    for name, value in given.items():
        if weights[name] is None and value is not None:
            raise ValueError(f"{name} must be None: the spec has no {name}")
    if mask is None:
        mask = np.ones((n_batch, n_steps), dtype=bool)
    else:
        mask = _array("mask", mask, (n_batch, n_steps), dtype=bool)
    if initial_state is None:
        h = np.zeros((n_batch, width))
        c = np.zeros((n_batch, units))
    else:
        h0, c0 = initial_state
        h = _array("initial_state[0]", h0, (n_batch, width))
        c = _array("initial_state[1]", c0, (n_batch, units))
    count = spec.dropout_mask_count
    x_scales = _per_gate("input_masks", input_masks, (count, n_batch, n_in))
    h_scales = _per_gate("recurrent_masks", recurrent_masks, (count, n_batch, width))

    activation = numpy_form(spec.activation)
    recurrent_activation = numpy_form(spec.recurrent_activation)
    output_activation = numpy_form(spec.output_activation or spec.activation)
    bound = spec.clip

    def clip(z):
        return z if bound is None else np.clip(z, -bound, bound)

    def peep(z, gate, cell):  # gate 0, 1, 2: i, f, o
        if not spec.use_peepholes:
            return z
        return z + weights["peephole"][gate * units:(gate + 1) * units] * cell
    # Keras reverses x and the mask together and never flips the outputs back.
    steps = range(n_steps - 1, -1, -1) if spec.go_backwards else range(n_steps)
    # A masked step outputs the previous step's output; before any step that is zeros.
    output = np.zeros((n_batch, width))
    outputs = []
    for t in steps:
        zx = np.empty((n_batch, _GATES * units))
        zh = np.empty((n_batch, _GATES * units))
        for k in range(_GATES):
            cols = slice(k * units, (k + 1) * units)
            zx[:, cols] = (x[:, t] * x_scales[k]) @ weights["kernel"][:, cols]
            zh[:, cols] = (h * h_scales[k]) @ weights["recurrent_kernel"][:, cols]
        for name, z in (("bias", zx), ("recurrent_bias", zh)):
            if weights[name] is not None:
                z += weights[name]
        z_i, z_f, z_c, z_o = np.split(zx + zh, _GATES, axis=1)
        i = recurrent_activation(clip(peep(z_i, 0, c)))
        f = 1.0 - i if spec.input_forget else recurrent_activation(clip(peep(z_f, 1, c)))
        new_c = f * c + i * activation(clip(z_c))
        o = recurrent_activation(clip(peep(z_o, 2, new_c)))
        new_h = o * output_activation(new_c)
        if spec.proj_size:
            new_h = new_h @ weights["projection"]

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
