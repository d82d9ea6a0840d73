"""LSTMSpec: validation of every field, Keras 3 / tf.keras configs, JSON round trip, injection.

GPU-free and Numba-free. Keras (torch backend) is only the oracle for defaults and configs.
"""

import dataclasses
import inspect
import json
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmgen import LSTMSpec, SpecError, constraints, initializers, regularizers
from lstmgen.activations import ACTIVATIONS, ALIASES, NOT_ELEMENTWISE
from lstmgen.spec import field_names

os.environ.setdefault("KERAS_BACKEND", "torch")

FIELDS = field_names()
STRING_FIELDS = ("activation", "recurrent_activation", "dtype", "use_cudnn")
OBJECT_FIELDS = {
    "kernel_initializer": initializers, "recurrent_initializer": initializers,
    "bias_initializer": initializers,
    "kernel_regularizer": regularizers, "recurrent_regularizer": regularizers,
    "bias_regularizer": regularizers, "activity_regularizer": regularizers,
    "kernel_constraint": constraints, "recurrent_constraint": constraints,
    "bias_constraint": constraints,
}
BOOL_FIELDS = ("use_bias", "unit_forget_bias", "return_sequences", "return_state", "go_backwards",
               "stateful", "time_major", "unroll", "zero_output_for_mask")
SIZE_FIELDS = ("input_dim", "batch_size", "timesteps")


def _keras():
    return pytest.importorskip("keras")


class Bad:
    """An invalid value; `reported` is the value the error names when it differs (nested configs)."""

    def __init__(self, field, value, reported=..., reported_field=None):
        self.field, self.value = field, value
        self.reported = value if reported is ... else reported
        self.reported_field = reported_field or field

    def __repr__(self):
        return f"{self.field}={self.value!r}"


INVALID = [
    Bad("units", 0), Bad("units", -3), Bad("units", 2.0), Bad("units", True), Bad("units", "4"),
    Bad("units", None), Bad("units", math.nan), Bad("units", [4]),
    *[Bad(f, v) for f in ("activation", "recurrent_activation")
      for v in ("tanhh", "Tanh", "", 3, True, ["tanh"], {"class_name": "tanh"},
                "glu", "softmax", "log_softmax", "sparsemax", "threshold", "keras.activations.tanh")],
    *[Bad(f, v) for f in BOOL_FIELDS for v in (1, 0, "True", None, np.bool_(True), 1.0)],
    *[Bad(f, v) for f in ("dropout", "recurrent_dropout")
      for v in (1.0, 1, 1.5, -0.1, -1, math.nan, math.inf, -math.inf, True, False, "0.5", None)],
    Bad("seed", -1), Bad("seed", 1.0), Bad("seed", True), Bad("seed", "7"), Bad("seed", math.nan),
    Bad("implementation", 3), Bad("implementation", 0), Bad("implementation", True),
    Bad("implementation", "2"), Bad("implementation", None),
    Bad("use_cudnn", "yes"), Bad("use_cudnn", "Auto"), Bad("use_cudnn", 1), Bad("use_cudnn", 0),
    Bad("use_cudnn", None), Bad("use_cudnn", "true"),
    Bad("dtype", "float16"), Bad("dtype", "bfloat16"), Bad("dtype", "mixed_float16"),
    Bad("dtype", "int32"), Bad("dtype", np.float32), Bad("dtype", None), Bad("dtype", 32),
    *[Bad(f, v) for f in SIZE_FIELDS for v in (0, -1, 2.0, True, "8")],
    *[Bad(f, v) for f in OBJECT_FIELDS
      for v in ("nope", 3, True, ["l2"], "GlorotUniform()", "glorot_uniform()")],
    *[Bad(f, {"class_name": "Nope", "config": {}}, "Nope", f"{f}.class_name") for f in OBJECT_FIELDS],
    Bad("kernel_initializer", None),
    Bad("kernel_initializer", {"class_name": "Constant", "config": {"value": "x"}}, "x",
        "kernel_initializer.value"),
    Bad("recurrent_initializer", {"class_name": "Orthogonal", "config": {"gain": math.nan}},
        math.nan, "recurrent_initializer.gain"),
    Bad("kernel_initializer", {"class_name": "RandomNormal", "config": {"stddev": -1.0}}, -1.0,
        "kernel_initializer.stddev"),
    Bad("kernel_initializer", {"class_name": "GlorotUniform", "config": {"seed": -5}}, -5,
        "kernel_initializer.seed"),
    Bad("kernel_initializer", {"class_name": "GlorotUniform", "config": {"seed": True}}, True,
        "kernel_initializer.seed"),
    Bad("kernel_initializer", {"class_name": "VarianceScaling", "config": {"scale": 0.0}}, 0.0,
        "kernel_initializer.scale"),
    Bad("kernel_initializer", {"class_name": "VarianceScaling", "config": {"mode": "fan_sum"}},
        "fan_sum", "kernel_initializer.mode"),
    Bad("kernel_initializer", {"class_name": "GlorotUniform", "config": {"scale": 2.0}}, "scale",
        "kernel_initializer.config"),
    Bad("kernel_initializer", {"class_name": "Zeros", "config": None}, None,
        "kernel_initializer.config"),
    Bad("kernel_initializer", {"class_name": "Zeros", "config": {}, "module": "os"}, "os",
        "kernel_initializer.module"),
    Bad("bias_initializer", {"class_name": "Zeros", "config": {}, "registered_name": "Ones"}, "Ones",
        "bias_initializer.registered_name"),
    Bad("kernel_regularizer", {"class_name": "L2", "config": {"l2": -0.1}}, -0.1,
        "kernel_regularizer.l2"),
    Bad("kernel_regularizer", {"class_name": "L1", "config": {"l1": math.inf}}, math.inf,
        "kernel_regularizer.l1"),
    Bad("bias_regularizer", {"class_name": "OrthogonalRegularizer", "config": {"mode": "diag"}},
        "diag", "bias_regularizer.mode"),
    Bad("kernel_constraint", {"class_name": "MaxNorm", "config": {"axis": "0"}}, "0",
        "kernel_constraint.axis"),
    Bad("kernel_constraint", {"class_name": "MaxNorm", "config": {"axis": []}}, [],
        "kernel_constraint.axis"),
    Bad("recurrent_constraint", {"class_name": "MinMaxNorm", "config": {"rate": 1.5}}, 1.5,
        "recurrent_constraint.rate"),
]


