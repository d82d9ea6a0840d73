"""Importers against their oracles: Keras 3 models saved as .keras / .h5 and read back by
`lstmgen.from_keras` (predictions compared), tf.keras-layout .h5 files, `lstmgen.from_torch`
against torch.nn.LSTM, and every kind of bad file.

Tolerances: float32 within rtol 2e-5, atol 1e-6; float64 within 1e-12.
"""

import io
import json
import os
import zipfile

os.environ.setdefault("KERAS_BACKEND", "torch")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import lstmgen  # noqa: E402
from keras_float64 import exact_float64_matmul  # noqa: E402,F401  (autouse fixture)
from lstmgen.interop.cudnnlstm import cudnnlstm_to_lstm, lstm_to_cudnnlstm  # noqa: E402

C, N, T = 3, 4, 6


def tolerance(dtype: str) -> dict:
    return dict(rtol=2e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)


def randomize(model, seed: int) -> None:
    """Random weights (not Keras's initial ones, whose forget bias is exactly 1)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        layer.set_weights([rng.normal(0, 0.5, w.shape) for w in layer.get_weights()])


def keras_output(model, x) -> np.ndarray:
    # Not model.predict: in float64 it returned results 1e-8 off the layer's own call (Keras 3.15).
    return keras.ops.convert_to_numpy(model(x))


def inputs(dtype: str, seed: int, shape=(N, T, C)) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


CASES = [
    ({"units": 5, "return_sequences": True}, {"units": 4}),
    ({"units": 4, "return_sequences": True, "go_backwards": True},
     {"units": 3, "return_sequences": True, "activation": "relu"}),
    ({"units": 3, "return_sequences": True, "use_bias": False, "recurrent_activation": "hard_sigmoid"},
     {"units": 2, "go_backwards": True, "activation": "softsign", "unit_forget_bias": False}),
]


def two_lstm_model(first: dict, second: dict, dtype: str):
    x = keras.Input((T, C), dtype=dtype)
    y = keras.layers.LSTM(name="first", dtype=dtype, **first)(x)
    y = keras.layers.LSTM(name="second", dtype=dtype, **second)(y)
    return keras.Model(x, y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_saved_model_matches_keras(tmp_path, case, dtype, suffix):
    # Keras 3 still writes legacy .h5 (model_config + model_weights), so both formats come from Keras.
    model = two_lstm_model(*CASES[case], dtype)
    randomize(model, seed=case)
    path = tmp_path / f"model{suffix}"
    model.save(path)
    layers = lstmgen.from_keras(path)
    assert sorted(layers) == ["first", "second"]
    x = inputs(dtype, seed=10 + case)
    got = layers["second"](layers["first"](x))
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, keras_output(model, x), **tolerance(dtype))
    for name, layer in layers.items():
        assert layer.name == name
        for ours, theirs in zip(layer.get_weights(), model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(ours, theirs)


def test_live_layer_and_model(tmp_path):
    model = two_lstm_model(*CASES[1], "float32")
    randomize(model, seed=3)
    x = inputs("float32", seed=4)
    layers = lstmgen.from_keras(model)
    np.testing.assert_allclose(layers["second"](layers["first"](x)), keras_output(model, x),
                               **tolerance("float32"))
    first = lstmgen.from_keras(model.get_layer("first"))
    assert isinstance(first, lstmgen.LSTM) and first.go_backwards
    np.testing.assert_allclose(first(x), keras_output(model.get_layer("first"), x),
                               **tolerance("float32"))
    assert lstmgen.from_keras(model, "second").units == 3


def test_nested_models_and_several_lstm_layers(tmp_path):
    """An LSTM inside a Sequential inside a Functional model, next to one outside: the file keys
    it "inner/<name>", and Keras's `layers/lstm`, `layers/lstm_1` paths are followed."""
    inner = keras.Sequential([keras.Input((T, C)), keras.layers.Dense(4, name="dense"),
                              keras.layers.LSTM(5, return_sequences=True, name="deep")], name="inner")
    x = keras.Input((T, C))
    y = keras.layers.LSTM(2, name="outer_lstm", go_backwards=True)(inner(x))
    model = keras.Model(x, y)
    randomize(inner, seed=5)
    randomize(model, seed=6)
    model.save(tmp_path / "nested.keras")
    xs = inputs("float32", seed=7)
    for source in (tmp_path / "nested.keras", model):
        layers = lstmgen.from_keras(source)
        assert sorted(layers) == ["inner/deep", "outer_lstm"]
        dense = inner.get_layer("dense")
        middle = dense(xs).detach().numpy()
        np.testing.assert_allclose(layers["outer_lstm"](layers["inner/deep"](middle)),
                                   keras_output(model, xs), **tolerance("float32"))
        assert lstmgen.from_keras(source, "deep").units == 5


