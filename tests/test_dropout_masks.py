"""The layer's dropout masks: get_dropout_mask_for_cell, get_recurrent_dropout_mask_for_cell and
their resets, with tf.keras's DropoutRNNCellMixin contract, and the masks a training call uses.

Contract (tf.keras's docs and source): None when the rate is 0; with count 1 one array shaped like
`inputs`, else a list of `count`; in training 0 or 1 / (1 - rate), not in training ones; cached
and returned again until reset; the layer resets them at each call. lstmgen adds: the layer's
dtype, read-only arrays, and the count the layer asks for (4 with implementation 1, which
recurrent_dropout forces, else 1). Neither Keras nor PyTorch is needed here.
"""

import numpy as np
import pytest

import lstmgen
from lstmgen import reference

N, T, C, H = 6, 5, 3, 4
RATES = dict(dropout=0.25, recurrent_dropout=0.5)


def step_input(seed=0, n=N, features=C):
    return np.random.default_rng(seed).normal(size=(n, features))


def getters(layer):
    return {"dropout": layer.get_dropout_mask_for_cell,
            "recurrent_dropout": layer.get_recurrent_dropout_mask_for_cell}


def shape_of(getter):
    return (N, C) if getter == "dropout" else (N, H)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("count", [1, 4])
def test_rate_zero_gives_none(training, count):
    only_input = lstmgen.LSTM(H, dropout=0.3)
    only_recurrent = lstmgen.LSTM(H, recurrent_dropout=0.3)
    assert only_input.get_recurrent_dropout_mask_for_cell(step_input(features=H), training, count) is None
    assert only_recurrent.get_dropout_mask_for_cell(step_input(), training, count) is None
    assert lstmgen.LSTM(H).get_dropout_mask_for_cell(step_input(), training, count) is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["dropout", "recurrent_dropout"])
def test_training_masks_are_inverted_dropout_in_the_layer_dtype(name, dtype):
    layer = lstmgen.LSTM(H, dtype=dtype, seed=1, **RATES)
    n = 20000  # enough rows that the dropped fraction is within 0.01 of the rate
    features = C if name == "dropout" else H
    mask = getters(layer)[name](step_input(2, n, features), True)
    rate = RATES[name]
    assert isinstance(mask, np.ndarray) and mask.shape == (n, features) and mask.dtype == dtype
    assert set(np.unique(mask)) == {0.0, np.dtype(dtype).type(1.0 / (1.0 - rate))}
    assert abs(np.mean(mask == 0.0) - rate) < 0.01


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["dropout", "recurrent_dropout"])
def test_masks_outside_training_are_ones(name, dtype):
    layer = lstmgen.LSTM(H, dtype=dtype, **RATES)
    masks = getters(layer)[name](step_input(3, features=shape_of(name)[1]), False, 4)
    assert len(masks) == 4
    for mask in masks:
        assert mask.shape == shape_of(name) and mask.dtype == dtype
        np.testing.assert_array_equal(mask, np.ones(shape_of(name)))


@pytest.mark.parametrize("name", ["dropout", "recurrent_dropout"])
def test_count_one_gives_an_array_and_count_four_a_list_of_different_masks(name):
    inputs = step_input(4, features=shape_of(name)[1])
    one = getters(lstmgen.LSTM(H, seed=5, **RATES))[name](inputs, True, 1)
    assert isinstance(one, np.ndarray) and one.shape == inputs.shape
    four = getters(lstmgen.LSTM(H, seed=5, **RATES))[name](step_input(40, 200, inputs.shape[1]), True, 4)
    assert isinstance(four, list) and len(four) == 4
    assert all(m.shape == (200, inputs.shape[1]) for m in four)
    # Independent draws: 200 x features entries never coincide in practice.
    assert all(not np.array_equal(four[a], four[b]) for a in range(4) for b in range(a + 1, 4))


def test_count_must_be_positive():
    with pytest.raises(ValueError, match="count=0"):
        lstmgen.LSTM(H, dropout=0.5).get_dropout_mask_for_cell(step_input(), True, 0)


def test_masks_are_cached_until_reset():
    layer = lstmgen.LSTM(H, seed=6, **RATES)
    x, h = step_input(7, 100, C), step_input(8, 100, H)
    first = layer.get_dropout_mask_for_cell(x, True, 4)
    first_recurrent = layer.get_recurrent_dropout_mask_for_cell(h, True)
    # The cache answers whatever the later arguments (tf.keras's ContextValueCache.setdefault).
    for again in (layer.get_dropout_mask_for_cell(x, True, 4),
                  layer.get_dropout_mask_for_cell(x[:2], False, 1)):
        assert isinstance(again, list) and len(again) == 4
        for a, b in zip(again, first):
            np.testing.assert_array_equal(a, b)

    layer.reset_dropout_mask()
    fresh = layer.get_dropout_mask_for_cell(x, True, 4)
    assert not any(np.array_equal(a, b) for a, b in zip(fresh, first))
    # Each reset forgets only its own mask.
    np.testing.assert_array_equal(layer.get_recurrent_dropout_mask_for_cell(h, True), first_recurrent)
    layer.reset_recurrent_dropout_mask()
    assert not np.array_equal(layer.get_recurrent_dropout_mask_for_cell(h, True), first_recurrent)
    np.testing.assert_array_equal(layer.get_dropout_mask_for_cell(x, True, 4)[0], fresh[0])


