"""cuDNN's LSTM weight space: packing Keras-form weights against a NumPy model of the layout.

The model (`canonical_layout`) places matrices 0-7 then biases 0-7; on a GPU the offsets come from
cudnnGetRNNWeightParams instead, so packing is also checked on a scrambled layout. A NumPy cell
that reads the flat space the way cuDNN's equations do must agree with the reference LSTM.
"""

import numpy as np
import pytest

from lstmgen import reference
from lstmgen.cudnn.weights import WeightLayout, canonical_layout, pack, unpack
from lstmgen.spec import LSTMSpec

C, H = 3, 5


def _weights(rng, n_in=C, units=H):
    return (rng.normal(size=(n_in, 4 * units)), rng.normal(size=(units, 4 * units)),
            rng.normal(size=4 * units), rng.normal(size=4 * units))


def _scrambled(n_in, units) -> WeightLayout:
    """The same pieces in another order, with gaps: packing must follow the offsets it is given."""
    sizes = [units * (n_in if lin < 4 else units) for lin in range(8)] + [units] * 8
    order = np.random.default_rng(1).permutation(16)
    offsets, position = [0] * 16, 3
    for piece in order:
        offsets[piece] = position
        position += sizes[piece] + 2
    matrices = tuple((offsets[lin], units, n_in if lin < 4 else units) for lin in range(8))
    return WeightLayout(position + 1, matrices, tuple(offsets[8:]))


def test_the_model_layout_is_matrices_then_biases_in_lin_layer_order():
    layout = canonical_layout(C, H)
    assert layout.size == 4 * H * (C + H) + 8 * H
    assert [m[0] for m in layout.matrices] == [k * H * C for k in range(4)] + [
        4 * H * C + k * H * H for k in range(4)]
    assert layout.biases == tuple(4 * H * (C + H) + k * H for k in range(8))


@pytest.mark.parametrize("make_layout", [canonical_layout, _scrambled])
def test_pack_places_each_gate_as_a_transposed_row_major_matrix(make_layout):
    kernel, recurrent, b_in, b_rec = _weights(np.random.default_rng(0))
    layout = make_layout(C, H)
    flat = pack(layout, kernel, recurrent, b_in, b_rec, np.float64)
    for gate in range(4):
        offset, rows, cols = layout.matrices[gate]
        assert flat[offset + 2 * cols + 1] == kernel[1, gate * H + 2]  # row = unit, col = input
        offset, rows, cols = layout.matrices[4 + gate]
        assert np.array_equal(flat[offset:offset + rows * cols].reshape(rows, cols),
                              recurrent[:, gate * H:(gate + 1) * H].T)
        assert np.array_equal(flat[layout.biases[gate]:layout.biases[gate] + H],
                              b_in[gate * H:(gate + 1) * H])
        assert np.array_equal(flat[layout.biases[4 + gate]:layout.biases[4 + gate] + H],
                              b_rec[gate * H:(gate + 1) * H])
    for got, expected in zip(unpack(layout, flat), (kernel, recurrent, b_in, b_rec)):
        assert np.array_equal(got, expected)


def test_pack_leaves_unclaimed_space_zero_and_refuses_a_misfit():
    layout = _scrambled(C, H)
    flat = pack(layout, *_weights(np.random.default_rng(2)), np.float32)
    assert flat.dtype == np.float32 and flat[:3].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="does not fit"):
        pack(layout, *_weights(np.random.default_rng(2), n_in=C + 1), np.float32)


def _cudnn_cell(layout, flat, x, h, c):
    """cuDNN's LSTM equations read straight from the weight space (gates i, f, c', o = 0-3)."""
    def gate(k):
        (wo, rows, cols), (ro, _, _) = layout.matrices[k], layout.matrices[4 + k]
        w = flat[wo:wo + rows * cols].reshape(rows, cols)
        r = flat[ro:ro + rows * rows].reshape(rows, rows)
        return (x @ w.T + flat[layout.biases[k]:layout.biases[k] + rows]
                + h @ r.T + flat[layout.biases[4 + k]:layout.biases[4 + k] + rows])
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    i, f, g, o = sigmoid(gate(0)), sigmoid(gate(1)), np.tanh(gate(2)), sigmoid(gate(3))
    c = f * c + i * g
    return o * np.tanh(c), c


def test_a_cell_reading_the_packed_space_computes_the_keras_lstm():
    rng = np.random.default_rng(3)
    kernel, recurrent, b_in, b_rec = _weights(rng)
    x = rng.normal(size=(2, 4, C))
    layout = canonical_layout(C, H)
    flat = pack(layout, kernel, recurrent, b_in, b_rec, np.float64)
    h = c = np.zeros((2, H))
    for t in range(4):
        h, c = _cudnn_cell(layout, flat, x[:, t], h, c)
    spec = LSTMSpec(H, return_state=True)
    _, h_ref, c_ref = reference.forward(spec, kernel, recurrent, b_in + b_rec, x)
    np.testing.assert_allclose(h, h_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c, c_ref, rtol=1e-12, atol=1e-12)
