"""Bad inputs to lstmgen.LSTM raise errors that name the argument and say what was expected;
awkward but valid inputs (views, other float dtypes, lists) give the reference's answer."""

import numpy as np
import pytest

import lstmgen
from lstmgen import reference
from lstmgen.errors import SpecError

N, T, C, H = 4, 5, 3, 2
MASK = np.array([[1, 0, 1, 1, 0],
                 [0, 0, 1, 1, 1],
                 [0, 0, 0, 0, 0],
                 [1, 1, 1, 1, 1]], dtype=bool)


def make_layer(dtype="float32", seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    layer = lstmgen.LSTM(H, dtype=dtype, return_sequences=True, return_state=True, **kwargs)
    layer.set_weights([rng.normal(0.0, 0.5, s).astype(dtype) for s in [(C, 4 * H), (H, 4 * H), (4 * H,)]])
    return layer


def expected_of(layer, x, **kwargs):
    kernel, recurrent_kernel, bias = layer.get_weights()
    return reference.forward(layer.spec, kernel, recurrent_kernel, bias, x, **kwargs)


def assert_reference(result, expected, dtype):
    tolerance = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=2e-5, atol=2e-6)
    assert len(result) == len(expected)
    for a, e in zip(result, expected):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a, e, **tolerance)


@pytest.fixture
def x():
    return np.random.default_rng(1).normal(size=(N, T, C)).astype(np.float32)


@pytest.mark.parametrize("shape", [(N, C), (N, T, C, 1), (C,)])
def test_wrong_rank(shape):
    bad = np.ones(shape, np.float32)
    with pytest.raises(ValueError, match=rf"inputs for layer 'lstm': shape \({shape[0]},.*expected 3 "
                                         r"dimensions \[N, T, C\]"):
        make_layer()(bad)
    with pytest.raises(ValueError, match=r"inputs for layer 'tm'.*expected 3 dimensions \[T, N, C\]"):
        lstmgen.LSTM(H, time_major=True, name="tm")(bad)


def test_wrong_feature_size(x):
    layer = make_layer()
    with pytest.raises(ValueError, match=r"inputs for layer 'lstm': 4 features, the layer was built for 3"):
        layer(np.ones((N, T, C + 1), np.float32))
    with pytest.raises(ValueError, match=r"input_shape=\(4, 5, 3\).*input_dim=2, inputs have 3 features"):
        lstmgen.LSTM(H, input_dim=2)(x)


@pytest.mark.parametrize("shape", [(N, T + 1), (N,), (T, N), (N, T, 1)])
def test_mask_of_wrong_shape(x, shape):
    with pytest.raises(ValueError, match=r"mask for layer 'lstm': shape .*expected \[N, T\] = \(4, 5\)"):
        make_layer()(x, mask=np.ones(shape, bool))


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64"])
def test_float_mask_is_refused(x, dtype):
    with pytest.raises(TypeError, match=rf"mask for layer 'lstm': dtype {dtype}, expected bool"):
        make_layer()(x, mask=MASK.astype(dtype))


@pytest.mark.parametrize("initial_state", [
    pytest.param(lambda h: [h], id="one-state"),
    pytest.param(lambda h: [h, h, h], id="three-states"),
    pytest.param(lambda h: h, id="an-array"),
    pytest.param(lambda h: np.stack([h, h]), id="a-stacked-array"),
])
def test_initial_state_wrong_count(x, initial_state):
    h = np.zeros((N, H), np.float32)
    with pytest.raises(ValueError, match=r"initial_state for layer 'lstm': expected a list \[h, c\] "
                                         r"of two \[N, H\] = \(4, 2\) arrays"):
        make_layer()(x, initial_state=initial_state(h))


