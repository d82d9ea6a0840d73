"""Tests of lstmgen's NumPy initializers, regularizers and constraints against Keras 3.

Keras (torch backend) is the oracle for names, defaults, serialization, penalties and projections;
initializer draws cannot match Keras's torch streams, so they are checked against the formulas.
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

from lstmgen import constraints, initializers, regularizers
from lstmgen.errors import SpecError

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

# (our module, Keras module name, class name, every other name it goes by)
NAMES = [
    (initializers, "initializers", "Zeros", ["zeros", "zero"]),
    (initializers, "initializers", "Ones", ["ones", "one"]),
    (initializers, "initializers", "Constant", ["constant"]),
    (initializers, "initializers", "Identity", ["identity", "IdentityInitializer"]),
    (initializers, "initializers", "RandomNormal", ["random_normal", "normal"]),
    (initializers, "initializers", "RandomUniform", ["random_uniform", "uniform"]),
    (initializers, "initializers", "TruncatedNormal", ["truncated_normal"]),
    (initializers, "initializers", "VarianceScaling", ["variance_scaling"]),
    (initializers, "initializers", "GlorotNormal", ["glorot_normal"]),
    (initializers, "initializers", "GlorotUniform", ["glorot_uniform"]),
    (initializers, "initializers", "HeNormal", ["he_normal"]),
    (initializers, "initializers", "HeUniform", ["he_uniform"]),
    (initializers, "initializers", "LecunNormal", ["lecun_normal"]),
    (initializers, "initializers", "LecunUniform", ["lecun_uniform"]),
    (initializers, "initializers", "Orthogonal", ["orthogonal", "OrthogonalInitializer"]),
    (regularizers, "regularizers", "L1", ["l1"]),
    (regularizers, "regularizers", "L2", ["l2"]),
    (regularizers, "regularizers", "L1L2", ["l1l2"]),
    (regularizers, "regularizers", "OrthogonalRegularizer", ["orthogonal_regularizer"]),
    (constraints, "constraints", "MaxNorm", ["max_norm", "maxnorm"]),
    (constraints, "constraints", "MinMaxNorm", ["min_max_norm"]),
    (constraints, "constraints", "NonNeg", ["non_neg", "nonneg"]),
    (constraints, "constraints", "UnitNorm", ["unit_norm", "unitnorm"]),
]
NAME_IDS = [n[2] for n in NAMES]

# (our module, Keras module name, class name, non-default constructor arguments)
CUSTOM = [
    (initializers, "initializers", "Constant", {"value": 3.5}),
    (initializers, "initializers", "RandomNormal", {"mean": 1.0, "stddev": 2.0, "seed": 7}),
    (initializers, "initializers", "RandomUniform", {"minval": -1.0, "maxval": 2.0, "seed": 3}),
    (initializers, "initializers", "TruncatedNormal", {"mean": 0.5, "stddev": 0.1, "seed": 1}),
    (initializers, "initializers", "VarianceScaling",
     {"scale": 2.0, "mode": "fan_out", "distribution": "uniform", "seed": 4, "input_axes": [1], "output_axes": [0]}),
    (initializers, "initializers", "VarianceScaling", {"mode": "fan_avg", "distribution": "untruncated_normal"}),
    (initializers, "initializers", "GlorotNormal", {"seed": 2}),
    (initializers, "initializers", "HeUniform", {"seed": 0, "input_axes": [0], "output_axes": [1]}),
    (initializers, "initializers", "Orthogonal", {"gain": 2.0, "seed": 5}),
    (regularizers, "regularizers", "L1", {"l1": 0.3}),
    (regularizers, "regularizers", "L2", {"l2": 0.2}),
    (regularizers, "regularizers", "L1L2", {"l1": 0.1, "l2": 0.05}),
    (regularizers, "regularizers", "OrthogonalRegularizer", {"factor": 0.5, "mode": "columns"}),
    (constraints, "constraints", "MaxNorm", {"max_value": 1.5, "axis": 1}),
    (constraints, "constraints", "MaxNorm", {"max_value": 0.5, "axis": [0, 1]}),
    (constraints, "constraints", "MinMaxNorm", {"min_value": 0.5, "max_value": 2.0, "rate": 0.7, "axis": -1}),
    (constraints, "constraints", "UnitNorm", {"axis": 1}),
]
CUSTOM_IDS = [f"{c[2]}-{i}" for i, c in enumerate(CUSTOM)]


def keras_module(name):
    return getattr(keras, name)


def keras_defaults(cls):
    """The defaults of a Keras class's constructor arguments."""
    return {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def agrees_with_keras(keras_config, ours):
    """Every key Keras writes is ours with the same value, up to float32 rounding: Keras keeps L1.l1 and
    OrthogonalRegularizer.factor as float32 tensors, so it writes back 0.009999999776482582 for 0.01."""
    return all(key in ours and (value == ours[key] or isinstance(value, float) and
                                math.isclose(value, ours[key], rel_tol=1e-7))
               for key, value in keras_config.items())


# ---------------------------------------------------------------- parsing and serialization

@pytest.mark.parametrize("module, kmod, class_name, other_names", NAMES, ids=NAME_IDS)
def test_names_and_config_dicts_parse_to_equal_objects(module, kmod, class_name, other_names):
    obj = module.get(class_name, "f")
    assert obj.class_name == class_name
    for name in other_names:
        assert module.get(name, "f") == obj
    assert module.get({"class_name": class_name, "config": {}}, "f") == obj
    from_keras = module.get(keras_module(kmod).serialize(getattr(keras_module(kmod), class_name)()), "f")
    assert type(from_keras) is type(obj) and agrees_with_keras(from_keras.config(), obj.config())
    assert module.get(obj, "f") is obj
    assert hash(module.get(class_name, "f")) == hash(obj)
    with pytest.raises(dataclasses.FrozenInstanceError):
        obj.anything = 1


@pytest.mark.parametrize("module, kmod, class_name, other_names", NAMES, ids=NAME_IDS)
def test_defaults_equal_keras(module, kmod, class_name, other_names):
    kcls = getattr(keras_module(kmod), class_name)
    ours = module.get(class_name, "f").config()
    assert ours == keras_defaults(kcls)
    assert agrees_with_keras(kcls().get_config(), ours)


@pytest.mark.parametrize("module, kmod, class_name, kwargs", CUSTOM, ids=CUSTOM_IDS)
def test_custom_configs_round_trip_through_json_and_keras(module, kmod, class_name, kwargs):
    obj = module.get({"class_name": class_name, "config": kwargs}, "f")
    assert obj.config() == {**keras_defaults(getattr(keras_module(kmod), class_name)), **kwargs}
    serialized = json.loads(json.dumps(obj.to_keras()))
    assert serialized == obj.to_keras() == {"class_name": class_name, "config": obj.config()}
    assert module.get(serialized, "f") == obj
    # Keras reads our serialization and writes back what we read.
    kobj = keras_module(kmod).get(serialized)
    assert type(kobj).__name__ == class_name
    assert agrees_with_keras(kobj.get_config(), obj.config())
    assert agrees_with_keras(module.get(keras_module(kmod).serialize(kobj), "f").config(), obj.config())


def test_identity_gain_survives_serialization_unlike_keras():
    ident = initializers.get({"class_name": "Identity", "config": {"gain": 3.0}}, "f")
    assert ident.to_keras() == {"class_name": "Identity", "config": {"gain": 3.0}}
    assert keras.initializers.get(ident.to_keras()).gain == 3.0
    assert keras.initializers.Identity(gain=3.0).get_config() == {}  # Keras drops it


def test_special_cases_keep_their_names_and_match_keras_parameters():
    for name in ["GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "LecunNormal", "LecunUniform"]:
        ours, theirs = initializers.get(name, "f"), getattr(keras.initializers, name)()
        assert (ours.scale, ours.mode, ours.distribution) == (theirs.scale, theirs.mode, theirs.distribution)
        assert ours.to_keras()["class_name"] == name
        assert set(ours.config()) == {"seed", "input_axes", "output_axes"}
        general = initializers.VarianceScaling(ours.scale, ours.mode, ours.distribution)
        assert ours != general


def test_numbers_normalize_so_equal_values_give_equal_objects():
    assert constraints.get({"class_name": "MaxNorm", "config": {"max_value": 2}}, "f") == constraints.get("max_norm", "f")
    assert constraints.get({"class_name": "MaxNorm", "config": {"axis": (0, 1)}}, "f") == \
        constraints.get({"class_name": "MaxNorm", "config": {"axis": [0, 1]}}, "f")
    assert regularizers.get({"class_name": "L2", "config": {"l2": np.float32(0.5)}}, "f").config() == {"l2": 0.5}
    assert type(initializers.get({"class_name": "RandomNormal", "config": {"seed": np.int64(3)}}, "f").seed) is int


def test_live_keras_lstm_config_parses():
    layer = keras.layers.LSTM(4, kernel_regularizer="l2", kernel_constraint="max_norm")
    config = json.loads(json.dumps(layer.get_config()))
    assert regularizers.get(config["kernel_regularizer"], "kernel_regularizer") == regularizers.L2(0.01)
    assert constraints.get(config["kernel_constraint"], "kernel_constraint") == constraints.MaxNorm(2.0, 0)
    assert initializers.get(config["kernel_initializer"], "kernel_initializer") == initializers.GlorotUniform()
    assert initializers.get(config["recurrent_initializer"], "recurrent_initializer") == initializers.Orthogonal()
    assert initializers.get(config["bias_initializer"], "bias_initializer") == initializers.Zeros()
    assert regularizers.get(config["recurrent_regularizer"], "recurrent_regularizer") is None
    assert constraints.get(config["bias_constraint"], "bias_constraint") is None


finite = st.floats(allow_nan=False, allow_infinity=False)
non_negative = st.floats(min_value=0.0, allow_nan=False, allow_infinity=False)
seeds = st.none() | st.integers(min_value=0, max_value=2**63)
axes = st.integers(-2, 1) | st.lists(st.integers(-2, 1), min_size=1, max_size=2)


@settings(max_examples=200, deadline=None)
@given(st.one_of(
    st.builds(initializers.RandomNormal, finite, non_negative, seeds),
    st.builds(initializers.VarianceScaling, st.floats(min_value=1e-300, allow_infinity=False),
              st.sampled_from(["fan_in", "fan_out", "fan_avg"]),
              st.sampled_from(["truncated_normal", "untruncated_normal", "uniform"]), seeds,
              st.none() | st.lists(st.integers(-2, 1)), st.none() | st.lists(st.integers(-2, 1))),
    st.builds(initializers.Constant, finite),
    st.builds(regularizers.L1L2, non_negative, non_negative),
    st.builds(constraints.MaxNorm, non_negative, axes),
    st.builds(constraints.MinMaxNorm, st.just(0.0), non_negative, st.floats(0.0, 1.0), axes),
))
def test_any_valid_object_round_trips_through_json(obj):
    module = next(m for m in (initializers, regularizers, constraints) if isinstance(obj, m._FAMILY.base))
    assert module.get(json.loads(json.dumps(obj.to_keras())), "f") == obj


# ---------------------------------------------------------------- bad input

BAD = [
    (initializers, "glorot", "glorot"),
    (initializers, "Glorot_Uniform", "Glorot_Uniform"),
    (initializers, "glorot_uniform ", "glorot_uniform "),
    (initializers, None, None),
    (initializers, 3, 3),
    (initializers, ["zeros"], ["zeros"]),
    (initializers, initializers.Zeros, initializers.Zeros),
    (initializers, constraints.NonNeg(), constraints.NonNeg()),
    (initializers, "__import__('os')", "__import__('os')"),
    (initializers, {"class_name": "Zeros"}, None),
    (initializers, {"class_name": "Zeros", "config": []}, []),
    (initializers, {"class_name": 7, "config": {}}, 7),
    (initializers, {"class_name": "MaxNorm", "config": {}}, "MaxNorm"),
    (initializers, {"class_name": "Zeros", "config": {}, "extra": 1}, "extra"),
    (initializers, {"class_name": "Zeros", "config": {}, "module": "keras.constraints"}, "keras.constraints"),
    (initializers, {"class_name": "Zeros", "config": {}, "registered_name": "my>Zeros"}, "my>Zeros"),
    (initializers, {"class_name": "GlorotUniform", "config": {"scale": 2.0}}, "scale"),
    (initializers, {"class_name": "RandomNormal", "config": {"stddev": "0.1"}}, "0.1"),
    (initializers, {"class_name": "RandomNormal", "config": {"stddev": -0.1}}, -0.1),
    (initializers, {"class_name": "RandomNormal", "config": {"mean": True}}, True),
    (initializers, {"class_name": "RandomNormal", "config": {"mean": math.nan}}, math.nan),
    (initializers, {"class_name": "Constant", "config": {"value": math.inf}}, math.inf),
    (initializers, {"class_name": "Constant", "config": {"value": [1.0]}}, [1.0]),
    (initializers, {"class_name": "RandomNormal", "config": {"seed": 1.5}}, 1.5),
    (initializers, {"class_name": "RandomNormal", "config": {"seed": True}}, True),
    (initializers, {"class_name": "RandomNormal", "config": {"seed": -1}}, -1),
    (initializers, {"class_name": "Orthogonal", "config": {"seed": {"class_name": "SeedGenerator"}}},
     {"class_name": "SeedGenerator"}),
    (initializers, {"class_name": "RandomUniform", "config": {"minval": 1.0, "maxval": 0.5}}, 0.5),
    (initializers, {"class_name": "VarianceScaling", "config": {"scale": 0.0}}, 0.0),
    (initializers, {"class_name": "VarianceScaling", "config": {"mode": "fan_sum"}}, "fan_sum"),
    (initializers, {"class_name": "VarianceScaling", "config": {"distribution": "normal"}}, "normal"),
    (initializers, {"class_name": "HeNormal", "config": {"input_axes": 0}}, 0),
    (initializers, {"class_name": "HeNormal", "config": {"output_axes": [0.0]}}, [0.0]),
    (regularizers, "l1_l2", "l1_l2"),
    (regularizers, "L3", "L3"),
    (regularizers, 0.01, 0.01),
    (regularizers, {"class_name": "L2", "config": {"l3": 0.1}}, "l3"),
    (regularizers, {"class_name": "L2", "config": {"l2": -0.1}}, -0.1),
    (regularizers, {"class_name": "L2", "config": {"l2": None}}, None),
    (regularizers, {"class_name": "L1L2", "config": {"l1": math.inf}}, math.inf),
    (regularizers, {"class_name": "OrthogonalRegularizer", "config": {"mode": "diagonal"}}, "diagonal"),
    (constraints, "non-neg", "non-neg"),
    (constraints, "MaxNorm()", "MaxNorm()"),
    (constraints, {"class_name": "MaxNorm", "config": {"axis": "0"}}, "0"),
    (constraints, {"class_name": "MaxNorm", "config": {"axis": 1.0}}, 1.0),
    (constraints, {"class_name": "MaxNorm", "config": {"axis": []}}, []),
    (constraints, {"class_name": "MaxNorm", "config": {"axis": None}}, None),
    (constraints, {"class_name": "MaxNorm", "config": {"max_value": -1}}, -1),
    (constraints, {"class_name": "MinMaxNorm", "config": {"min_value": 2.0, "max_value": 1.0}}, 1.0),
    (constraints, {"class_name": "MinMaxNorm", "config": {"rate": 1.5}}, 1.5),
    (constraints, {"class_name": "NonNeg", "config": {"axis": 0}}, "axis"),
]


@pytest.mark.parametrize("module, identifier, bad", BAD, ids=[repr(b[1])[:40] for b in BAD])
def test_bad_identifiers_raise_spec_error_naming_field_and_value(module, identifier, bad):
    with pytest.raises(SpecError) as info:
        module.get(identifier, "my_field")
    assert "my_field" in str(info.value)
    assert repr(bad) in str(info.value)


def test_unknown_names_list_the_known_ones():
    with pytest.raises(SpecError) as info:
        constraints.get("glorot_uniform", "c")
    assert "'max_norm'" in str(info.value) and "'non_neg'" in str(info.value)
    with pytest.raises(SpecError) as info:
        regularizers.get({"class_name": "L2", "config": {"l3": 0.1}}, "r")
    assert "['l2']" in str(info.value)


def test_none_is_allowed_for_regularizers_and_constraints():
    assert regularizers.get(None, "f") is None
    assert constraints.get(None, "f") is None


# ---------------------------------------------------------------- regularizers

def random_weight(rng, shape, dtype):
    """Normal weights with log-uniform scales, so norms land on both sides of any clip bound."""
    return (rng.standard_normal(shape) * np.exp(rng.uniform(-3.0, 2.0, shape))).astype(dtype)


def keras_numpy(value):
    return np.asarray(keras.ops.convert_to_numpy(value))


REGULARIZERS = [
    {"class_name": "L1", "config": {}},
    {"class_name": "L1", "config": {"l1": 0.3}},
    {"class_name": "L2", "config": {}},
    {"class_name": "L2", "config": {"l2": 2.5}},
    {"class_name": "L1L2", "config": {"l1": 0.1, "l2": 0.05}},
    {"class_name": "L1L2", "config": {"l2": 0.05}},
    {"class_name": "OrthogonalRegularizer", "config": {}},
    {"class_name": "OrthogonalRegularizer", "config": {"factor": 0.5, "mode": "columns"}},
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(7, 12), (12, 7), (2, 3), (9,)])
@pytest.mark.parametrize("config", REGULARIZERS, ids=lambda c: f"{c['class_name']}{c['config']}")
def test_regularizer_penalties_equal_keras(config, shape, dtype):
    if config["class_name"] == "OrthogonalRegularizer" and len(shape) != 2:
        pytest.raises(SpecError, regularizers.get(config, "f"), np.ones(shape))
        return
    rng = np.random.default_rng([*shape, np.dtype(dtype).itemsize])
    for trial in range(3):
        w = random_weight(rng, shape, dtype)
        if trial:  # a zero row and a tiny column exercise the epsilon in Keras's normalization
            w[0] = 0.0
            w[..., -1] *= 1e-9
        ours = regularizers.get(config, "f")(w)
        theirs = float(keras_numpy(keras.regularizers.get(config)(keras.ops.convert_to_tensor(w))))
        assert isinstance(ours, float)
        np.testing.assert_allclose(ours, theirs, rtol=1e-6 if dtype == "float64" else 2e-6)


def test_l1l2_skips_zero_factors_like_keras():
    w = np.array([np.inf, 1.0])
    for config in ({"l1": 0.0, "l2": 0.0}, {"l1": 0.0, "l2": 0.1}, {"l1": 0.1, "l2": 0.0}):
        theirs = float(keras_numpy(keras.regularizers.L1L2(**config)(keras.ops.convert_to_tensor(w))))
        assert regularizers.L1L2(**config)(w) == theirs


def test_orthogonal_regularizer_is_zero_on_orthogonal_rows_and_nan_on_a_single_row_like_keras():
    reg = regularizers.OrthogonalRegularizer(factor=1.0)
    assert reg(np.eye(3, 5) * 7.0) == 0.0
    assert reg(np.zeros((3, 5))) == 0.0
    w = np.array([[1.0, 0.0], [1.0, 1.0]])
    assert reg(w) == pytest.approx(0.5 * 2 * math.sqrt(0.5) / 1.0)  # factor * 0.5 * sum|off-diag cos| / pairs
    assert math.isnan(reg(np.ones((1, 4))))
    assert math.isnan(float(keras_numpy(keras.regularizers.OrthogonalRegularizer(1.0)(
        keras.ops.convert_to_tensor(np.ones((1, 4)))))))


# ---------------------------------------------------------------- constraints

CONSTRAINTS = [
    {"class_name": "MaxNorm", "config": {}},
    {"class_name": "MaxNorm", "config": {"max_value": 1.5, "axis": 1}},
    {"class_name": "MaxNorm", "config": {"max_value": 3.0, "axis": [0, 1]}},
    {"class_name": "MinMaxNorm", "config": {}},
    {"class_name": "MinMaxNorm", "config": {"min_value": 0.5, "max_value": 2.0, "rate": 0.7, "axis": -1}},
    {"class_name": "NonNeg", "config": {}},
    {"class_name": "UnitNorm", "config": {}},
    {"class_name": "UnitNorm", "config": {"axis": 1}},
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(6, 8), (8, 3), (10,)])
@pytest.mark.parametrize("config", CONSTRAINTS, ids=lambda c: f"{c['class_name']}{c['config']}")
def test_constraint_projections_equal_keras(config, shape, dtype):
    axis = config["config"].get("axis", 0)
    if len(shape) == 1 and axis not in (0, -1):
        return  # no second axis to take norms along
    rng = np.random.default_rng([*shape, np.dtype(dtype).itemsize])
    for trial in range(3):
        w = random_weight(rng, shape, dtype)
        w[0] = 0.0  # a zero row and a tiny column exercise Keras's epsilon
        w[..., -1] *= 1e-8
        ours = constraints.get(config, "f")(w)
        theirs = keras_numpy(keras.constraints.get(config)(keras.ops.convert_to_tensor(w)))
        assert ours.dtype == w.dtype and ours.shape == w.shape
        np.testing.assert_allclose(ours, theirs, rtol=1e-6 if dtype == "float64" else 2e-6, atol=0)


