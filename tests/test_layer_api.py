"""The layer's Keras surface beyond calling it: properties, get_initial_state, get/from_config.

Expected values come from the documented contract (the constructor's arguments), not from
the implementation; neither Keras nor PyTorch is needed here.
"""

import numpy as np
import pytest

import lstmgen
from lstmgen import constraints, initializers, regularizers

ARGUMENTS = dict(
    units=5, activation="softsign", recurrent_activation="hard_sigmoid", use_bias=True,
    kernel_initializer={"class_name": "RandomNormal", "config": {"mean": 0.5, "stddev": 2.0, "seed": 3}},
    recurrent_initializer="identity", bias_initializer="ones", unit_forget_bias=False,
    kernel_regularizer="l2", recurrent_regularizer={"class_name": "L1", "config": {"l1": 0.25}},
    bias_regularizer=None, activity_regularizer="l1l2", kernel_constraint="max_norm",
    recurrent_constraint="non_neg", bias_constraint=None, dropout=0.25, recurrent_dropout=0.5,
    implementation=1, return_sequences=True, return_state=True, go_backwards=True, stateful=False,
    time_major=True, unroll=False, zero_output_for_mask=True)


@pytest.fixture
def layer():
    return lstmgen.LSTM(name="encoder", **ARGUMENTS)


@pytest.mark.parametrize("name", ["units", "activation", "recurrent_activation", "use_bias",
                                  "unit_forget_bias", "dropout", "recurrent_dropout", "implementation",
                                  "return_sequences", "return_state", "go_backwards", "stateful",
                                  "time_major", "unroll", "zero_output_for_mask"])
def test_plain_properties_equal_the_constructor_values(layer, name):
    assert getattr(layer, name) == ARGUMENTS[name]


def test_keras_objects_are_lstmgen_objects_that_serialize_back(layer):
    assert layer.kernel_initializer == initializers.get(ARGUMENTS["kernel_initializer"], "k")
    assert layer.kernel_initializer.to_keras() == {
        "class_name": "RandomNormal", "config": {"mean": 0.5, "stddev": 2.0, "seed": 3}}
    assert layer.recurrent_initializer.class_name == "Identity"
    assert layer.bias_initializer.class_name == "Ones"
    assert layer.kernel_regularizer == regularizers.get("l2", "k")
    assert layer.recurrent_regularizer.to_keras() == {"class_name": "L1", "config": {"l1": 0.25}}
    assert layer.bias_regularizer is None and layer.bias_constraint is None
    assert layer.activity_regularizer.class_name == "L1L2"
    assert layer.kernel_constraint == constraints.get("max_norm", "k")
    assert layer.recurrent_constraint.class_name == "NonNeg"


def test_properties_are_read_only(layer):
    with pytest.raises(AttributeError):
        layer.units = 7
    assert layer.units == 5


def test_get_initial_state_is_zeros_for_the_batch(layer):
    x = np.ones((6, 3, 2))  # time-major: T=6, N=3
    h, c = layer.get_initial_state(x)
    for state in (h, c):
        assert state.shape == (3, 5) and state.dtype == np.float32 and not state.any()
    h, _ = lstmgen.LSTM(4, dtype="float64").get_initial_state(np.ones((2, 7, 3)))
    assert h.shape == (2, 4) and h.dtype == np.float64
    with pytest.raises(ValueError, match="3 dimensions"):
        layer.get_initial_state(np.ones((3, 2)))


def test_config_round_trip(layer):
    config = layer.get_config()
    assert config["name"] == "encoder" and config["units"] == 5
    again = lstmgen.LSTM.from_config(config)
    assert again.spec == layer.spec and again.name == "encoder"
    assert again.get_config() == config


def test_from_config_accepts_keras_configs():
    keras3 = {"name": "lstm_7", "trainable": True, "units": 3, "return_sequences": True,
              "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float64"},
                        "registered_name": None},
              "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                                     "config": {"seed": None}, "registered_name": None}}
    layer = lstmgen.LSTM.from_config(keras3)
    assert (layer.name, layer.units, layer.return_sequences, layer.dtype) == ("lstm_7", 3, True, np.float64)
    tf_keras = {"name": "lstm", "trainable": True, "units": 2, "time_major": True, "implementation": 2,
                "recurrent_activation": "hard_sigmoid", "dtype": "float32"}
    layer = lstmgen.LSTM.from_config(tf_keras)
    assert layer.time_major and layer.recurrent_activation == "keras2_hard_sigmoid"