def _build(bad):
    if bad.field == "units":
        return LSTMSpec(bad.value)
    return LSTMSpec(7, **{bad.field: bad.value})


@pytest.mark.parametrize("bad", INVALID, ids=repr)
def test_invalid_value_raises_spec_error_naming_field_value_and_layer(bad):
    with pytest.raises(SpecError) as info:
        _build(bad)
    err, msg = info.value, str(info.value)
    assert isinstance(err, ValueError)
    assert err.field == bad.reported_field
    assert bad.reported_field in msg
    assert repr(bad.reported) in msg
    assert "LSTM(units=" in msg


def test_error_message_has_the_documented_shape():
    with pytest.raises(SpecError) as info:
        LSTMSpec(64, recurrent_dropout=1.5)
    assert str(info.value) == "recurrent_dropout=1.5 for LSTM(units=64): must be a number in [0, 1)"


@pytest.mark.parametrize("name", NOT_ELEMENTWISE)
def test_non_elementwise_activations_say_why(name):
    with pytest.raises(SpecError, match="not elementwise"):
        LSTMSpec(3, activation=name)


@pytest.mark.parametrize("name", ["unitz", "kernel_initialiser", "cell", "name", "'; import os"])
def test_unknown_keyword_is_rejected_by_name_listing_known_ones(name):
    with pytest.raises(SpecError) as info:
        LSTMSpec(5, **{name: 1})
    msg = str(info.value)
    assert info.value.field == name
    assert msg.startswith(f"{name}=1 for LSTM(units=5)")
    for known in FIELDS:
        assert known in msg


def test_unknown_keyword_is_rejected_by_replace_from_dict_and_keras_config():
    for make in (lambda: LSTMSpec(2).replace(bogus=1),
                 lambda: LSTMSpec.from_dict({"units": 2, "bogus": 1}),
                 lambda: LSTMSpec.from_keras_config({"units": 2, "bogus": 1})):
        with pytest.raises(SpecError, match="bogus"):
            make()


def test_from_dict_and_from_json_reject_non_specs():
    with pytest.raises(SpecError, match="units"):
        LSTMSpec.from_dict({"activation": "tanh"})
    with pytest.raises(SpecError, match="JSON object"):
        LSTMSpec.from_dict([("units", 2)])
    with pytest.raises(SpecError, match="JSON object"):
        LSTMSpec.from_json("[1, 2]")
    with pytest.raises(SpecError, match="not valid JSON"):
        LSTMSpec.from_json("{units: 4")
    with pytest.raises(SpecError, match="config"):
        LSTMSpec.from_keras_config("units=4")


def test_valid_values_are_normalized():
    spec = LSTMSpec(np.int64(8), dropout=0, recurrent_dropout=np.float64(0.25), seed=np.int32(0),
                    activation="swish", recurrent_activation="hard_swish", input_dim=np.int16(3))
    assert (spec.units, spec.dropout, spec.recurrent_dropout, spec.seed) == (8, 0.0, 0.25, 0)
    assert type(spec.units) is int and type(spec.seed) is int and type(spec.input_dim) is int
    assert type(spec.dropout) is float and type(spec.recurrent_dropout) is float
    assert (spec.activation, spec.recurrent_activation) == ("silu", "hard_silu")
    assert LSTMSpec(2, activation=None).activation == "linear"