def test_norm_constraints_bound_norms():
    w = random_weight(np.random.default_rng(0), (20, 30), "float64")
    norms = lambda x: np.linalg.norm(x, axis=0)  # noqa: E731
    assert norms(constraints.MaxNorm(1.0)(w)).max() <= 1.0
    np.testing.assert_allclose(norms(constraints.UnitNorm()(w)), 1.0, rtol=1e-6)
    bounded = norms(constraints.MinMaxNorm(0.5, 2.0)(w))
    assert bounded.min() >= 0.5 * (1 - 1e-6) and bounded.max() <= 2.0


# ---------------------------------------------------------------- initializers

def draw(identifier, shape, dtype="float64", seed=0):
    return initializers.get(identifier, "f")(shape, dtype, np.random.default_rng(seed))


def assert_distribution(x, mean, std, half_width=None):
    """Sample mean and std within a few standard errors; draws inside, and reaching, mean +- half_width."""
    n = x.size
    assert abs(x.mean() - mean) < 5 * std / math.sqrt(n)
    assert abs(x.std() - std) < 5 * std * math.sqrt(2.0 / n)
    if half_width is not None:
        assert np.abs(x - mean).max() < half_width
        assert np.abs(x - mean).max() > 0.99 * half_width


def test_random_normal_uniform_and_truncated_normal_distributions():
    shape = (500, 400)
    assert_distribution(draw({"class_name": "RandomNormal", "config": {"mean": 1.0, "stddev": 2.0}}, shape), 1.0, 2.0)
    assert_distribution(draw({"class_name": "RandomUniform", "config": {"minval": -1.0, "maxval": 3.0}}, shape),
                        1.0, 4.0 / math.sqrt(12.0), 2.0)
    x = draw({"class_name": "TruncatedNormal", "config": {"mean": 1.0, "stddev": 2.0}}, shape)
    assert_distribution(x, 1.0, 2.0 * initializers.TRUNCATED_STDDEV, 4.0)
    assert_distribution(draw("random_normal", shape), 0.0, 0.05)


