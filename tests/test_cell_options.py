"""The cell options of ONNX's and PyTorch's LSTMs (lstmgen.spec.CELL_OPTIONS): validation, their
absence from Keras-like specs, the layer's weights and states, and the CPU target against the
float64 reference (which tests/test_onnx_backend.py and tests/test_importers.py check against ONNX
Runtime and torch.nn.LSTM).

Tolerances as in tests/test_cpu_target.py. Every variant costs seconds of Numba compile, so the
options are combined into three variants (VARIANTS), each run through several call kinds.
"""

import json

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lstmgen
from lstmgen import reference
from lstmgen.activations import Parametrized, numpy_form, source
from lstmgen.cache import VARIANTS
from lstmgen.lower.plan import (VariantKey, choose_target, cuda_uncovered_reason,
                                cudnn_ineligible_reason, explain)
from lstmgen.render import render
from lstmgen.spec import CELL_OPTIONS, LSTMSpec
from blas_helpers import skip_without
from lstmgen import blas
from test_cpu_target import MASK, as_list, assert_matches, masks

UNITS, INPUT_DIM = 4, 3
LEAKY = {"name": "leaky_relu", "alpha": 0.01}
VARIANT_OPTIONS = {
    # Every option at once, float64, with dropout for the training entry points.
    "all": dict(dtype="float64", use_recurrent_bias=True, use_peepholes=True, clip=0.9,
                input_forget=True, proj_size=2, output_activation=LEAKY,
                recurrent_activation={"name": "keras2_hard_sigmoid", "alpha": 0.3, "beta": 0.45},
                go_backwards=True, return_sequences=True, dropout=0.3, recurrent_dropout=0.4),
    # float32 (the fast tanh/sigmoid and the clip bound in float32), time-major, zero outputs.
    "float32": dict(dtype="float32", use_recurrent_bias=True, use_peepholes=True, clip=1.1,
                    proj_size=3, activation={"name": "scaled_tanh", "alpha": 1.5, "beta": 0.7},
                    output_activation="softsign", time_major=True, return_sequences=True,
                    zero_output_for_mask=True),
    # Straight-line code.
    "unrolled": dict(dtype="float64", unroll=True, timesteps=5, use_peepholes=True, proj_size=1,
                     input_forget=True, use_bias=False, go_backwards=True,
                     output_activation={"name": "affine", "alpha": 0.5, "beta": -0.25}),
}


def weights_for(spec, rng, scale=0.5):
    return [rng.normal(0.0, scale, shape).astype(spec.dtype)
            for shape in spec.weight_shapes(spec.input_dim)]


def run_reference(spec, weights, x, **kwargs):
    named = dict(zip(spec.weight_names, weights))
    return reference.forward(spec, named.pop("kernel"), named.pop("recurrent_kernel"),
                             named.pop("bias", None), x, **named, **kwargs)


def variant_layer(name, rng):
    layer = lstmgen.LSTM(UNITS, target="cpu", return_state=True, input_dim=INPUT_DIM,
                         **VARIANT_OPTIONS[name])
    weights = weights_for(layer.spec, rng)
    layer.set_weights(weights)
    return layer, weights


def inputs(spec, rng, n_batch, n_time):
    shape = (n_time, n_batch, INPUT_DIM) if spec.time_major else (n_batch, n_time, INPUT_DIM)
    return rng.normal(0.0, 1.5, shape).astype(spec.dtype)


@settings(max_examples=12, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1), variant=st.sampled_from(sorted(VARIANT_OPTIONS)),
       n_batch=st.integers(1, 4), masked=st.booleans(), with_initial_state=st.booleans())
def test_variants_match_reference(data, seed, variant, n_batch, masked, with_initial_state):
    rng = np.random.default_rng(seed)
    layer, weights = variant_layer(variant, rng)
    spec = layer.spec
    n_time = spec.timesteps or 5
    x = inputs(spec, rng, n_batch, n_time)
    mask = data.draw(masks(n_batch, n_time), label="mask") if masked else None
    initial_state = ([rng.normal(size=(n_batch, spec.output_size)).astype(spec.dtype),
                      rng.normal(size=(n_batch, UNITS)).astype(spec.dtype)]
                     if with_initial_state else None)
    got = layer(x, mask=mask, initial_state=initial_state)
    assert [a.shape[-1] for a in got] == [spec.output_size, spec.output_size, UNITS]
    assert_matches(got, run_reference(spec, weights, x, mask=mask, initial_state=initial_state),
                   spec.dtype)