def test_dropout_just_below_one_is_valid():
    assert LSTMSpec(2, dropout=math.nextafter(1.0, 0.0)).dropout < 1.0


# Foreign scalar types a caller easily passes (numpy scalars, dtypes, whole floats). Each must be
# either rejected or normalized: a spec that is accepted must equal, hash and serialize like the
# plain-Python spec, or dict lookups and the spec hash silently disagree.
FOREIGN = [
    ("units", np.int64(4), 4),
    ("seed", np.uint8(3), 3),
    ("dropout", np.float32(0.5), 0.5),
    ("implementation", np.int64(1), 1),
    ("implementation", 2.0, 2),
    ("dtype", np.dtype("float32"), "float32"),
    ("dtype", np.array("float64"), "float64"),
    ("use_cudnn", np.array(["auto"]), "auto"),
    ("use_cudnn", np.str_("auto"), "auto"),
]


@pytest.mark.parametrize("field,value,plain", FOREIGN, ids=[f"{f}={v!r}" for f, v, _ in FOREIGN])
def test_foreign_scalars_are_rejected_or_normalized(field, value, plain):
    units = value if field == "units" else 4
    kwargs = {} if field == "units" else {field: value}
    try:
        spec = LSTMSpec(units, **kwargs)
    except SpecError:
        return
    expected = LSTMSpec(4, **({} if field == "units" else {field: plain}))
    assert isinstance(getattr(spec, field), type(plain))
    assert spec == expected
    assert hash(spec) == hash(expected)
    assert spec.to_json() == expected.to_json()
    assert spec.hash == expected.hash


def test_dtype_is_stored_as_the_exact_registry_string():
    """dtype is pasted into generated code, so a str subclass must not survive validation."""

    class Sneaky(str):
        def __str__(self):
            return "float32\nimport os"

    try:
        spec = LSTMSpec(4, dtype=Sneaky("float32"))
    except SpecError:
        return
    assert type(spec.dtype) is str
    assert str(spec.dtype) == "float32"


def test_defaults_equal_keras_3_lstm_defaults():
    keras = _keras()
    ours = LSTMSpec(4)
    theirs = LSTMSpec.from_keras_config(keras.layers.LSTM(4).get_config())
    for name in FIELDS:
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours == theirs and ours.to_json() == theirs.to_json()


def test_defaults_equal_keras_constructor_signature():
    keras = _keras()
    params = inspect.signature(keras.layers.LSTM.__init__).parameters
    defaults = LSTMSpec(4)
    shared = [n for n in params if n in FIELDS and n != "units"]
    assert len(shared) >= 20
    for name in shared:
        keras_default = params[name].default
        ours = getattr(defaults, name)
        if name in OBJECT_FIELDS:
            assert OBJECT_FIELDS[name].get(keras_default, name) == ours, name
        else:
            assert keras_default == ours and type(keras_default) is type(ours), name


def _keras_activations():
    keras = _keras()
    names = []
    for name in sorted(ACTIVATIONS) + sorted(a for a in ALIASES if a):
        try:
            keras.activations.get(name)
        except ValueError:
            continue
        names.append(name)
    return names


def test_every_activation_keras_shares_with_the_registry_round_trips():
    keras = _keras()
    names = _keras_activations()
    assert "keras2_hard_sigmoid" not in names and len(names) >= 26
    for i, name in enumerate(names):
        other = names[(i + 7) % len(names)]
        cfg = keras.layers.LSTM(3, activation=name, recurrent_activation=other).get_config()
        spec = LSTMSpec.from_keras_config(cfg)
        assert spec == LSTMSpec(3, activation=name, recurrent_activation=other), name
        assert spec.activation == ALIASES.get(name, name)