def test_truncated_stddev_constant_is_the_stddev_of_a_normal_truncated_at_two():
    # Var = 1 - 2 * a * pdf(a) / (cdf(a) - cdf(-a)) for a standard normal truncated to (-a, a).
    pdf = math.exp(-2.0) / math.sqrt(2.0 * math.pi)
    variance = 1.0 - 2.0 * 2.0 * pdf / math.erf(2.0 / math.sqrt(2.0))
    assert math.sqrt(variance) == pytest.approx(initializers.TRUNCATED_STDDEV, rel=1e-15)


@pytest.mark.parametrize("shape, fan_in, fan_out", [((500, 400), 500, 400), ((200000,), 200000, 200000)])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["truncated_normal", "untruncated_normal", "uniform"])
def test_variance_scaling_distributions(shape, fan_in, fan_out, mode, distribution):
    scale = 1.7
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    std = math.sqrt(scale / n)
    x = draw({"class_name": "VarianceScaling", "config": {"scale": scale, "mode": mode, "distribution": distribution}},
             shape)
    half_width = {"truncated_normal": 2 * std / initializers.TRUNCATED_STDDEV, "untruncated_normal": None,
                  "uniform": math.sqrt(3 * scale / n)}[distribution]
    assert_distribution(x, 0.0, std, half_width)


