"""lstmgen.CuDNNLSTM: tf.compat.v1 CuDNNLSTM's arguments and weights, run on the CPU target, and
on the GPU targets where a GPU is present (benchmarks/gpu.py's tier).

Its answer is checked against the float64 reference run on the LSTM-form weights that the
SEMANTICS.md conversion gives (input slice k -> k.T.reshape(k.shape, order="F"), recurrent
slice -> k.T, bias = input half + recurrent half), and the converters both ways round-trip.
"""

import numpy as np
import pytest

import lstmgen
from lstmgen import reference
from lstmgen.devices import unavailable
from lstmgen.interop.cudnnlstm import cudnnlstm_to_canonical, cudnnlstm_to_lstm, lstm_to_cudnnlstm
from lstmgen.spec import LSTMSpec

C, H = 3, 4


def _cudnn_weights(rng, dtype=np.float64):
    return [rng.normal(size=s).astype(dtype) for s in ((C, 4 * H), (H, 4 * H), (8 * H,))]


def _keras2_to_lstm(kernel, recurrent, bias):
    """Keras 2's own conversion (keras/engine/saving.py), written out per gate."""
    gates = lambda w, f: np.concatenate([f(k) for k in np.split(w, 4, axis=1)], axis=1)  # noqa: E731
    return (gates(kernel, lambda k: k.T.reshape(k.shape, order="F")), gates(recurrent, lambda k: k.T),
            bias[:4 * H] + bias[4 * H:])


def test_cudnnlstm_to_lstm_is_keras_2s_conversion():
    weights = _cudnn_weights(np.random.default_rng(0))
    for got, expected in zip(cudnnlstm_to_lstm(*weights), _keras2_to_lstm(*weights)):
        np.testing.assert_array_equal(got, expected)
    _, _, input_bias, recurrent_bias = cudnnlstm_to_canonical(*weights)
    np.testing.assert_array_equal(np.concatenate([input_bias, recurrent_bias]), weights[2])


def test_lstm_to_cudnnlstm_round_trip():
    rng = np.random.default_rng(1)
    lstm = [rng.normal(size=s) for s in ((C, 4 * H), (H, 4 * H), (4 * H,))]
    back = cudnnlstm_to_lstm(*lstm_to_cudnnlstm(*lstm))
    for got, expected in zip(back, lstm):
        np.testing.assert_array_equal(got, expected)
    assert np.array_equal(lstm_to_cudnnlstm(*lstm[:2])[2], np.zeros(8 * H))


def test_cudnnlstm_to_lstm_round_trip():
    """Kernels come back exactly; the bias comes back with the same sum, all in the input half."""
    weights = _cudnn_weights(np.random.default_rng(2))
    kernel, recurrent, bias = lstm_to_cudnnlstm(*cudnnlstm_to_lstm(*weights))
    np.testing.assert_array_equal(kernel, weights[0])
    np.testing.assert_array_equal(recurrent, weights[1])
    np.testing.assert_allclose(bias[:4 * H] + bias[4 * H:], weights[2][:4 * H] + weights[2][4 * H:])


def _on(target):
    why_not = None if target == "cpu" else unavailable()[target]
    return pytest.param(target, marks=pytest.mark.skipif(why_not is not None, reason=str(why_not)))


@pytest.mark.parametrize("target", [_on("cpu"), _on("cuda"), _on("cudnn")])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("flags", [dict(), dict(return_sequences=True, return_state=True),
                                   dict(go_backwards=True, return_sequences=True)])
def test_cudnnlstm_matches_the_reference(target, dtype, flags):
    rng = np.random.default_rng(3)
    weights = _cudnn_weights(rng)
    x = rng.normal(size=(2, 5, C))
    h0, c0 = rng.normal(size=(2, H)), rng.normal(size=(2, H))
    layer = lstmgen.CuDNNLSTM(H, dtype=dtype, target=target, **flags)
    layer.set_weights(weights)
    assert layer.target == target
    got = layer(x, initial_state=[h0, c0])
    expected = reference.forward(LSTMSpec(H, **flags), *_keras2_to_lstm(*weights), x,
                                 initial_state=[h0, c0])
    tolerance = 1e-12 if dtype == "float64" else 2e-5
    for g, e in zip(got if isinstance(got, list) else [got], expected if isinstance(got, list) else [expected]):
        np.testing.assert_allclose(g, e, rtol=tolerance, atol=tolerance)