def _keras_cases():
    keras = _keras()
    ki, kr, kc = keras.initializers, keras.regularizers, keras.constraints
    return [
        (dict(kernel_initializer=ki.HeNormal(seed=5), recurrent_initializer=ki.Orthogonal(gain=2.0, seed=7),
              bias_initializer=ki.Constant(0.5)),
         dict(kernel_initializer={"class_name": "HeNormal", "config": {"seed": 5}},
              recurrent_initializer={"class_name": "Orthogonal", "config": {"gain": 2.0, "seed": 7}},
              bias_initializer=initializers.Constant(0.5))),
        (dict(kernel_initializer=ki.VarianceScaling(scale=2.0, mode="fan_out", distribution="uniform", seed=1),
              recurrent_initializer=ki.RandomNormal(mean=1.0, stddev=0.5, seed=0),
              bias_initializer=ki.RandomUniform(-1.0, 2.0, seed=3)),
         dict(kernel_initializer=initializers.VarianceScaling(2.0, "fan_out", "uniform", 1),
              recurrent_initializer=initializers.RandomNormal(1.0, 0.5, 0),
              bias_initializer=initializers.RandomUniform(-1.0, 2.0, 3))),
        (dict(kernel_initializer="lecun_uniform", recurrent_initializer="glorot_normal",
              bias_initializer="ones"),
         dict(kernel_initializer="LecunUniform", recurrent_initializer="GlorotNormal",
              bias_initializer="Ones")),
        (dict(kernel_initializer=ki.TruncatedNormal(0.5, 0.25, seed=9), recurrent_initializer="identity"),
         dict(kernel_initializer=initializers.TruncatedNormal(0.5, 0.25, 9),
              recurrent_initializer=initializers.Identity())),
        (dict(kernel_regularizer=kr.L1L2(0.125, 0.25), recurrent_regularizer=kr.L1(0.5),
              bias_regularizer=kr.OrthogonalRegularizer(0.5, "columns"), activity_regularizer="l2"),
         dict(kernel_regularizer=regularizers.L1L2(0.125, 0.25), recurrent_regularizer=regularizers.L1(0.5),
              bias_regularizer=regularizers.OrthogonalRegularizer(0.5, "columns"),
              activity_regularizer=regularizers.L2())),
        (dict(kernel_constraint=kc.MaxNorm(3.0, axis=1), recurrent_constraint=kc.MinMaxNorm(0.5, 2.0, 0.5, axis=[0, 1]),
              bias_constraint="non_neg"),
         dict(kernel_constraint=constraints.MaxNorm(3.0, 1),
              recurrent_constraint=constraints.MinMaxNorm(0.5, 2.0, 0.5, (0, 1)),
              bias_constraint=constraints.NonNeg())),
        (dict(kernel_constraint="unit_norm"), dict(kernel_constraint=constraints.UnitNorm())),
        (dict(dropout=0.25, recurrent_dropout=0.5, seed=11), dict(dropout=0.25, recurrent_dropout=0.5, seed=11)),
        (dict(return_sequences=True, return_state=True), dict(return_sequences=True, return_state=True)),
        (dict(go_backwards=True, stateful=True), dict(go_backwards=True, stateful=True)),
        (dict(unroll=True, zero_output_for_mask=True, use_bias=False, unit_forget_bias=False),
         dict(unroll=True, zero_output_for_mask=True, use_bias=False, unit_forget_bias=False)),
        (dict(use_cudnn=False), dict(use_cudnn=False)),
        (dict(use_cudnn=True), dict(use_cudnn=True)),
        (dict(dtype="float64"), dict(dtype="float64")),
    ]


def test_non_default_keras_configs_map_to_the_expected_fields():
    keras = _keras()
    for keras_kwargs, expected in _keras_cases():
        cfg = keras.layers.LSTM(6, **keras_kwargs).get_config()
        spec = LSTMSpec.from_keras_config(json.loads(json.dumps(cfg)))
        if "use_cudnn" in keras_kwargs and "use_cudnn" not in cfg:
            # Keras 3 drops use_cudnn from get_config; the spec can only keep the default.
            expected = {**expected, "use_cudnn": "auto"}
        want = LSTMSpec(6, **expected)
        for name in FIELDS:
            assert getattr(spec, name) == getattr(want, name), (keras_kwargs, name)
        assert spec.to_json() == want.to_json()


def test_keras_config_of_a_layer_in_a_model_with_a_fixed_input_shape():
    keras = _keras()
    model = keras.Sequential([keras.Input(batch_size=2, shape=(3, 5)), keras.layers.LSTM(4)])
    lstm = model.layers[-1]
    cfg = lstm.get_config()
    spec = LSTMSpec.from_keras_config(cfg)
    shape_keys = [k for k in ("batch_shape", "batch_input_shape") if k in cfg]
    if shape_keys:
        assert (spec.batch_size, spec.timesteps, spec.input_dim) == (2, 3, 5)
    else:
        assert (spec.batch_size, spec.timesteps, spec.input_dim) == (None, None, None)
    # The input layer's batch_shape, merged in, is read the Keras 3 way.
    input_cfg = model.get_config()["layers"][0]["config"]
    merged = LSTMSpec.from_keras_config({**cfg, "batch_shape": input_cfg["batch_shape"]})
    assert (merged.batch_size, merged.timesteps, merged.input_dim) == (2, 3, 5)
    assert merged == spec.replace(batch_size=2, timesteps=3, input_dim=5)


def test_keras_dtype_policy_must_be_float32_or_float64():
    policy = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "mixed_float16"},
              "registered_name": None}
    with pytest.raises(SpecError, match="dtype"):
        LSTMSpec.from_keras_config({"units": 2, "dtype": policy})
    with pytest.raises(SpecError, match="dtype"):
        LSTMSpec.from_keras_config({"units": 2, "dtype": {"class_name": "Evil", "config": {"name": "float32"}}})
    assert LSTMSpec.from_keras_config({"units": 2, "dtype": {**policy, "config": {"name": "float64"}}}).dtype \
        == "float64"