def test_variance_scaling_axes_pick_the_fans():
    config = {"scale": 1.0, "mode": "fan_in", "distribution": "uniform", "input_axes": [1], "output_axes": [0]}
    x = draw({"class_name": "VarianceScaling", "config": config}, (400, 500))
    assert_distribution(x, 0.0, math.sqrt(1 / 500), math.sqrt(3 / 500))


@pytest.mark.parametrize("name", ["GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "LecunNormal",
                                  "LecunUniform"])
def test_special_cases_draw_as_their_variance_scaling(name):
    special = initializers.get({"class_name": name, "config": {"seed": 11}}, "f")
    general = initializers.VarianceScaling(special.scale, special.mode, special.distribution, seed=11)
    np.testing.assert_array_equal(special((30, 40), "float64", None), general((30, 40), "float64", None))


def test_glorot_uniform_limit():
    x = draw("glorot_uniform", (300, 700))
    assert_distribution(x, 0.0, math.sqrt(2 / 1000), math.sqrt(6 / 1000))


@pytest.mark.parametrize("shape", [(50, 20), (20, 50), (30, 30)])
def test_orthogonal_is_the_sign_fixed_q_of_a_normal_matrix(shape):
    gain = 1.5
    q = initializers.Orthogonal(gain=gain, seed=3)(shape, "float64", None) / gain
    tall = q if shape[0] >= shape[1] else q.T
    np.testing.assert_allclose(tall.T @ tall, np.eye(min(shape)), atol=1e-12)
    a = np.random.default_rng(3).standard_normal((max(shape), min(shape)))
    r = tall.T @ a
    np.testing.assert_allclose(r, np.triu(r), atol=1e-12)
    assert (np.diag(r) > 0).all()


