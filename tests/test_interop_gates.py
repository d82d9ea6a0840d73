"""Weight-layout converters: round trips, and each foreign layout means the same LSTM."""

import numpy as np
import pytest

from lstmgen import reference
from lstmgen.interop.gates import (keras_to_onnx, keras_to_torch, onnx_biases_to_keras,
                                   onnx_peepholes_to_keras, onnx_to_keras, torch_to_keras,
                                   torch_to_lstmgen)
from lstmgen.spec import LSTMSpec

C, H, N, T = 3, 5, 2, 4


@pytest.fixture
def weights():
    rng = np.random.default_rng(7)
    return rng.normal(0, 0.5, (C, 4 * H)), rng.normal(0, 0.5, (H, 4 * H)), rng.normal(0, 0.5, 4 * H)


def test_onnx_round_trip(weights):
    w, r, b = keras_to_onnx(*weights)
    assert w.shape == (1, 4 * H, C) and r.shape == (1, 4 * H, H) and b.shape == (1, 8 * H)
    for got, want in zip(onnx_to_keras(w, r, b), weights):
        np.testing.assert_array_equal(got, want)


def test_torch_round_trip(weights):
    for got, want in zip(torch_to_keras(keras_to_torch(*weights)), weights):
        np.testing.assert_array_equal(got, want)


def test_onnx_layout_computes_the_same_lstm(weights):
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    w, r, b = keras_to_onnx(*weights)
    x = np.random.default_rng(8).normal(size=(T, N, C))
    node = onnx.helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y", "Y_h", "Y_c"], hidden_size=H)
    y, y_h, y_c = ReferenceEvaluator(node).run(None, {"X": x, "W": w, "R": r, "B": b})
    out, h, c = reference.forward(LSTMSpec(H, return_sequences=True, return_state=True),
                                  *weights, x.transpose(1, 0, 2))
    np.testing.assert_allclose(y[:, 0].transpose(1, 0, 2), out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y_h[0], h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y_c[0], c, rtol=1e-12, atol=1e-12)


def test_torch_layout_computes_the_same_lstm(weights):
    torch = pytest.importorskip("torch")
    module = torch.nn.LSTM(C, H, batch_first=True).double()
    module.load_state_dict({k: torch.from_numpy(v) for k, v in keras_to_torch(*weights).items()})
    x = np.random.default_rng(9).normal(size=(N, T, C))
    with torch.no_grad():
        y, (h, c) = module(torch.from_numpy(x))
    out, h_ref, c_ref = reference.forward(LSTMSpec(H, return_sequences=True, return_state=True),
                                          *weights, x)
    np.testing.assert_allclose(y.numpy(), out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h[0].numpy(), h_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c[0].numpy(), c_ref, rtol=1e-12, atol=1e-12)


def test_onnx_biases_and_peepholes_compute_the_same_lstm(weights):
    """B's two halves kept apart and P reordered (i, o, f -> i, f, o) against ONNX's evaluator."""
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(10)
    w, r, _ = keras_to_onnx(*weights)
    b, p = rng.normal(0, 0.5, (1, 8 * H)), rng.normal(0, 0.5, (1, 3 * H))
    x = rng.normal(size=(T, N, C))
    node = onnx.helper.make_node("LSTM", ["X", "W", "R", "B", "", "", "", "P"], ["Y", "Y_h", "Y_c"],
                                 hidden_size=H)
    y, y_h, y_c = ReferenceEvaluator(node).run(None, {"X": x, "W": w, "R": r, "B": b, "P": p})
    bias, recurrent_bias = onnx_biases_to_keras(b)
    np.testing.assert_array_equal(onnx_to_keras(w, r, b)[2], bias + recurrent_bias)
    spec = LSTMSpec(H, return_sequences=True, return_state=True, use_recurrent_bias=True,
                    use_peepholes=True)
    out, h, c = reference.forward(spec, *weights[:2], bias, x.transpose(1, 0, 2),
                                  recurrent_bias=recurrent_bias, peephole=onnx_peepholes_to_keras(p))
    np.testing.assert_allclose(y[:, 0].transpose(1, 0, 2), out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y_h[0], h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y_c[0], c, rtol=1e-12, atol=1e-12)


def test_torch_projection_computes_the_same_lstm():
    """torch_to_lstmgen's weights (two biases, weight_hr transposed) in the float64 reference."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(3)
    module = torch.nn.LSTM(C, H, batch_first=True, proj_size=2).double()
    weights = torch_to_lstmgen(module.state_dict())
    assert [weights[k].shape for k in ("kernel", "recurrent_kernel", "bias", "recurrent_bias",
                                       "projection")] == [(C, 4 * H), (2, 4 * H), (4 * H,), (4 * H,), (H, 2)]
    x = np.random.default_rng(11).normal(size=(N, T, C))
    with torch.no_grad():
        y, (h, c) = module(torch.from_numpy(x))
    spec = LSTMSpec(H, return_sequences=True, return_state=True, use_recurrent_bias=True, proj_size=2)
    out, h_ref, c_ref = reference.forward(spec, weights.pop("kernel"), weights.pop("recurrent_kernel"),
                                          weights.pop("bias"), x, **weights)
    np.testing.assert_allclose(y.numpy(), out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h[0].numpy(), h_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c[0].numpy(), c_ref, rtol=1e-12, atol=1e-12)