def bidirectional_model(dtype: str):
    """LSTM and Bidirectional(LSTM) layers: each merge mode, a given backward layer, a nested one."""
    x = keras.Input((T, C), dtype=dtype)
    y = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True, dtype=dtype),
                                   name="both_ways", dtype=dtype)(x)
    y = keras.layers.LSTM(4, return_sequences=True, go_backwards=True, name="plain", dtype=dtype)(y)
    y = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True, dtype=dtype),
                                   merge_mode="sum", name="summed", dtype=dtype)(y)
    inner = keras.Sequential([keras.Input((T, 4), dtype=dtype), keras.layers.Bidirectional(
        keras.layers.LSTM(2, return_sequences=True, activation="relu", dtype=dtype),
        backward_layer=keras.layers.LSTM(2, return_sequences=True, go_backwards=True, dtype=dtype),
        merge_mode="mul", name="deep", dtype=dtype)], name="inner")
    y = inner(y)
    y = keras.layers.Bidirectional(keras.layers.LSTM(3, dtype=dtype), merge_mode="ave",
                                   name="last", dtype=dtype)(y)
    model = keras.Model(x, keras.layers.Dense(1, name="head", dtype=dtype)(y))
    randomize(inner, seed=21)
    randomize(model, seed=22)
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bidirectional_models_match_keras(tmp_path, dtype):
    """The model built, saved as .keras and .h5, and read back (and live): every LSTM and
    Bidirectional(LSTM) layer imported, predictions through them equal Keras's."""
    model = bidirectional_model(dtype)
    model.save(tmp_path / "bidi.keras")
    model.save(tmp_path / "bidi.h5")
    x = inputs(dtype, seed=23)
    head = model.get_layer("head")
    want = keras_output(model, x)
    for source in (model, tmp_path / "bidi.keras", tmp_path / "bidi.h5"):
        layers = lstmgen.from_keras(source)
        assert sorted(layers) == ["both_ways", "inner/deep", "last", "plain", "summed"], source
        assert isinstance(layers["summed"], lstmgen.Bidirectional)
        y = x
        for key in ("both_ways", "plain", "summed", "inner/deep", "last"):
            y = layers[key](y)
        assert y.dtype == np.dtype(dtype)
        np.testing.assert_allclose(keras_output(head, y), want, **tolerance(dtype))
        deep = layers["inner/deep"]
        assert deep.merge_mode == "mul" and deep.forward_layer.activation == "relu"
        for ours, theirs in zip(deep.get_weights(), model.get_layer("inner").get_layer("deep").get_weights()):
            np.testing.assert_array_equal(ours, theirs)
    single = lstmgen.from_keras(model.get_layer("last"))
    assert isinstance(single, lstmgen.Bidirectional) and single.merge_mode == "ave"
    assert lstmgen.from_keras(tmp_path / "bidi.keras", "deep").name == "deep"