def test_orthogonal_and_identity_reject_bad_ranks():
    for init in (initializers.Orthogonal(), initializers.Identity()):
        with pytest.raises(SpecError, match=r"shape=\(5,\)"):
            init((5,), "float32", np.random.default_rng(0))
    with pytest.raises(SpecError, match=r"shape=\(2, 3, 4\)"):
        initializers.Identity()((2, 3, 4), "float32", np.random.default_rng(0))


def test_constant_initializers_are_exact():
    rng = np.random.default_rng(0)
    assert np.array_equal(initializers.get("zeros", "f")((3, 4), "float32", rng), np.zeros((3, 4)))
    assert np.array_equal(initializers.get("ones", "f")((5,), "float64", rng), np.ones(5))
    constant = initializers.get({"class_name": "Constant", "config": {"value": 2.5}}, "f")
    assert np.array_equal(constant((2, 3), "float32", rng), np.full((2, 3), 2.5))
    identity = initializers.get({"class_name": "Identity", "config": {"gain": 3.0}}, "f")
    assert np.array_equal(identity((3, 5), "float64", rng), 3.0 * np.eye(3, 5))


@pytest.mark.parametrize("name", [n[2] for n in NAMES if n[0] is initializers])
def test_initializers_return_the_requested_dtype_and_shape(name):
    for dtype in ("float32", "float64"):
        x = draw(name, (6, 6), dtype)
        assert x.dtype == np.dtype(dtype) and x.shape == (6, 6)


SEEDED = ["RandomNormal", "RandomUniform", "TruncatedNormal", "VarianceScaling", "GlorotNormal", "GlorotUniform",
          "HeNormal", "HeUniform", "LecunNormal", "LecunUniform", "Orthogonal"]


@pytest.mark.parametrize("name", SEEDED)
def test_seeded_initializers_repeat_and_unseeded_ones_follow_rng(name):
    shape = (8, 5)
    seeded = initializers.get({"class_name": name, "config": {"seed": 42}}, "f")
    first = seeded(shape, "float64", np.random.default_rng(1))
    np.testing.assert_array_equal(first, seeded(shape, "float64", np.random.default_rng(2)))
    np.testing.assert_array_equal(first, seeded(shape, "float64", None))
    assert not np.array_equal(first, initializers.get({"class_name": name, "config": {"seed": 43}}, "f")(
        shape, "float64", None))
    unseeded = initializers.get(name, "f")
    rng = np.random.default_rng(7)
    a, b = unseeded(shape, "float64", rng), unseeded(shape, "float64", rng)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, unseeded(shape, "float64", np.random.default_rng(7)))