@pytest.mark.parametrize("variant", sorted(VARIANT_OPTIONS))
def test_variants_on_mkl_match_reference(monkeypatch, variant):
    """The MKL variant's products (packed recurrent kernel of P rows, the per-row projection)."""
    skip_without("mkl")
    monkeypatch.setenv(blas.ENV, "mkl")
    rng = np.random.default_rng(23)
    layer, weights = variant_layer(variant, rng)
    spec = layer.spec
    x = inputs(spec, rng, 5, spec.timesteps or 5)
    mask = rng.random((5, x.shape[0 if spec.time_major else 1])) < 0.7
    training = spec.dropout > 0
    got = layer(x, mask=mask, training=training)
    used = {}
    if training:
        count = spec.dropout_mask_count
        used = {"input_masks": layer.get_dropout_mask_for_cell(np.empty((5, INPUT_DIM)), True, count),
                "recurrent_masks": layer.get_recurrent_dropout_mask_for_cell(
                    np.empty((5, spec.output_size)), True, count)}
    assert_matches(got, run_reference(spec, weights, x, mask=mask, **used), spec.dtype)


@pytest.mark.parametrize("masked", [False, True])
def test_training_dropout_matches_reference(masked):
    """Recurrent dropout masks are [K, N, P]: they scale the projected h."""
    rng = np.random.default_rng(21)
    layer, weights = variant_layer("all", rng)
    x = inputs(layer.spec, rng, 4, 5)
    mask = MASK if masked else None
    got = layer(x, mask=mask, training=True)
    step = x[:, 0]
    count = layer.spec.dropout_mask_count
    used = {"input_masks": layer.get_dropout_mask_for_cell(step, True, count),
            "recurrent_masks": layer.get_recurrent_dropout_mask_for_cell(
                np.empty((4, layer.spec.output_size)), True, count)}
    assert np.shape(used["recurrent_masks"]) == (4, 4, 2)
    assert_matches(got, run_reference(layer.spec, weights, x, mask=mask, **used), "float64")
    assert not np.allclose(got[0], run_reference(layer.spec, weights, x, mask=mask)[0])


def test_step_functions_match_reference():
    """The generated step / step_masked take the cell options' weights after the Keras ones."""
    rng = np.random.default_rng(22)
    spec = LSTMSpec(UNITS, input_dim=INPUT_DIM, dtype="float64", return_state=True,
                    **{k: v for k, v in VARIANT_OPTIONS["all"].items()
                       if k not in ("dtype", "go_backwards", "dropout", "recurrent_dropout")})
    module = VARIANTS.get(VariantKey.from_spec(spec, "cpu"))
    weights = weights_for(spec, rng)
    n_batch = 4
    x = rng.normal(size=(n_batch, 1, INPUT_DIM))
    h0, c0 = rng.normal(size=(n_batch, spec.output_size)), rng.normal(size=(n_batch, UNITS))
    mask_t = np.array([True, False, True, True])
    h, c = h0.copy(), c0.copy()
    module.step(x[:, 0], h, c, *weights)
    expected = run_reference(spec, weights, x, initial_state=[h0, c0])
    assert_matches([h, c], expected[1:], "float64")
    h, c = h0.copy(), c0.copy()
    module.step_masked(x[:, 0], h, c, *weights, mask_t)
    masked = run_reference(spec, weights, x, mask=mask_t[:, None], initial_state=[h0, c0])
    assert_matches([h, c], masked[1:], "float64")
    np.testing.assert_array_equal(h[1], h0[1])


def test_layer_weights_and_states():
    spec_kwargs = dict(use_recurrent_bias=True, use_peepholes=True, proj_size=2, stateful=True,
                       batch_size=3)
    layer = lstmgen.LSTM(5, target="cpu", **spec_kwargs)
    layer.build((3, 4, 6))
    assert [w.shape for w in layer.get_weights()] == [(6, 20), (2, 20), (20,), (20,), (15,), (5, 2)]
    assert layer.spec.weight_names == ("kernel", "recurrent_kernel", "bias", "recurrent_bias",
                                       "peephole", "projection")
    assert [s.shape for s in layer.states] == [(3, 2), (3, 5)]
    # unit_forget_bias's ones are in `bias` only; the recurrent bias starts at bias_initializer's zeros.
    np.testing.assert_array_equal(layer.get_weights()[3], 0.0)
    layer.reset_states([np.ones((3, 2), "float32"), np.ones((3, 5), "float32")])
    with pytest.raises(ValueError, match=r"State 0 .* expected shape=\(3, 2\)"):
        layer.reset_states([np.ones((3, 5), "float32"), np.ones((3, 5), "float32")])
    with pytest.raises(ValueError, match=r"weights\[4\] for layer 'lstm': shape \(12,\), expected \(15,\)"):
        layer.set_weights(layer.get_weights()[:4] + [np.zeros(12), layer.get_weights()[5]])
    assert [s.shape for s in layer.get_initial_state(np.zeros((7, 4, 6)))] == [(7, 2), (7, 5)]
    with pytest.raises(ValueError, match=r"\[N, P\] = \(3, 2\) and \[N, H\] = \(3, 5\)"):
        layer(np.zeros((3, 4, 6), "float32"), initial_state=[np.zeros((3, 2))])
    assert layer.proj_size == 2 and layer.use_peepholes and layer.clip is None
    # The cell options' weights have no regularizer or constraint: only Keras's three have them.
    regularized = lstmgen.LSTM(5, kernel_regularizer="l2", bias_regularizer="l2",
                               bias_constraint="non_neg", **spec_kwargs)
    regularized.build((3, 4, 6))
    assert len(regularized.losses) == 2
    regularized.set_weights([-np.ones(w.shape) for w in regularized.get_weights()])
    regularized.apply_constraints()
    assert [float(w.min()) for w in regularized.get_weights()] == [-1, -1, 0, -1, -1, -1]