def test_tf_keras_h5_bidirectional(tmp_path):
    """tf.keras wrote no backward_layer config (the backward layer is made from `layer`) and the
    weights as `<wrapper>/forward_lstm/...` then `<wrapper>/backward_lstm/...`; oracle: Keras 3
    with Keras 2's hard sigmoid and the same weights."""
    rng = np.random.default_rng(24)
    weights = [rng.normal(0, 0.5, s).astype("float32") for s in ((C, 16), (4, 16), (16,)) * 2]
    names = [f"{side}_lstm/lstm_cell/{kind}" for side in ("forward", "backward")
             for kind in ("kernel", "recurrent_kernel", "bias")]
    wrapper = {"class_name": "Bidirectional", "config": {
        "name": "bidirectional", "trainable": True, "dtype": "float32", "merge_mode": "concat",
        "layer": tf_keras_layer("LSTM", "forward_lstm", 4)}}
    write_tf_keras_h5(tmp_path / "tf.h5", [wrapper], {"bidirectional": dict(zip(names, weights))})
    ours = lstmgen.from_keras(tmp_path / "tf.h5", "bidirectional")
    assert ours.backward_layer.go_backwards
    assert ours.backward_layer.recurrent_activation == "keras2_hard_sigmoid"
    # Keras's Bidirectional cannot copy a layer with a Python-function activation: two LSTMs.
    directions = [keras.layers.LSTM(4, return_sequences=True, go_backwards=backwards,
                                    recurrent_activation=keras2_hard_sigmoid) for backwards in (0, 1)]
    xs = inputs("float32", seed=25)
    for k, direction in enumerate(directions):
        direction.build((N, T, C))
        direction.set_weights(weights[3 * k:3 * k + 3])
    want = np.concatenate([keras_output(directions[0], xs),
                           keras_output(directions[1], xs)[:, ::-1]], axis=-1)
    np.testing.assert_allclose(ours(xs), want, **tolerance("float32"))


def write_bidirectional_cudnnlstm_h5(path, seed: int, units: int, **config) -> list:
    """A tf.keras .h5 with Bidirectional(CuDNNLSTM) `both_ways` (config: the wrapper's), weights
    stored as tf.keras wrote them (forward layer's kernel, recurrent_kernel, bias [8H], then the
    backward layer's); returns those weights."""
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 0.5, s).astype("float32")
               for s in ((C, 4 * units), (units, 4 * units), (8 * units,)) * 2]
    names = [f"{side}_cu_dnnlstm/{kind}" for side in ("forward", "backward")
             for kind in ("kernel", "recurrent_kernel", "bias")]
    layer = config.pop("layer", {})
    wrapper = {"class_name": "Bidirectional", "config": {
        "name": "both_ways", "trainable": True, "dtype": "float32", "merge_mode": "concat",
        "layer": tf_keras_layer("CuDNNLSTM", "cu_dnnlstm", units, **layer), **config}}
    write_tf_keras_h5(path, [wrapper], {"both_ways": dict(zip(names, weights))})
    return weights


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul"])
@pytest.mark.parametrize("return_sequences", [True, False])
def test_tf_keras_h5_bidirectional_cudnnlstm(tmp_path, merge_mode, return_sequences):
    """tf.keras Bidirectional(CuDNNLSTM) becomes an lstmgen.Bidirectional of two CuDNNLSTM layers
    holding the file's weights; oracle: Keras 3's Bidirectional(LSTM) with each direction's
    CuDNNLSTM weights converted by cudnnlstm_to_lstm."""
    weights = write_bidirectional_cudnnlstm_h5(
        tmp_path / "tf.h5", seed=26, units=3, merge_mode=merge_mode,
        layer={"return_sequences": return_sequences})
    ours = lstmgen.from_keras(tmp_path / "tf.h5")["both_ways"]
    assert isinstance(ours, lstmgen.Bidirectional) and ours.merge_mode == merge_mode
    assert all(isinstance(d, lstmgen.CuDNNLSTM) for d in (ours.forward_layer, ours.backward_layer))
    assert (ours.forward_layer.name, ours.backward_layer.name) == ("forward_cu_dnnlstm",
                                                                   "backward_cu_dnnlstm")
    assert ours.backward_layer.go_backwards and not ours.forward_layer.go_backwards
    for got, stored in zip(ours.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(got, stored)
    oracle = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=return_sequences),
                                        merge_mode=merge_mode)
    oracle.build((N, T, C))
    oracle.set_weights([*cudnnlstm_to_lstm(*weights[:3]), *cudnnlstm_to_lstm(*weights[3:])])
    xs = inputs("float32", seed=27)
    np.testing.assert_allclose(ours(xs), keras_output(oracle, xs), **tolerance("float32"))
    with pytest.raises(ValueError, match="_cu_dnnlstm'.*masking is not supported"):
        ours(xs, mask=np.ones((N, T), bool))


