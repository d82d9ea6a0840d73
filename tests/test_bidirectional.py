"""lstmgen.Bidirectional against Keras 3's Bidirectional (torch backend, CPU) holding the same
weights, and lstmgen.Stack against its definition (layers in turn, dropout between them).

Tolerances as tests/test_layer_keras.py: float32 within rtol 2e-5, atol 1e-6; float64 within 1e-12.
Sizes are fixed (N, T, C, H) so that the few generated variants compile once.
"""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from keras_float64 import exact_float64_matmul  # noqa: E402,F401  (autouse fixture)

import lstmgen  # noqa: E402
from lstmgen import batch_threads, reference  # noqa: E402
from lstmgen.interop.cudnnlstm import cudnnlstm_to_lstm  # noqa: E402
from test_layer_keras import MASK, C, H, N, T, as_list, pytestmark, tolerances  # noqa: E402,F401

MERGE_MODES = ["concat", "sum", "mul", "ave", None]


def assert_same(ours, theirs, dtypes):
    ours, theirs = as_list(ours), as_list(theirs)
    assert len(ours) == len(theirs)
    for index, (a, b) in enumerate(zip(ours, theirs)):
        b = keras.ops.convert_to_numpy(b)
        assert a.dtype == b.dtype, (index, a.dtype, b.dtype)
        assert a.shape == b.shape, (index, a.shape, b.shape)
        np.testing.assert_allclose(a, b, err_msg=f"result {index}", **tolerances(dtypes))