def test_config_round_trip_keeps_the_options():
    layer = lstmgen.LSTM(5, **VARIANT_OPTIONS["float32"])
    config = layer.get_config()
    assert config["activation"] == {"name": "scaled_tanh", "alpha": 1.5, "beta": 0.7}
    assert lstmgen.LSTM.from_config(json.loads(json.dumps(config))).spec == layer.spec


def test_defaults_leave_keras_specs_as_they_were():
    spec = LSTMSpec(8, input_dim=3)
    assert not set(CELL_OPTIONS) & set(spec.to_dict())
    assert not set(CELL_OPTIONS) & set(json.loads(VariantKey.from_spec(spec, "cpu").to_json()))
    explicit = LSTMSpec(8, input_dim=3, output_activation="tanh", use_recurrent_bias=False,
                        use_peepholes=False, clip=None, input_forget=False, proj_size=0,
                        activation={"name": "tanh"})
    assert explicit == spec and explicit.to_json() == spec.to_json() and explicit.hash == spec.hash
    # Parameters at their defaults are the plain name: Keras's leaky_relu has slope 0.2.
    assert LSTMSpec(2, activation={"name": "leaky_relu", "alpha": 0.2}).activation == "leaky_relu"
    assert LSTMSpec(2, activation=LEAKY).activation == Parametrized("leaky_relu", (0.01,))


@pytest.mark.parametrize("kwargs, field, words", [
    (dict(use_recurrent_bias=True, use_bias=False), "use_recurrent_bias", "needs use_bias=True"),
    (dict(clip=0.0), "clip", "positive finite"),
    (dict(clip=-1.0), "clip", "positive finite"),
    (dict(clip=float("inf")), "clip", "positive finite"),
    (dict(clip=True), "clip", "positive finite"),
    (dict(clip="1"), "clip", "positive finite"),
    (dict(proj_size=4), "proj_size", "[1, 4)"),
    (dict(proj_size=-1), "proj_size", "[1, 4)"),
    (dict(proj_size=1.5), "proj_size", "[1, 4)"),
    (dict(proj_size=True), "proj_size", "[1, 4)"),
    (dict(input_forget=1), "input_forget", "True or False"),
    (dict(use_peepholes="yes"), "use_peepholes", "True or False"),
    (dict(output_activation="softmax"), "output_activation", "not elementwise"),
    (dict(activation={"name": "leaky_relu", "beta": 1.0}), "activation", "its parameters: alpha"),
    (dict(activation={"name": "tanh", "alpha": 1.0}), "activation", "its parameters: none"),
    (dict(activation={"name": "elu", "alpha": float("nan")}), "activation['alpha']", "finite"),
    (dict(activation={"name": "affine", "beta": "1; import os"}), "activation['beta']", "finite"),
    (dict(recurrent_activation={"alpha": 1.0}), "recurrent_activation", "needs a 'name'"),
    (dict(activation={"name": "__import__"}), "activation['name']", "must be one of"),
])
def test_bad_values_name_the_field(kwargs, field, words):
    with pytest.raises(lstmgen.SpecError) as error:
        LSTMSpec(4, **kwargs)
    assert error.value.field == field and words in str(error.value), str(error.value)


def test_generated_code_is_specialized():
    """No option's code without the option; each option's code with it."""
    plain = render(VariantKey.from_spec(LSTMSpec(3, input_dim=2), "cpu"))
    for word in ("recurrent_bias", "peephole", "_clip", "CLIP", "PROJ_SIZE", "projection",
                 "output_activation", "DTYPE(1.0) - i"):
        assert word not in plain
    rich = render(VariantKey.from_spec(
        LSTMSpec(3, input_dim=2, **VARIANT_OPTIONS["all"]), "cpu"))
    for word in ("recurrent_bias[", "peephole[2 * UNITS + j] * c_new", "CLIP = DTYPE(0.9)",
                 "PROJ_SIZE = 2", "_matmul(zh_t[:UNITS].reshape(1, UNITS), projection, h_t.reshape(1, PROJ_SIZE))", "f = DTYPE(1.0) - i",
                 "return x if x >= 0.0 else 0.01 * x", "min(max(0.3 * x + 0.45, 0.0), 1.0)"):
        assert word in rich, word