def test_tf_keras_h5_bidirectional_cudnnlstm_time_major_is_refused(tmp_path):
    write_bidirectional_cudnnlstm_h5(tmp_path / "tf.h5", seed=28, units=2,
                                     layer={"time_major": True})
    with pytest.raises(lstmgen.ModelImportError,
                       match=r"tf.h5, layer 'both_ways': time_major=True for CuDNNLSTM "
                             r"'cu_dnnlstm': is not supported"):
        lstmgen.from_keras(tmp_path / "tf.h5")


def test_keras_3_archive_without_keras(tmp_path):
    """Reading a .keras archive imports neither keras nor torch (run in a fresh interpreter)."""
    model = two_lstm_model(*CASES[0], "float32")
    model.save(tmp_path / "m.keras")
    import subprocess
    import sys
    code = ("import sys, lstmgen; layers = lstmgen.from_keras(sys.argv[1]); "
            "assert sorted(layers) == ['first', 'second'], layers; "
            "assert 'keras' not in sys.modules and 'torch' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.keras")], check=True)


def keras2_hard_sigmoid(x):
    return keras.ops.clip(0.2 * x + 0.5, 0.0, 1.0)


def tf_keras_layer(class_name: str, name: str, units: int, **config) -> dict:
    base = {"name": name, "trainable": True, "dtype": "float32", "return_sequences": True,
            "return_state": False, "go_backwards": False, "stateful": False, "time_major": False,
            "units": units, "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
            "recurrent_initializer": {"class_name": "Orthogonal", "config": {"gain": 1.0, "seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}}, "unit_forget_bias": True,
            "kernel_regularizer": None, "recurrent_regularizer": None, "bias_regularizer": None,
            "activity_regularizer": None, "kernel_constraint": None, "recurrent_constraint": None,
            "bias_constraint": None}
    if class_name == "LSTM":
        base.update(activation="tanh", recurrent_activation="hard_sigmoid", use_bias=True,
                    dropout=0.0, recurrent_dropout=0.0, implementation=2, unroll=False,
                    zero_output_for_mask=False)
    return {"class_name": class_name, "config": {**base, **config}}


def write_tf_keras_h5(path, layers: list, weights: dict) -> None:
    """A legacy tf.keras (2.x) model file written by hand with h5py, in tf.keras's layout: TensorFlow
    is not installed here, and Keras 3 can no longer write tf.keras configs or CuDNNLSTM layers.
    `weights`: layer name -> {weight name: array}; stored as `<layer>/<layer>/.../<name>:0`."""
    config = {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, T, C], "dtype": "float32",
                                                "sparse": False, "ragged": False, "name": "inp"}}]
        + layers}}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.8.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = [b"inp"] + [w.encode() for w in weights]
        group.create_group("inp").attrs["weight_names"] = np.array([], dtype="S1")
        for layer, arrays in weights.items():
            names = [f"{layer}/{k}:0" for k in arrays]
            layer_group = group.create_group(layer)
            layer_group.attrs["weight_names"] = [n.encode() for n in names]
            for name, array in zip(names, arrays.values()):
                layer_group.create_dataset(name, data=array)