def twins(rng, merge_mode="concat", dtype="float32", backward=None, **kwargs):
    """A Keras Bidirectional(LSTM) and lstmgen's, the same arguments and random weights N(0, 0.5)."""
    theirs = keras.layers.Bidirectional(
        keras.layers.LSTM(H, dtype=dtype, **kwargs), merge_mode=merge_mode, dtype=dtype,
        backward_layer=None if backward is None else keras.layers.LSTM(H, dtype=dtype, **backward))
    theirs.build((N, T, C))
    weights = [rng.normal(0.0, 0.5, w.shape).astype(dtype) for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours = lstmgen.Bidirectional(
        lstmgen.LSTM(H, dtype=dtype, **kwargs), merge_mode=merge_mode, weights=weights, dtype=dtype,
        backward_layer=None if backward is None else lstmgen.LSTM(H, dtype=dtype, **backward))
    return ours, theirs


@pytest.mark.parametrize("merge_mode", MERGE_MODES)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("return_state", [False, True])
def test_matches_keras(merge_mode, return_sequences, return_state):
    """Every merge mode and return mode, with and without a mask and an initial state."""
    rng = np.random.default_rng(MERGE_MODES.index(merge_mode) + 5 * return_sequences + 10 * return_state)
    ours, theirs = twins(rng, merge_mode, return_sequences=return_sequences,
                         return_state=return_state)
    x = rng.normal(size=(N, T, C)).astype("float32")
    initial = [rng.normal(size=(N, H)).astype("float32") for _ in range(4)]
    for mask in (None, MASK):
        for initial_state in (None, initial):
            assert_same(ours(x, mask=mask, initial_state=initial_state),
                        theirs(x, mask=mask, initial_state=initial_state), "float32")


def test_float64_layers_in_a_float32_wrapper_as_keras():
    """Keras's wrapper has its own dtype policy (float32 by default): the outputs are cast to it,
    the states keep the layers' float64."""
    rng = np.random.default_rng(1)
    theirs = keras.layers.Bidirectional(keras.layers.LSTM(H, dtype="float64", return_state=True,
                                                          return_sequences=True))
    theirs.build((N, T, C))
    weights = [rng.normal(0.0, 0.5, w.shape) for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours = lstmgen.Bidirectional(lstmgen.LSTM(H, dtype="float64", return_state=True,
                                              return_sequences=True), weights=weights)
    x = rng.normal(size=(N, T, C))
    got, want = ours(x, mask=MASK), theirs(x, mask=MASK)
    assert [g.dtype.name for g in got] == ["float32"] + ["float64"] * 4
    assert_same(got[:1], want[:1], "float32")
    assert_same(got[1:], want[1:], "float64")


@pytest.mark.parametrize("merge_mode", ["concat", None])
def test_float64_as_keras(merge_mode):
    rng = np.random.default_rng(2)
    ours, theirs = twins(rng, merge_mode, "float64", return_sequences=True, return_state=True)
    x = rng.normal(size=(N, T, C))
    assert_same(ours(x, mask=MASK), theirs(x, mask=MASK), "float64")


def test_backward_layer_given_and_wrapped_layer_going_backwards():
    """Keras allows go_backwards=True on the wrapped layer when the backward layer is given (going
    forwards, with its own arguments); the 'backward' output is still reversed."""
    rng = np.random.default_rng(3)
    ours, theirs = twins(rng, "concat", return_sequences=True, go_backwards=True,
                         backward=dict(return_sequences=True, activation="relu"))
    assert ours.forward_layer.go_backwards and not ours.backward_layer.go_backwards
    x = rng.normal(size=(N, T, C)).astype("float32")
    assert_same(ours(x, mask=MASK), theirs(x, mask=MASK), "float32")
    with pytest.raises(ValueError, match="different `go_backwards`"):
        keras.layers.Bidirectional(keras.layers.LSTM(H, go_backwards=True))
    with pytest.raises(ValueError, match="different go_backwards"):
        lstmgen.Bidirectional(lstmgen.LSTM(H, go_backwards=True))


def test_stateful_as_keras():
    """Without return_state: Keras 3.15's Bidirectional.compute_mask fails on a stateful layer
    with return_state and a mask (it multiplies a generator)."""
    rng = np.random.default_rng(4)
    ours, theirs = twins(rng, "sum", stateful=True)
    for _ in range(2):
        x = rng.normal(size=(N, T, C)).astype("float32")
        assert_same(ours(x, mask=MASK), theirs(x, mask=MASK), "float32")
    assert_same(ours.states, theirs.states, "float32")
    ours.reset_states()
    theirs.reset_states()
    x = rng.normal(size=(N, T, C)).astype("float32")
    assert_same(ours(x), theirs(x), "float32")
    with pytest.raises(AttributeError, match="must be stateful"):
        lstmgen.Bidirectional(lstmgen.LSTM(H)).reset_states()


def test_layers_are_fresh_copies_named_as_keras_names_them():
    layer = lstmgen.LSTM(H, name="enc", return_sequences=True, zero_output_for_mask=False)
    layer.build((N, T, C))
    wrapper = lstmgen.Bidirectional(layer)
    forward, backward = wrapper.forward_layer, wrapper.backward_layer
    assert (forward.name, backward.name) == ("forward_enc", "backward_enc")
    assert forward is not layer and not forward.built and not backward.built
    assert backward.go_backwards and not forward.go_backwards
    assert forward.zero_output_for_mask and backward.zero_output_for_mask  # = return_sequences
    keras_wrapper = keras.layers.Bidirectional(keras.layers.LSTM(H, name="enc", return_sequences=True))
    assert (keras_wrapper.forward_layer.name, keras_wrapper.backward_layer.name) == (forward.name,
                                                                                     backward.name)
    assert keras_wrapper.forward_layer.zero_output_for_mask


def test_training_dropout_each_direction_its_own_masks():
    """With training=True each direction draws its own masks; the output is the merge of what the
    reference computes for each direction with the masks it used (the layers' getters)."""
    wrapper = lstmgen.Bidirectional(lstmgen.LSTM(H, dropout=0.4, recurrent_dropout=0.3,
                                                 return_sequences=True), merge_mode="ave")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(N, T, C)).astype("float32")
    got = wrapper(x, mask=MASK, training=True)
    outputs = []
    for layer in (wrapper.forward_layer, wrapper.backward_layer):
        input_masks = layer.get_dropout_mask_for_cell(x[:, 0], True, 4)
        recurrent_masks = layer.get_recurrent_dropout_mask_for_cell(np.zeros((N, H)), True, 4)
        kernel, recurrent_kernel, bias = layer.get_weights()
        outputs.append(reference.forward(layer.spec, kernel, recurrent_kernel, bias, x, mask=MASK,
                                         input_masks=input_masks, recurrent_masks=recurrent_masks))
    want = (outputs[0] + outputs[1][:, ::-1]) / 2
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    forward_masks = wrapper.forward_layer.get_dropout_mask_for_cell(x[:, 0], True, 4)
    backward_masks = wrapper.backward_layer.get_dropout_mask_for_cell(x[:, 0], True, 4)
    assert not all(np.array_equal(a, b) for a, b in zip(forward_masks, backward_masks))
    assert not np.allclose(wrapper(x, mask=MASK), got)  # inference: no dropout


def test_weights_order_and_config_round_trips():
    rng = np.random.default_rng(6)
    ours, theirs = twins(rng, "mul", return_sequences=True, activation="softsign")
    for w_ours, w_theirs in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(w_ours, keras.ops.convert_to_numpy(w_theirs))
    x = rng.normal(size=(N, T, C)).astype("float32")
    for config in (ours.get_config(), theirs.get_config()):
        again = lstmgen.Bidirectional.from_config(config)
        assert again.merge_mode == "mul" and again.forward_layer.activation == "softsign"
        again.set_weights(ours.get_weights())
        np.testing.assert_array_equal(again(x, mask=MASK), ours(x, mask=MASK))
    assert lstmgen.Bidirectional.from_config(ours.get_config()).get_config() == ours.get_config()


def test_tf_keras_config_without_backward_layer():
    """tf.keras writes backward_layer only when one was given: the backward layer is then made."""
    config = {"name": "bi", "trainable": True, "dtype": "float32", "merge_mode": "sum",
              "layer": {"class_name": "LSTM", "config": {"name": "forward_lstm", "units": H,
                                                         "trainable": True, "time_major": False,
                                                         "recurrent_activation": "hard_sigmoid"}}}
    wrapper = lstmgen.Bidirectional.from_config(config)
    assert wrapper.backward_layer.go_backwards and wrapper.merge_mode == "sum"
    assert wrapper.backward_layer.recurrent_activation == "keras2_hard_sigmoid"


@pytest.mark.parametrize("arguments, error, words", [
    (dict(merge_mode="max"), ValueError, "merge_mode='max'"),
    (dict(dtype="float16"), ValueError, "dtype='float16'"),
    (dict(backward_layer="lstm"), TypeError, "backward_layer='lstm'"),
    (dict(backward_layer=lstmgen.LSTM(H, go_backwards=True, return_state=True)), ValueError,
     "return_state is False for the forward layer and True for the backward layer"),
    (dict(merge_mode="sum", backward_layer=lstmgen.LSTM(H + 1, go_backwards=True)), ValueError,
     "output 2 and 3 features"),
    (dict(weights=[np.ones((C, 4 * H))]), ValueError, "got 1 arrays, expected 6"),
])
def test_bad_arguments(arguments, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        lstmgen.Bidirectional(lstmgen.LSTM(H), **arguments)


def test_only_lstm_layers():
    with pytest.raises(TypeError, match="expected an lstmgen.LSTM"):
        lstmgen.Bidirectional(keras.layers.LSTM(H))
    with pytest.raises(ValueError, match="GRU"):
        lstmgen.Bidirectional.from_config({"layer": {"class_name": "GRU", "config": {"units": 2}}})


@pytest.mark.parametrize("concurrent", [False, True])
def test_directions_on_two_threads_give_the_same_answer(monkeypatch, concurrent):
    """run_pair's thread (taken when both directions are worth one) changes no result."""
    monkeypatch.setattr(batch_threads, "worth_a_thread", lambda *_: concurrent)
    calls = []
    real = batch_threads.run_pair
    monkeypatch.setattr(batch_threads, "run_pair",
                        lambda *args: calls.append(args[2]) or real(*args))
    rng = np.random.default_rng(7)
    ours, theirs = twins(rng, "concat", return_sequences=True, return_state=True)
    x = rng.normal(size=(N, T, C)).astype("float32")
    assert_same(ours(x, mask=MASK), theirs(x, mask=MASK), "float32")
    assert calls == [concurrent]


def test_run_pair_raises_the_second_jobs_error_after_both_ran():
    ran = []

    def second():
        raise RuntimeError("second failed")

    with pytest.raises(RuntimeError, match="second failed"):
        batch_threads.run_pair(lambda: ran.append(1), second, True)
    assert ran == [1]
    assert batch_threads.run_pair(lambda: 1, lambda: 2, True) == (1, 2)


def stack_of_three(dropout=0.0, return_state=False, seed=None):
    return lstmgen.Stack([
        lstmgen.LSTM(H, return_sequences=True, return_state=return_state, seed=1),
        lstmgen.Bidirectional(lstmgen.LSTM(H, return_sequences=True, return_state=return_state)),
        lstmgen.LSTM(H, return_state=return_state)], dropout=dropout, seed=seed)


def test_stack_runs_its_layers_in_turn_with_the_mask_and_initial_states():
    rng = np.random.default_rng(8)
    stack = stack_of_three(return_state=True)
    x = rng.normal(size=(N, T, C)).astype("float32")
    stack.layers[0].build((N, T, C))
    stack.layers[1].build((N, T, H))
    stack.layers[2].build((N, T, 2 * H))
    initial = [None, [rng.normal(size=(N, H)).astype("float32") for _ in range(4)], None]
    output, states = stack(x, mask=MASK, initial_state=initial)
    y, h0, c0 = stack.layers[0](x, mask=MASK)
    y, *bidirectional_states = stack.layers[1](y, mask=MASK, initial_state=initial[1])
    want, h2, c2 = stack.layers[2](y, mask=MASK)
    np.testing.assert_array_equal(output, want)
    assert len(states) == 3 and [len(s) for s in states] == [2, 4, 2]
    for got, expected in zip(states[0] + states[1] + states[2], [h0, c0] + bidirectional_states + [h2, c2]):
        np.testing.assert_array_equal(got, expected)


class SpyLSTM(lstmgen.LSTM):
    """An LSTM that records the inputs it is called with."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def __call__(self, inputs, *args, **kwargs):
        self.seen.append(inputs)
        return super().__call__(inputs, *args, **kwargs)


def test_stack_dropout_between_layers_in_training_only():
    """Inference ignores dropout; training drops about the rate of each but the last layer's
    output elementwise, scales the rest by 1 / (1 - rate), and leaves the last output alone."""
    rng = np.random.default_rng(9)
    x = rng.normal(size=(N, T, C)).astype("float32")
    layers = [lstmgen.LSTM(H, return_sequences=True), SpyLSTM(H, return_sequences=True), SpyLSTM(H)]
    stack = lstmgen.Stack(layers, dropout=0.5, seed=3)
    first = layers[0](x)
    np.testing.assert_array_equal(stack(x), layers[2](layers[1](first)))
    np.testing.assert_array_equal(layers[1].seen[0], first)
    output = stack(x, training=True)
    fed_1, fed_2 = layers[1].seen[-1], layers[2].seen[-1]
    second = layers[1](fed_1)  # what layer 1 gave in that call (it has no dropout of its own)
    for fed, previous in ((fed_1, first), (fed_2, second)):
        kept = fed != 0
        assert 0.25 < kept.mean() < 0.75
        np.testing.assert_allclose(fed[kept], 2 * previous[kept], rtol=1e-6)
    np.testing.assert_array_equal(output, layers[2](fed_2))


@pytest.mark.parametrize("layers, words", [
    ([], "at least one layer"),
    ([lstmgen.LSTM(H), lstmgen.LSTM(H)], "every layer but the last must return one sequence"),
    ([lstmgen.Bidirectional(lstmgen.LSTM(H, return_sequences=True), merge_mode=None),
      lstmgen.LSTM(H)], "a merge_mode for a Bidirectional"),
    ([lstmgen.LSTM(H, return_sequences=True, return_state=True), lstmgen.LSTM(H)],
     "return_state=False, layers\\[0\\] has True"),
    ([lstmgen.LSTM(H, return_sequences=True, time_major=True), lstmgen.LSTM(H)], "time_major"),
    (["lstm"], "layers\\[0\\]='lstm'"),
])
def test_stack_bad_layers(layers, words):
    with pytest.raises((ValueError, TypeError), match=words):
        lstmgen.Stack(layers)
    with pytest.raises(lstmgen.SpecError, match=r"dropout=1.0 for Stack: must be a number in \[0, 1\)"):
        lstmgen.Stack([lstmgen.LSTM(H)], dropout=1.0)


def test_losses_as_keras():
    """The forward layer's penalties (activity, then weights), then the backward layer's."""
    rng = np.random.default_rng(10)
    ours, theirs = twins(rng, "concat", return_sequences=True, kernel_regularizer="l2",
                         activity_regularizer={"class_name": "L1", "config": {"l1": 0.5}},
                         bias_regularizer="l1")
    x = rng.normal(size=(N, T, C)).astype("float32")
    ours(x)
    theirs(x)
    np.testing.assert_allclose(ours.losses, [float(keras.ops.convert_to_numpy(v)) for v in theirs.losses],
                               rtol=1e-5)
    assert len(ours.losses) == 6


def test_cudnnlstm_layers_as_keras_with_converted_weights():
    """Bidirectional(CuDNNLSTM) (tf.keras's weights, kept as given) against Keras 3's
    Bidirectional(LSTM) holding the weights cudnnlstm_to_lstm converts: outputs, states, initial
    states and losses (the L2 of a kernel is the same in either layout); config round trip."""
    rng = np.random.default_rng(11)
    arguments = dict(return_sequences=True, return_state=True, kernel_regularizer="l2",
                     activity_regularizer={"class_name": "L1", "config": {"l1": 0.5}})
    ours = lstmgen.Bidirectional(lstmgen.CuDNNLSTM(H, target="cpu", **arguments), merge_mode="sum")
    weights = [rng.normal(0, 0.5, s).astype("float32")
               for s in ((C, 4 * H), (H, 4 * H), (8 * H,)) * 2]
    ours.set_weights(weights)
    theirs = keras.layers.Bidirectional(keras.layers.LSTM(H, **arguments), merge_mode="sum")
    theirs.build((N, T, C))
    theirs.set_weights([*cudnnlstm_to_lstm(*weights[:3]), *cudnnlstm_to_lstm(*weights[3:])])
    assert isinstance(ours.backward_layer, lstmgen.CuDNNLSTM)
    assert ours.backward_layer.go_backwards and ours.backward_layer.target == "cpu"
    for got, given in zip(ours.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(got, given)
    x = rng.normal(size=(N, T, C)).astype("float32")
    states = [rng.normal(size=(N, H)).astype("float32") for _ in range(4)]
    assert_same(ours(x, initial_state=states), theirs(x, initial_state=states), "float32")
    np.testing.assert_allclose(ours.losses, [float(keras.ops.convert_to_numpy(v)) for v in theirs.losses],
                               rtol=1e-5)
    config = ours.get_config()
    assert config["layer"]["class_name"] == config["backward_layer"]["class_name"] == "CuDNNLSTM"
    again = lstmgen.Bidirectional.from_config(config)
    assert again.get_config() == config and isinstance(again.forward_layer, lstmgen.CuDNNLSTM)
    with pytest.raises(ValueError, match="_cu_dnnlstm'.*masking is not supported"):
        ours(x, mask=np.ones((N, T), bool))