def _tf_keras_config(**changes):
    """What tf.keras 2.x LSTM.get_config() returns (by hand: tf.keras is not installed)."""
    cfg = {
        "name": "lstm", "trainable": True, "dtype": "float32", "batch_input_shape": [None, 10, 8],
        "return_sequences": False, "return_state": False, "go_backwards": False, "stateful": False,
        "unroll": False, "time_major": False, "units": 16, "activation": "tanh",
        "recurrent_activation": "sigmoid", "use_bias": True,
        "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
        "recurrent_initializer": {"class_name": "Orthogonal", "config": {"gain": 1.0, "seed": None}},
        "bias_initializer": {"class_name": "Zeros", "config": {}},
        "unit_forget_bias": True, "kernel_regularizer": None, "recurrent_regularizer": None,
        "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
        "recurrent_constraint": None, "bias_constraint": None, "dropout": 0.0, "recurrent_dropout": 0.0,
        "implementation": 2,
    }
    cfg.update(changes)
    return {k: v for k, v in cfg.items() if v is not ...}


def test_tf_keras_config_is_accepted():
    spec = LSTMSpec.from_keras_config(_tf_keras_config())
    assert spec == LSTMSpec(16, batch_size=None, timesteps=10, input_dim=8)
    assert LSTMSpec.from_keras_config(_tf_keras_config(batch_input_shape=...)) == LSTMSpec(16)


def test_tf_keras_config_with_non_defaults():
    cfg = _tf_keras_config(
        batch_input_shape=[32, None, 3], dtype="float64", implementation=1, dropout=0.2,
        recurrent_dropout=0.1, return_sequences=True, go_backwards=True, unit_forget_bias=False,
        kernel_initializer={"class_name": "RandomUniform", "config": {"minval": -0.5, "maxval": 0.5, "seed": 4}},
        kernel_regularizer={"class_name": "L1L2", "config": {"l1": 0.0, "l2": 0.001}},
        bias_constraint={"class_name": "MaxNorm", "config": {"max_value": 2, "axis": 0}},
        recurrent_constraint={"class_name": "NonNeg", "config": {}, "module": "keras.constraints",
                              "registered_name": None},
    )
    spec = LSTMSpec.from_keras_config(cfg)
    assert (spec.batch_size, spec.timesteps, spec.input_dim) == (32, None, 3)
    assert (spec.dtype, spec.implementation, spec.dropout, spec.recurrent_dropout) == ("float64", 1, 0.2, 0.1)
    assert spec.return_sequences and spec.go_backwards and not spec.unit_forget_bias
    assert spec.kernel_initializer == initializers.RandomUniform(-0.5, 0.5, 4)
    assert spec.kernel_regularizer == regularizers.L1L2(0.0, 0.001)
    assert spec.bias_constraint == constraints.MaxNorm(2.0, 0)
    assert spec.recurrent_constraint == constraints.NonNeg()


def test_tf_keras_time_major_shape_is_timesteps_batch_features():
    spec = LSTMSpec.from_keras_config(_tf_keras_config(time_major=True, batch_input_shape=[10, 4, 8]))
    assert spec.time_major
    assert (spec.timesteps, spec.batch_size, spec.input_dim) == (10, 4, 8)
    spec = LSTMSpec.from_keras_config(_tf_keras_config(time_major=False, batch_input_shape=[10, 4, 8]))
    assert (spec.batch_size, spec.timesteps, spec.input_dim) == (10, 4, 8)


@pytest.mark.parametrize("shape", [[None, 10], [1, 2, 3, 4], "(None, 10, 8)", None, [None, 0, 8],
                                   [None, 10, 8.0], [True, 10, 8]])
def test_tf_keras_bad_batch_input_shape_is_rejected(shape):
    with pytest.raises(SpecError):
        LSTMSpec.from_keras_config(_tf_keras_config(batch_input_shape=shape))


def _floats(low=-1e6, high=1e6):
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


SEEDS = st.none() | st.integers(0, 2**63)
AXES = st.none() | st.lists(st.integers(-3, 3), max_size=3)
AXIS = st.integers(-3, 3) | st.lists(st.integers(-3, 3), min_size=1, max_size=3)


def _cfg(class_name, **config):
    return st.fixed_dictionaries({"class_name": st.just(class_name),
                                  "config": st.fixed_dictionaries(config)})


@st.composite
def _uniform_bounds(draw, low_name, high_name, **extra):
    a, b = sorted([draw(_floats()), draw(_floats())])
    config = {low_name: a, high_name: b, **{k: draw(v) for k, v in extra.items()}}
    return config