def test_tf_keras_h5_lstm_and_cudnnlstm(tmp_path):
    """tf.keras LSTM (hard_sigmoid = Keras 2's 0.2x + 0.5) then CuDNNLSTM (stored kernel layout);
    oracle: Keras 3 LSTMs with Keras 2's hard sigmoid and the CuDNNLSTM weights converted."""
    rng = np.random.default_rng(11)
    lstm = [rng.normal(0, 0.5, s).astype("float32") for s in ((C, 16), (4, 16), (16,))]
    cudnn = [rng.normal(0, 0.5, s).astype("float32") for s in ((4, 12), (3, 12), (24,))]
    write_tf_keras_h5(tmp_path / "tf.h5",
                      [tf_keras_layer("LSTM", "lstm", 4), tf_keras_layer("CuDNNLSTM", "cu_dnnlstm", 3)],
                      {"lstm": dict(zip(("lstm_cell/kernel", "lstm_cell/recurrent_kernel",
                                         "lstm_cell/bias"), lstm)),
                       "cu_dnnlstm": dict(zip(("kernel", "recurrent_kernel", "bias"), cudnn))})
    layers = lstmgen.from_keras(tmp_path / "tf.h5")
    assert isinstance(layers["lstm"], lstmgen.LSTM)
    assert layers["lstm"].recurrent_activation == "keras2_hard_sigmoid"
    assert isinstance(layers["cu_dnnlstm"], lstmgen.CuDNNLSTM)
    for ours, stored in zip(layers["cu_dnnlstm"].get_weights(), cudnn):
        np.testing.assert_array_equal(ours, stored)
    x = keras.Input((T, C))
    y = keras.layers.LSTM(4, return_sequences=True, recurrent_activation=keras2_hard_sigmoid)(x)
    oracle = keras.Model(x, keras.layers.LSTM(3, return_sequences=True)(y))
    oracle.layers[1].set_weights(lstm)
    oracle.layers[2].set_weights(list(cudnnlstm_to_lstm(*cudnn)))
    xs = inputs("float32", seed=12)
    np.testing.assert_allclose(layers["cu_dnnlstm"](layers["lstm"](xs)),
                               keras_output(oracle, xs), **tolerance("float32"))


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_from_torch_matches_torch(batch_first, bias, dtype):
    torch.manual_seed(int(batch_first) + 2 * int(bias))
    module = torch.nn.LSTM(C, 5, bias=bias, batch_first=batch_first).to(getattr(torch, dtype))
    shape = (N, T, C) if batch_first else (T, N, C)
    x = inputs(dtype, seed=13, shape=shape)
    h0, c0 = inputs(dtype, seed=14, shape=(1, N, 5)), inputs(dtype, seed=15, shape=(1, N, 5))
    with torch.no_grad():
        want, (want_h, want_c) = module(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
        want_zero, _ = module(torch.from_numpy(x))
    state = {k: v.numpy() for k, v in module.state_dict().items()}
    for ours in (lstmgen.from_torch(module),
                 lstmgen.from_torch(state, batch_first=batch_first, bias=bias, hidden_size=5)):
        assert ours.dtype == np.dtype(dtype)
        got, (h, c) = ours(x, (h0, c0))
        assert got.shape == tuple(want.shape) and h.shape == c.shape == (1, N, 5)
        np.testing.assert_allclose(got, want.numpy(), **tolerance(dtype))
        np.testing.assert_allclose(h, want_h.numpy(), **tolerance(dtype))
        np.testing.assert_allclose(c, want_c.numpy(), **tolerance(dtype))
        np.testing.assert_allclose(ours(x)[0], want_zero.numpy(), **tolerance(dtype))


@pytest.mark.parametrize("proj_size, bias, batch_first, dtype", [
    (2, True, True, "float32"), (3, False, False, "float32"), (1, True, False, "float64")])
def test_from_torch_proj_size_matches_torch(proj_size, bias, batch_first, dtype):
    """h_0 / h_n and the output are proj_size wide, c_0 / c_n hidden_size; two biases kept."""
    torch.manual_seed(proj_size)
    module = torch.nn.LSTM(C, 5, bias=bias, batch_first=batch_first, proj_size=proj_size)
    module = module.to(getattr(torch, dtype))
    x = inputs(dtype, seed=20, shape=(N, T, C) if batch_first else (T, N, C))
    h0, c0 = inputs(dtype, seed=21, shape=(1, N, proj_size)), inputs(dtype, seed=22, shape=(1, N, 5))
    with torch.no_grad():
        want, (want_h, want_c) = module(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
        want_unbatched, _ = module(torch.from_numpy(x[0] if batch_first else x[:, 0]))
    state = {k: v.numpy() for k, v in module.state_dict().items()}
    for ours in (lstmgen.from_torch(module), lstmgen.from_torch(state, batch_first=batch_first, bias=bias)):
        assert ours.proj_size == proj_size and ours.stack.layers[0].spec.use_recurrent_bias == bias
        got, (h, c) = ours(x, (h0, c0))
        assert h.shape == (1, N, proj_size) and c.shape == (1, N, 5)
        for mine, theirs in ((got, want), (h, want_h), (c, want_c)):
            np.testing.assert_allclose(mine, theirs.numpy(), **tolerance(dtype))
        np.testing.assert_allclose(ours(x[0] if batch_first else x[:, 0])[0], want_unbatched.numpy(),
                                   **tolerance(dtype))
    with pytest.raises(ValueError, match=rf"h_0, c_0\) of shapes \(1, {N}, {proj_size}\) and \(1, {N}, 5\)"):
        ours(x, (c0, c0))


def test_from_torch_unbatched_input():
    module = torch.nn.LSTM(C, 4)
    x = inputs("float32", seed=16, shape=(T, C))
    h0 = inputs("float32", seed=17, shape=(1, 4))
    with torch.no_grad():
        want, (want_h, want_c) = module(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(h0)))
    got, (h, c) = lstmgen.from_torch(module)(x, (h0, h0))
    assert got.shape == (T, 4) and h.shape == c.shape == (1, 4)
    for ours, theirs in ((got, want), (h, want_h), (c, want_c)):
        np.testing.assert_allclose(ours, theirs.numpy(), **tolerance("float32"))


@settings(max_examples=8, deadline=None)
@given(num_layers=st.integers(1, 3), bidirectional=st.booleans(), batch_first=st.booleans(),
       bias=st.booleans(), proj_size=st.sampled_from([0, 3]), seed=st.integers(0, 2**31 - 1))
def test_from_torch_layers_and_directions_match_torch(num_layers, bidirectional, batch_first, bias,
                                                      proj_size, seed):
    """Random stacks (float32, within 2e-5 relative): output, h_n [L*D, N, P] and c_n [L*D, N, H],
    with and without hx, batched and unbatched. Sizes C = 3, H = 5, P = 3 throughout, so few
    variants compile. The state_dict route infers proj_size from weight_hr_l0."""
    torch.manual_seed(seed)
    module = torch.nn.LSTM(C, 5, num_layers=num_layers, bias=bias, batch_first=batch_first,
                           bidirectional=bidirectional, proj_size=proj_size,
                           dropout=0.25 if num_layers > 1 else 0.0).eval()
    rows = num_layers * (2 if bidirectional else 1)
    x = inputs("float32", seed=seed % 1000, shape=(N, T, C) if batch_first else (T, N, C))
    hx = tuple(inputs("float32", seed=seed % 1000 + k, shape=(rows, N, size))
               for k, size in ((1, proj_size or 5), (2, 5)))
    state = {k: v.numpy() for k, v in module.state_dict().items()}
    ours = lstmgen.from_torch(state, num_layers=num_layers, bidirectional=bidirectional,
                              batch_first=batch_first, bias=bias)
    for args in ((x, hx), (x,), (x[0] if batch_first else x[:, 0], tuple(h[:, 0] for h in hx))):
        with torch.no_grad():
            want, (want_h, want_c) = module(*(torch.from_numpy(a) if isinstance(a, np.ndarray) else
                                              tuple(map(torch.from_numpy, a)) for a in args))
        got, (h, c) = ours(*args)
        for mine, theirs in ((got, want), (h, want_h), (c, want_c)):
            assert mine.shape == tuple(theirs.shape)
            np.testing.assert_allclose(mine, theirs.numpy(), **tolerance("float32"))


def test_from_torch_module_in_training_mode_applies_dropout_between_layers():
    module = torch.nn.LSTM(C, 5, num_layers=2, bidirectional=True, dropout=0.5)
    ours = lstmgen.from_torch(module)
    assert not ours.training and ours.stack.dropout == 0.5
    x = inputs("float32", seed=31, shape=(T, N, C))
    with torch.no_grad():
        want = module.eval()(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(ours(x)[0], want, **tolerance("float32"))
    assert not np.allclose(ours.train()(x)[0], want)
    np.testing.assert_array_equal(ours.eval()(x)[0], ours(x)[0])



def test_from_torch_bad_state_dicts():
    state = torch.nn.LSTM(C, 4, num_layers=2).state_dict()
    with pytest.raises(lstmgen.ModelImportError, match="weight_ih_l1.*deeper layer's, but num_layers=1"):
        lstmgen.from_torch(state)  # constructor arguments left out
    state = torch.nn.LSTM(C, 4, bidirectional=True).state_dict()
    with pytest.raises(lstmgen.ModelImportError, match="weight_ih_l0_reverse.*bidirectional=False"):
        lstmgen.from_torch(state)
    with pytest.raises(lstmgen.ModelImportError, match=r"state_dict lacks \['weight_ih_l1'"):
        lstmgen.from_torch(state, num_layers=2, bidirectional=True)
    state = torch.nn.LSTM(C, 4, num_layers=2, bidirectional=True).state_dict()
    state["weight_ih_l1"] = state["weight_ih_l1"][:, :4]
    with pytest.raises(lstmgen.ModelImportError, match=r"weight_ih_l1 has shape \(16, 4\), expected \(16, 8\)"):
        lstmgen.from_torch(state, num_layers=2, bidirectional=True)
    with pytest.raises(lstmgen.ModelImportError, match="num_layers=0: expected a positive int"):
        lstmgen.from_torch(state, num_layers=0)
    state = torch.nn.LSTM(C, 4).state_dict()
    with pytest.raises(lstmgen.ModelImportError, match="bias_ih_l0.*bias=False"):
        lstmgen.from_torch(state, bias=False)
    with pytest.raises(lstmgen.ModelImportError, match=r"weight_ih_l0 has shape \(16, 3\), expected \(16, 5\)"):
        lstmgen.from_torch(state, input_size=5)
    state = {k: v.numpy() for k, v in torch.nn.LSTM(C, 4, proj_size=2).state_dict().items()}
    with pytest.raises(lstmgen.ModelImportError, match=r"weight_hr_l0 has shape \(3, 4\), expected \(2, 4\)"):
        lstmgen.from_torch({**state, "weight_hr_l0": np.zeros((3, 4))}, proj_size=2)
    with pytest.raises(lstmgen.ModelImportError, match=r"'weight_hr_l0' \(a projection's, but proj_size=0\)"):
        lstmgen.from_torch(state, proj_size=0)
    with pytest.raises(TypeError, match="nonlinearity"):
        lstmgen.from_torch(state, nonlinearity="relu")
    with pytest.raises(TypeError, match="torch.nn.LSTM"):
        lstmgen.from_torch(torch.nn.GRU(C, 4))
    with pytest.raises(ValueError, match=r"hx for 'lstm': expected \(h_0, c_0\) of shapes \(2, 4, 4\) and \(2, 4, 4\)"):
        lstmgen.from_torch(torch.nn.LSTM(C, 4, bidirectional=True))(
            inputs("float32", seed=1, shape=(T, N, C)), (np.zeros((1, N, 4)), np.zeros((1, N, 4))))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.keras"):
        lstmgen.from_keras(tmp_path / "nope.keras")


@pytest.fixture
def saved(tmp_path):
    model = two_lstm_model(*CASES[0], "float32")
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    return tmp_path


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_truncated_files(saved, suffix):
    data = (saved / f"m{suffix}").read_bytes()
    (saved / f"cut{suffix}").write_bytes(data[:len(data) // 2])
    with pytest.raises(lstmgen.ModelImportError, match=f"cut{suffix}.*(truncated|unreadable)"):
        lstmgen.from_keras(saved / f"cut{suffix}")


def test_files_that_are_not_models(saved):
    (saved / "text.keras").write_text("hello")
    with pytest.raises(lstmgen.ModelImportError, match="text.keras: neither a .keras archive"):
        lstmgen.from_keras(saved / "text.keras")
    with zipfile.ZipFile(saved / "other.keras", "w") as archive:
        archive.writestr("readme.txt", "not a model")
    with pytest.raises(lstmgen.ModelImportError, match="other.keras: .*without config.json"):
        lstmgen.from_keras(saved / "other.keras")
    model = two_lstm_model(*CASES[0], "float32")
    model.save_weights(saved / "only.weights.h5")
    with pytest.raises(lstmgen.ModelImportError, match="only.weights.h5: .*model_config"):
        lstmgen.from_keras(saved / "only.weights.h5")


def test_model_without_lstm_layer(tmp_path):
    model = keras.Sequential([keras.Input((T, C)), keras.layers.Dense(2, name="dense")])
    model.save(tmp_path / "dense.keras")
    with pytest.raises(lstmgen.ModelImportError, match="dense.keras: no LSTM layer found"):
        lstmgen.from_keras(tmp_path / "dense.keras")
    with pytest.raises(lstmgen.ModelImportError, match="dense.keras, layer 'dense': no LSTM layer of"):
        lstmgen.from_keras(tmp_path / "dense.keras", "dense")
    with pytest.raises(lstmgen.ModelImportError, match="'dense': a Dense layer is not an LSTM"):
        lstmgen.from_keras(model.get_layer("dense"))


def test_weights_of_the_wrong_shape(saved):
    # .keras: rewrite the archive with the first layer's recurrent kernel one row short.
    with zipfile.ZipFile(saved / "m.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    store = io.BytesIO(members["model.weights.h5"])
    with h5py.File(store, "a") as f:
        recurrent_kernel = f["layers/lstm/cell/vars/1"][()]
        del f["layers/lstm/cell/vars/1"]
        f["layers/lstm/cell/vars/1"] = recurrent_kernel[:-1]
    members["model.weights.h5"] = store.getvalue()
    with zipfile.ZipFile(saved / "bad.keras", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(lstmgen.ModelImportError,
                       match=r"bad.keras, layer 'first': weights\[1\] .*shape \(4, 20\), expected \(5, 20\)"):
        lstmgen.from_keras(saved / "bad.keras")
    # The other layer is still importable by name.
    assert lstmgen.from_keras(saved / "bad.keras", "second").units == 4
    # .h5: a bias of the wrong length.
    with h5py.File(saved / "m.h5", "a") as f:
        del f["model_weights/second/second/lstm_cell/bias"]
        f["model_weights/second/second/lstm_cell/bias"] = np.zeros(3, "float32")
    with pytest.raises(lstmgen.ModelImportError, match=r"m.h5, layer 'second': weights\[2\].*\(3,\)"):
        lstmgen.from_keras(saved / "m.h5")
    with h5py.File(saved / "m.h5", "a") as f:
        del f["model_weights/second/second/lstm_cell/kernel"]
    with pytest.raises(lstmgen.ModelImportError, match="m.h5, layer 'second': weight 'second/lstm_cell/kernel' .* missing"):
        lstmgen.from_keras(saved / "m.h5", "second")