def test_returned_masks_cannot_be_changed():
    layer = lstmgen.LSTM(H, dropout=0.5)
    mask = layer.get_dropout_mask_for_cell(step_input(), True)
    with pytest.raises(ValueError, match="read-only"):
        mask[0, 0] = 3.0
    layer.reset_dropout_mask()
    masks = layer.get_dropout_mask_for_cell(step_input(), True, 4)
    masks.append(None)  # the caller's list, not the cache
    assert len(layer.get_dropout_mask_for_cell(step_input(), True, 4)) == 4


def random_layer(data_seed, **kwargs):
    """A float64 layer with random weights, and the generator that made them (for its inputs)."""
    rng = np.random.default_rng(data_seed)
    layer = lstmgen.LSTM(H, dtype="float64", return_sequences=True, return_state=True, **kwargs)
    layer.set_weights([rng.normal(0.0, 0.5, shape) for shape in [(C, 4 * H), (H, 4 * H), (4 * H,)]])
    return layer, rng


def forward_by_hand(layer, x, **kwargs):
    kernel, recurrent_kernel, bias = layer.get_weights()
    return reference.forward(layer.spec, kernel, recurrent_kernel, bias, x, **kwargs)


def assert_close(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)


def used_masks(layer, step, h):
    """The masks the layer's last call drew: the getters answer from their cache, whatever count."""
    return {"input_masks": layer.get_dropout_mask_for_cell(step, True),
            "recurrent_masks": layer.get_recurrent_dropout_mask_for_cell(h, True)}


@pytest.mark.parametrize("kwargs, four", [
    pytest.param(dict(dropout=0.4), False, id="implementation-2"),
    pytest.param(dict(dropout=0.4, implementation=1), True, id="implementation-1"),
    # recurrent_dropout forces implementation 1, as in Keras 3.
    pytest.param(dict(recurrent_dropout=0.3, time_major=True), True, id="recurrent-time-major"),
    pytest.param(dict(dropout=0.4, recurrent_dropout=0.3, go_backwards=True), True, id="both"),
])
def test_a_training_call_uses_exactly_the_masks_the_getters_return(kwargs, four):
    layer, rng = random_layer(9, seed=10, **kwargs)
    x = rng.normal(size=(T, N, C) if layer.time_major else (N, T, C))
    step = x[0] if layer.time_major else x[:, 0]
    mask = rng.random((N, T)) > 0.3
    initial_state = [rng.normal(size=(N, H)) for _ in range(2)]
    got = layer(x, mask=mask, initial_state=initial_state, training=True)

    used = used_masks(layer, step, initial_state[0])
    for masks, rate, features in ((used["input_masks"], layer.dropout, C),
                                  (used["recurrent_masks"], layer.recurrent_dropout, H)):
        assert (masks is None) == (rate == 0)
        if masks is not None:
            assert isinstance(masks, list) == four
            assert np.shape(masks) == ((4, N, features) if four else (N, features))
    expected = forward_by_hand(layer, x, mask=mask, initial_state=initial_state, **used)
    assert_close(got, expected)
    # The masks matter: without them the result differs.
    plain = forward_by_hand(layer, x, mask=mask, initial_state=initial_state)
    assert not np.allclose(got[0], plain[0])

    # The next call resets and draws anew: its own masks explain its result.
    again = layer(x, mask=mask, initial_state=initial_state, training=True)
    fresh = used_masks(layer, step, initial_state[0])
    assert any(m is not None and not np.array_equal(m, used[k]) for k, m in fresh.items())
    assert_close(again, forward_by_hand(layer, x, mask=mask, initial_state=initial_state, **fresh))


def test_a_call_discards_masks_drawn_before_it():
    layer, rng = random_layer(11, seed=12, dropout=0.5)
    x = rng.normal(size=(N, T, C))
    before = layer.get_dropout_mask_for_cell(x[:, 0], True)
    layer(x)  # inference resets too, and draws nothing
    after = layer.get_dropout_mask_for_cell(x[:, 0], True)
    assert not np.array_equal(before, after)


def test_seeded_layers_draw_the_same_masks():
    results, masks = [], []
    for seed in (13, 13, 14):
        layer, rng = random_layer(15, seed=seed, dropout=0.5)
        x = rng.normal(size=(N, T, C))
        results.append(layer(x, training=True)[0])
        masks.append(layer.get_dropout_mask_for_cell(x[:, 0], True))
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(masks[0], masks[1])
    assert not np.array_equal(masks[0], masks[2])