def test_build_initializes_as_tf_keras():
    layer = lstmgen.CuDNNLSTM(H, bias_initializer="ones", unit_forget_bias=False)
    layer.build((2, 5, C))
    kernel, recurrent, bias = layer.get_weights()
    assert kernel.shape == (C, 4 * H) and recurrent.shape == (H, 4 * H) and bias.tolist() == [1] * 8 * H
    layer = lstmgen.CuDNNLSTM(H)
    layer.build((2, 5, C))
    expected = np.zeros(8 * H)
    expected[5 * H:6 * H] = 1  # the recurrent forget slot
    np.testing.assert_array_equal(layer.get_weights()[2], expected)
    assert layer.cell.state_size == (H, H)


def test_bad_arguments_are_refused_by_name():
    for name, value in [("activation", "relu"), ("dropout", 0.1), ("use_bias", False),
                        ("time_major", True)]:
        with pytest.raises(lstmgen.SpecError, match=f"{name}=.*is not a CuDNNLSTM argument"):
            lstmgen.CuDNNLSTM(H, **{name: value})
    with pytest.raises(lstmgen.SpecError, match="kernel_initializer"):
        lstmgen.CuDNNLSTM(H, kernel_initializer="nope")
    layer = lstmgen.CuDNNLSTM(H)
    with pytest.raises(ValueError, match="masking is not supported"):
        layer(np.ones((1, 2, C)), mask=np.ones((1, 2), bool))
    with pytest.raises(ValueError, match=r"weights\[2\].*expected \(32,\)"):
        layer.set_weights([np.ones((C, 4 * H)), np.ones((H, 4 * H)), np.ones(4 * H)])


def test_stateful_states_and_reset():
    layer = lstmgen.CuDNNLSTM(H, stateful=True)
    with pytest.raises(ValueError, match="batch size"):
        layer.reset_states()
    x = np.random.default_rng(4).normal(size=(2, 3, C)).astype("float32")
    first = layer(x)
    assert np.array_equal(layer.states[0], first)
    assert not np.allclose(layer(x), first)
    layer.reset_states()
    np.testing.assert_array_equal(layer(x), first)
    with pytest.raises(AttributeError, match="must be stateful"):
        lstmgen.CuDNNLSTM(H).reset_states()


def test_config_round_trip_and_tf_keras_config():
    layer = lstmgen.CuDNNLSTM(H, name="enc", return_sequences=True, kernel_regularizer="l2",
                              recurrent_constraint={"class_name": "MaxNorm", "config": {"max_value": 2.0}})
    config = layer.get_config()
    assert lstmgen.CuDNNLSTM.from_config(config).get_config() == config
    tf_keras = {**config, "trainable": True, "dtype": "float64"}
    assert lstmgen.CuDNNLSTM.from_config(tf_keras).dtype == np.float64
    assert layer.return_sequences and layer.units == H and layer.unit_forget_bias


def test_losses_and_constraints_apply_to_cudnnlstms_own_weights():
    layer = lstmgen.CuDNNLSTM(H, bias_regularizer={"class_name": "L2", "config": {"l2": 0.5}},
                              activity_regularizer="l1", bias_constraint="non_neg")
    weights = _cudnn_weights(np.random.default_rng(5), np.float32)
    layer.set_weights(weights)
    output = layer(np.ones((2, 3, C), "float32"))
    activity, bias_penalty = layer.losses
    np.testing.assert_allclose(activity, 0.01 * np.abs(output).sum() / 2, rtol=1e-5)
    np.testing.assert_allclose(bias_penalty, 0.5 * np.square(weights[2]).sum(), rtol=1e-5)
    layer.apply_constraints()
    assert (layer.get_weights()[2] >= 0).all()
    np.testing.assert_array_equal(layer._lstm.get_weights()[2],
                                  cudnnlstm_to_lstm(*layer.get_weights())[2])


def test_reset_states_with_arrays_and_its_documented_errors():
    layer = lstmgen.CuDNNLSTM(H, stateful=True, name="enc")
    layer.build((2, 3, C))
    rng = np.random.default_rng(6)
    h, c = rng.normal(size=(2, H)).astype("float32"), rng.normal(size=(2, H)).astype("float32")
    layer.reset_states([h, c])
    np.testing.assert_array_equal(layer.states[0], h)
    np.testing.assert_array_equal(layer.states[1], c)
    with pytest.raises(ValueError, match=r"'enc'.*expected shape=\(2, 4\) but found shape=\(3, 4\)"):
        layer.reset_states([h[:1].repeat(3, 0), c])
    with pytest.raises(ValueError, match=r"'enc'.*expected dtype=float32 but found dtype=float64"):
        layer.reset_states([h.astype("float64"), c])
    with pytest.raises(ValueError, match="'enc' expects 2 states"):
        layer.reset_states([h])