def test_generated_cuda_code_is_specialized():
    plain = render(VariantKey.from_spec(LSTMSpec(3, input_dim=2), "cuda"))
    for word in ("recurrent_bias", "peephole", "p_i", "_clip", "CLIP", "output_activation",
                 "DTYPE(1.0) - i"):
        assert word not in plain
    options = {k: v for k, v in VARIANT_OPTIONS["all"].items() if k != "proj_size"}
    rich = render(VariantKey.from_spec(LSTMSpec(3, input_dim=2, **options), "cuda"))
    for word in ("(a_i + recurrent_bias[j]) + zx[row, j]", "_clip(z_o + p_o * c_new)",
                 "CLIP = DTYPE(0.9)", "f = DTYPE(1.0) - i", "* output_activation(c_new)",
                 "peephole[2 * UNITS + j]"):
        assert word in rich, word


def test_negative_parameters_render_in_parentheses():
    value = LSTMSpec(2, activation={"name": "affine", "alpha": -2.0, "beta": -0.5}).activation
    assert source(value) == "(-2.0) * x + (-0.5)"
    x = np.linspace(-3, 3, 7)
    np.testing.assert_array_equal(numpy_form(value)(x), -2.0 * x - 0.5)


@pytest.mark.parametrize("name, params, expected", [
    ("affine", dict(alpha=2.0, beta=0.5), lambda x: 2.0 * x + 0.5),
    ("thresholded_relu", dict(alpha=0.5), lambda x: np.where(x > 0.5, x, 0.0)),
    ("scaled_tanh", dict(alpha=2.0, beta=0.5), lambda x: 2.0 * np.tanh(0.5 * x)),
    ("leaky_relu", dict(alpha=0.01), lambda x: np.where(x >= 0, x, 0.01 * x)),
    ("elu", dict(alpha=2.0), lambda x: np.where(x > 0, x, 2.0 * (np.exp(x) - 1.0))),
    ("keras2_hard_sigmoid", dict(alpha=0.3, beta=0.4), lambda x: np.clip(0.3 * x + 0.4, 0, 1)),
])
def test_parametrized_forms(name, params, expected):
    """ONNX's definitions (its LSTM operator's list), NumPy and the Numba source alike."""
    value = LSTMSpec(2, activation={"name": name, **params}).activation
    x = np.concatenate([np.linspace(-4, 4, 81), [0.5, -0.5, 0.0]])
    np.testing.assert_allclose(numpy_form(value)(x), expected(x), rtol=1e-12, atol=1e-15)
    scalar = numba.njit(eval(f"lambda x: {source(value)}", {"math": __import__("math")}))
    np.testing.assert_allclose([scalar(v) for v in x], expected(x), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("option, value", [("use_recurrent_bias", True), ("use_peepholes", True),
                                           ("clip", 3.0), ("input_forget", True), ("proj_size", 2),
                                           ("output_activation", "relu")])
def test_device_targets_name_the_options_they_lack(option, value):
    """cuDNN runs none of the options; the cuda template all but proj_size, which goes to cpu."""
    spec = LSTMSpec(4, input_dim=3, **{option: value})
    assert option in cudnn_ineligible_reason(spec)
    here = {"cuda": None, "cudnn": None}  # as if a GPU and cuDNN were found
    text = explain(spec, "auto", here)
    assert f"cudnn: {option}=" in text
    if option == "proj_size":
        assert "proj_size" in cuda_uncovered_reason(spec) and f"cuda: {option}=" in text
        assert choose_target(spec, "auto", here).target == "cpu"
        with pytest.raises(ValueError, match=option):
            choose_target(spec, "cuda", here)
    else:
        assert cuda_uncovered_reason(spec) is None
        assert choose_target(spec, "auto", here).target == "cuda"
    assert choose_target(LSTMSpec(4, input_dim=3), "auto", here).target == "cudnn"


def test_nan_propagates_through_clip():
    rng = np.random.default_rng(23)
    layer, weights = variant_layer("float32", rng)
    x = inputs(layer.spec, rng, 2, 5)
    x[1, 0, 0] = np.nan  # time-major: step 1 of sample 0
    got = as_list(layer(x))
    assert np.isnan(got[0][1:, 0]).all() and np.isfinite(got[0][:, 1]).all()
    assert np.isnan(as_list(run_reference(layer.spec, weights, x))[0][1:, 0]).all()