INITIALIZERS = st.one_of(
    st.sampled_from(["glorot_uniform", "GlorotNormal", "orthogonal", "zeros", "one", "he_uniform",
                     "lecun_normal", "identity", "normal", "uniform", "truncated_normal"]),
    _cfg("Zeros"), _cfg("Ones"),
    _cfg("Constant", value=_floats()),
    _cfg("Identity", gain=_floats()),
    _cfg("RandomNormal", mean=_floats(), stddev=_floats(0, 10), seed=SEEDS),
    _uniform_bounds("minval", "maxval", seed=SEEDS).map(
        lambda c: {"class_name": "RandomUniform", "config": c}),
    _cfg("TruncatedNormal", mean=_floats(), stddev=_floats(0, 10), seed=SEEDS),
    _cfg("VarianceScaling", scale=_floats(1e-6, 10), mode=st.sampled_from(["fan_in", "fan_out", "fan_avg"]),
         distribution=st.sampled_from(["truncated_normal", "untruncated_normal", "uniform"]), seed=SEEDS,
         input_axes=AXES, output_axes=AXES),
    *[_cfg(name, seed=SEEDS, input_axes=AXES, output_axes=AXES)
      for name in ("GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "LecunNormal", "LecunUniform")],
    _cfg("Orthogonal", gain=_floats(), seed=SEEDS),
)
REGULARIZERS = st.one_of(
    st.none(), st.sampled_from(["l1", "L2", "l1l2", "orthogonal_regularizer"]),
    _cfg("L1", l1=_floats(0, 10)), _cfg("L2", l2=_floats(0, 10)),
    _cfg("L1L2", l1=_floats(0, 10), l2=_floats(0, 10)),
    _cfg("OrthogonalRegularizer", factor=_floats(0, 10), mode=st.sampled_from(["rows", "columns"])),
)
CONSTRAINTS = st.one_of(
    st.none(), st.sampled_from(["max_norm", "MinMaxNorm", "nonneg", "unit_norm"]),
    _cfg("MaxNorm", max_value=_floats(0, 10), axis=AXIS),
    _uniform_bounds("min_value", "max_value", rate=_floats(0, 1), axis=AXIS).filter(
        lambda c: c["min_value"] >= 0).map(lambda c: {"class_name": "MinMaxNorm", "config": c}),
    _cfg("NonNeg"), _cfg("UnitNorm", axis=AXIS),
)
ACTIVATION_NAMES = st.sampled_from(sorted(ACTIVATIONS) + sorted(a for a in ALIASES if a)) | st.none()
RATES = st.floats(0.0, 1.0, exclude_max=True)
SIZES = st.none() | st.integers(1, 4096)


@st.composite
def spec_kwargs(draw):
    kwargs = {"units": draw(st.integers(1, 10**6))}
    optional = {
        "activation": ACTIVATION_NAMES, "recurrent_activation": ACTIVATION_NAMES,
        **{f: st.booleans() for f in BOOL_FIELDS},
        **{f: INITIALIZERS for f in OBJECT_FIELDS if f.endswith("initializer")},
        **{f: REGULARIZERS for f in OBJECT_FIELDS if f.endswith("regularizer")},
        **{f: CONSTRAINTS for f in OBJECT_FIELDS if f.endswith("constraint")},
        "dropout": RATES, "recurrent_dropout": RATES, "seed": SEEDS,
        "implementation": st.sampled_from([1, 2]), "use_cudnn": st.sampled_from(["auto", True, False]),
        "dtype": st.sampled_from(["float32", "float64"]),
        **{f: SIZES for f in SIZE_FIELDS},
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            kwargs[name] = draw(strategy)
    return kwargs


specs = spec_kwargs().map(lambda kw: LSTMSpec(**kw))


@settings(max_examples=300, deadline=None)
@given(specs)
def test_json_round_trip(spec):
    text = spec.to_json()
    back = LSTMSpec.from_json(text)
    assert back == spec
    assert hash(back) == hash(spec)
    assert back.to_json() == text
    assert back.hash == spec.hash
    assert json.loads(text) == spec.to_dict()
    assert LSTMSpec.from_dict(json.loads(text)) == spec
    assert {spec: 1}[back] == 1
    assert len({spec, back}) == 1


@settings(max_examples=200, deadline=None)
@given(specs)
def test_to_dict_is_a_valid_keras_config(spec):
    assert LSTMSpec.from_keras_config(spec.to_dict()) == spec


@settings(max_examples=200, deadline=None)
@given(specs, specs)
def test_equal_specs_give_equal_json_and_unequal_specs_different_json(a, b):
    assert (a == b) == (a.to_json() == b.to_json())
    if a == b:
        assert hash(a) == hash(b) and a.hash == b.hash


def _respell(value, data):
    """The same value written another way validation must accept: -0.0 for 0.0, 3 for 3.0, tuples."""
    if isinstance(value, dict):
        return {k: _respell(v, data) for k, v in value.items()}
    if isinstance(value, list):
        return data.draw(st.sampled_from([list, tuple]))([_respell(v, data) for v in value])
    if isinstance(value, float) and value == 0.0:
        return data.draw(st.sampled_from([0.0, -0.0, 0]))
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return data.draw(st.sampled_from([value, int(value)]))
    return value


@settings(max_examples=300, deadline=None)
@given(specs, st.data())
def test_to_json_is_canonical_however_the_values_were_written(spec, data):
    respelled = LSTMSpec.from_dict(_respell(spec.to_dict(), data))
    assert respelled == spec
    assert hash(respelled) == hash(spec)
    assert respelled.to_json() == spec.to_json()
    assert respelled.hash == spec.hash


EQUIVALENT = [
    (dict(dropout=-0.0), dict(dropout=0.0)),
    (dict(recurrent_dropout=-0.0), dict()),
    (dict(bias_initializer={"class_name": "Constant", "config": {"value": -0.0}}),
     dict(bias_initializer="constant")),
    (dict(kernel_initializer={"class_name": "GlorotUniform", "config": {}}), dict()),
    (dict(kernel_initializer=initializers.GlorotUniform()), dict(kernel_initializer="GlorotUniform")),
    (dict(kernel_constraint={"class_name": "MaxNorm", "config": {"axis": [0, 1]}}),
     dict(kernel_constraint=constraints.MaxNorm(axis=(0, 1)))),
    (dict(kernel_regularizer={"class_name": "L2", "config": {"l2": 1}}),
     dict(kernel_regularizer=regularizers.L2(1.0))),
    (dict(activation="swish", recurrent_activation="hard_swish"),
     dict(activation="silu", recurrent_activation="hard_silu")),
    (dict(activation=None), dict(activation="linear")),
    (dict(dropout=0), dict()),
]


@pytest.mark.parametrize("left,right", EQUIVALENT, ids=[repr(e[0]) for e in EQUIVALENT])
def test_equivalent_spellings_give_one_canonical_json(left, right):
    a, b = LSTMSpec(3, **left), LSTMSpec(3, **right)
    assert a == b and hash(a) == hash(b)
    assert a.to_json() == b.to_json()
    assert a.hash == b.hash


def test_specs_are_frozen_hashable_and_usable_as_dict_keys():
    a, b = LSTMSpec(8, dropout=0.5), LSTMSpec(8, dropout=0.5)
    table = {a: "x"}
    assert table[b] == "x"
    assert LSTMSpec(8, dropout=0.25) not in table
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.units = 9
    assert len(a.hash) == 64 and a.hash == b.hash != LSTMSpec(8).hash


def test_replace_revalidates():
    spec = LSTMSpec(8, dropout=0.5, kernel_regularizer="l2")
    assert spec.replace(units=3).units == 3
    assert spec.replace(units=3).kernel_regularizer == regularizers.L2()
    assert spec.replace(activation="swish").activation == "silu"
    assert spec.replace(dropout=0).dropout == 0.0
    for bad in (dict(units=0), dict(dropout=1.0), dict(activation="softmax"), dict(dtype="float16"),
                dict(kernel_initializer="nope"), dict(use_cudnn="yes"), dict(implementation=3),
                dict(seed=-1), dict(return_sequences=1)):
        with pytest.raises(SpecError) as info:
            spec.replace(**bad)
        assert next(iter(bad)) in str(info.value)
    assert spec == LSTMSpec(8, dropout=0.5, kernel_regularizer="l2")


def test_repr_names_only_non_defaults():
    assert repr(LSTMSpec(5)) == "LSTMSpec(units=5)"
    assert repr(LSTMSpec(5, dropout=0.5, go_backwards=True)) == \
        "LSTMSpec(units=5, dropout=0.5, go_backwards=True)"


HOSTILE = [
    'tanh(x)\nimport os; os.system("touch PWNED")',
    "tanh\nimport os",
    "__import__('os').system('touch PWNED')",
    "__import__('pathlib').Path('PWNED').touch()",
    '"""',
    "'''",
    "{{ 7*7 }}",
    "{% raw %}",
    "{% endraw %}",
    "{# x #}",
    "x) or (1",
    "math.tanh(x)",
    "1.0 / (1.0 + math.exp(-x))",
    "tánh",
    "tanh\u200b",
    "ｔａｎｈ",
    "tanh\x00",
    " tanh",
    "float32 ",
    "np.float32; import os",
    "float32\nimport os",
    "auto\n",
    "GlorotUniform\n",
    "x" * 10_000,
    "\\",
    "",
]


def _hostile_kwargs(s):
    """(where, kwargs) pairs putting `s` into every string-accepting place of a spec."""
    yield from ((f, {f: s}) for f in STRING_FIELDS)
    for field in OBJECT_FIELDS:
        yield field, {field: s}
        yield f"{field}.class_name", {field: {"class_name": s, "config": {}}}
        yield f"{field}.config key", {field: {"class_name": "GlorotUniform" if "init" in field else
                                              "L2" if "regul" in field else "MaxNorm", "config": {s: 1}}}
        yield f"{field}.module", {field: {"class_name": "Zeros" if "init" in field else
                                          "L2" if "regul" in field else "NonNeg", "config": {}, "module": s}}
        yield f"{field}.registered_name", {field: {"class_name": "Zeros" if "init" in field else
                                                   "L2" if "regul" in field else "NonNeg", "config": {},
                                                   "registered_name": s}}
        yield f"{field} dict key", {field: {"class_name": "Zeros", "config": {}, s: 1}}
    yield "initializer mode", {"kernel_initializer": {"class_name": "VarianceScaling", "config": {"mode": s}}}
    yield "initializer distribution", {"kernel_initializer": {"class_name": "VarianceScaling",
                                                              "config": {"distribution": s}}}
    yield "initializer number", {"kernel_initializer": {"class_name": "Constant", "config": {"value": s}}}
    yield "initializer seed", {"kernel_initializer": {"class_name": "HeNormal", "config": {"seed": s}}}
    yield "initializer axes", {"kernel_initializer": {"class_name": "HeNormal", "config": {"input_axes": [s]}}}
    yield "regularizer mode", {"bias_regularizer": {"class_name": "OrthogonalRegularizer", "config": {"mode": s}}}
    yield "constraint axis", {"bias_constraint": {"class_name": "UnitNorm", "config": {"axis": s}}}
    yield "nested config", {"kernel_initializer": {"class_name": "Constant", "config": {"value": {"x": s}}}}
    yield "dropout", {"dropout": s}
    yield "seed", {"seed": s}
    yield "implementation", {"implementation": s}
    yield "input_dim", {"input_dim": s}
    yield "use_bias", {"use_bias": s}
    yield "keyword name", {s or "\n": 1}


def _check_rejected(make):
    with pytest.raises(SpecError):
        make()


def test_hostile_strings_are_rejected_everywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sentinel = tmp_path / "PWNED"
    cwd = os.getcwd()
    checked = 0
    for s in HOSTILE + [f"__import__('pathlib').Path({str(sentinel)!r}).touch()"]:
        for where, kwargs in _hostile_kwargs(s):
            _check_rejected(lambda: LSTMSpec(4, **kwargs))
            _check_rejected(lambda: LSTMSpec.from_dict({"units": 4, **kwargs}))
            _check_rejected(lambda: LSTMSpec.from_keras_config({"units": 4, **kwargs}))
            _check_rejected(lambda: LSTMSpec(4).replace(**kwargs))
            _check_rejected(lambda: LSTMSpec.from_json(json.dumps({"units": 4, **kwargs})))
            checked += 1
        _check_rejected(lambda: LSTMSpec(s))
        _check_rejected(lambda: LSTMSpec.from_keras_config({"units": 4, "dtype": {
            "class_name": "DTypePolicy", "config": {"name": s}}}))
        _check_rejected(lambda: LSTMSpec.from_keras_config({"units": 4, "batch_input_shape": [None, s, 3]}))
    assert checked > 1000
    assert not sentinel.exists()
    assert os.listdir(tmp_path) == []
    assert os.getcwd() == cwd


@pytest.mark.parametrize("s", HOSTILE[:4])
def test_hostile_error_messages_quote_the_value(s):
    with pytest.raises(SpecError) as info:
        LSTMSpec(4, activation=s)
    assert repr(s) in str(info.value)


def test_keras_bookkeeping_keys_never_reach_the_spec():
    hostile = 'x"""\nimport os'
    spec = LSTMSpec.from_keras_config({"units": 4, "name": hostile, "trainable": hostile})
    assert spec == LSTMSpec(4)
    assert "import os" not in spec.to_json()


def test_tf_keras_hard_sigmoid_means_the_keras2_form():
    tf_keras = {"name": "lstm", "units": 4, "activation": "hard_sigmoid",
                "recurrent_activation": "hard_sigmoid", "time_major": False, "implementation": 2}
    spec = LSTMSpec.from_keras_config(tf_keras)
    assert spec.activation == spec.recurrent_activation == "keras2_hard_sigmoid"
    keras3 = {k: v for k, v in tf_keras.items() if k not in ("time_major", "implementation")}
    assert LSTMSpec.from_keras_config(keras3).activation == "hard_sigmoid"
    assert LSTMSpec.from_keras_config(keras3).recurrent_activation == "hard_sigmoid"
    assert LSTMSpec.from_dict({"units": 4, "time_major": False,
                               "recurrent_activation": "hard_sigmoid"}).recurrent_activation == "hard_sigmoid"