@pytest.mark.parametrize("index, bad", [
    (0, np.zeros((N, H + 1), np.float32)),
    (1, np.zeros((N - 1, H), np.float32)),
    (1, np.zeros((H, N), np.float32)),
    (0, np.zeros((N, H), np.int32)),
])
def test_initial_state_wrong_shape_or_dtype(x, index, bad):
    states = [np.zeros((N, H), np.float32), np.zeros((N, H), np.float32)]
    states[index] = bad
    with pytest.raises(ValueError, match=rf"initial_state\[{index}\] for layer 'lstm': shape "
                                         rf".*expected a float array of shape \(4, 2\)"):
        make_layer()(x, initial_state=states)


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "bool", "complex64", "complex128"])
def test_non_float_inputs_are_refused(dtype):
    with pytest.raises(TypeError, match=rf"inputs for layer 'lstm': dtype {dtype}, expected a "
                                        "floating-point array"):
        make_layer()(np.ones((N, T, C), dtype))


def test_unknown_target():
    with pytest.raises(ValueError, match=r"target='gpu': must be one of auto, cpu"):
        lstmgen.LSTM(H, target="gpu")


@pytest.mark.parametrize("name", ["return_sequence", "recurrent_activaton", "foo"])
def test_unknown_keyword_names_it(name):
    with pytest.raises(SpecError, match=rf"^{name}=True for LSTM\(units=2\): is not an LSTM "
                                        "argument; known arguments: units, activation") as info:
        lstmgen.LSTM(H, **{name: True})
    assert info.value.field == name


def test_unknown_call_keyword_names_it(x):
    with pytest.raises(TypeError, match="mask_zero"):
        make_layer()(x, mask_zero=True)


def test_unrolled_layer_with_other_time_steps(x):
    layer = lstmgen.LSTM(H, unroll=True, timesteps=T + 1)
    with pytest.raises(ValueError, match=r"inputs for layer 'lstm': 5 time steps, but the unrolled "
                                         r"layer was made for timesteps=6"):
        layer(x)


def test_errors_leave_the_layer_usable(x):
    layer = make_layer()
    for bad_call in (lambda: layer(x[0]), lambda: layer(x, mask=MASK.astype(float)),
                     lambda: layer(x, initial_state=[x[:, 0, :H]])):
        with pytest.raises((ValueError, TypeError)):
            bad_call()
    assert_reference(layer(x, mask=MASK), expected_of(layer, x, mask=MASK), "float32")


def test_non_contiguous_views(x):
    layer = make_layer()
    rng = np.random.default_rng(2)
    wide = rng.normal(size=(N, 2 * T, C)).astype(np.float32)
    strided = wide[:, ::2]
    time_major = np.ascontiguousarray(x.transpose(1, 0, 2))
    transposed = time_major.transpose(1, 0, 2)
    fortran = np.asfortranarray(x)
    mask_view = np.repeat(MASK, 2, axis=1)[:, ::2]
    state_view = [rng.normal(size=(N, 2 * H)).astype(np.float32)[:, ::2] for _ in range(2)]
    for view in (strided, transposed, fortran, mask_view, state_view[0]):
        assert not view.flags.c_contiguous
    assert_reference(layer(strided), expected_of(layer, strided), "float32")
    assert_reference(layer(transposed, mask=mask_view), expected_of(layer, x, mask=MASK), "float32")
    assert_reference(layer(fortran, initial_state=state_view),
                     expected_of(layer, x, initial_state=state_view), "float32")
    # The caller's arrays are read, never written.
    np.testing.assert_array_equal(transposed, x)


@pytest.mark.parametrize("layer_dtype, input_dtype", [
    ("float32", "float16"), ("float32", "float64"), ("float64", "float32"), ("float64", "float16"),
])
def test_other_float_dtypes_are_cast(layer_dtype, input_dtype):
    layer = make_layer(layer_dtype)
    x = np.random.default_rng(3).normal(size=(N, T, C)).astype(input_dtype)
    state = [np.random.default_rng(4).normal(size=(N, H)).astype(input_dtype) for _ in range(2)]
    assert_reference(layer(x, mask=MASK, initial_state=state),
                     expected_of(layer, x, mask=MASK, initial_state=state), layer_dtype)


def test_nested_lists_and_integer_masks(x):
    layer = make_layer()
    assert_reference(layer(x.tolist(), mask=MASK.astype(np.int8).tolist()),
                     expected_of(layer, x, mask=MASK), "float32")
