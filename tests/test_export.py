"""`lstmgen compile MODEL`: Keras 3 models saved as .keras / .h5 (and a tf.keras .h5 with a
CuDNNLSTM) compiled into modules + .npz weights; the generated modules, fed by their own `load()`,
must reproduce Keras's predictions. Bad files write nothing.
"""

import importlib.util
import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import lstmgen  # noqa: E402
from keras_float64 import exact_float64_matmul  # noqa: E402,F401  (autouse fixture)
from lstmgen.cli import main  # noqa: E402
from test_importers import (C, N, T, inputs, keras_output, randomize, tf_keras_layer,  # noqa: E402
                            tolerance, write_bidirectional_cudnnlstm_h5, write_tf_keras_h5)
from lstmgen.interop.cudnnlstm import cudnnlstm_to_lstm  # noqa: E402


def compile_model(capsys, path, out) -> dict:
    """Run `lstmgen compile path -o out`; {layer key: (module, weights path)}."""
    assert main(["compile", str(path), "-o", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    result = {}
    for line in lines:
        key, files = line.split(": ")
        module_path, weights_path = files.split(" ")
        spec = importlib.util.spec_from_file_location(f"exported_{len(result)}", module_path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        result[key] = (module, weights_path)
    return result


def run(exported, key, x):
    module, weights_path = exported[key]
    weights = module.load(weights_path)
    h0 = np.zeros((x.shape[1] if module.TIME_MAJOR else x.shape[0], module.UNITS), module.DTYPE)
    output, _, _ = module.forward(x, *weights, h0, h0.copy())
    return output


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_compiled_layers_reproduce_the_model(tmp_path, capsys, suffix):
    x_in = keras.Input((T, C))
    y = keras.layers.LSTM(5, return_sequences=True, go_backwards=True, name="encoder")(x_in)
    inner_in = keras.Input((T, 5))
    inner = keras.Model(inner_in, keras.layers.LSTM(4, activation="relu", name="decoder")(inner_in),
                        name="inner")
    model = keras.Model(x_in, inner(y))
    randomize(model, seed=1)
    randomize(inner, seed=2)
    model.save(tmp_path / f"model{suffix}")

    exported = compile_model(capsys, tmp_path / f"model{suffix}", tmp_path / "out")
    assert set(exported) == {"encoder", "inner/decoder"}
    assert os.path.basename(exported["inner/decoder"][1]) == "model.inner_decoder.npz"
    x = inputs("float32", seed=3)
    ours = run(exported, "inner/decoder", run(exported, "encoder", x))
    np.testing.assert_allclose(ours, keras_output(model, x), **tolerance("float32"))


def test_bidirectional_compiles_as_its_two_layers(tmp_path, capsys):
    """Each direction's module and weights; the backward one runs go_backwards (its output last
    step first), and concat merges the forward output with the backward one flipped back."""
    x_in = keras.Input((T, C))
    model = keras.Model(x_in, keras.layers.Bidirectional(
        keras.layers.LSTM(3, return_sequences=True), name="both")(x_in))
    randomize(model, seed=8)
    model.save(tmp_path / "bi.keras")
    exported = compile_model(capsys, tmp_path / "bi.keras", tmp_path / "out")
    assert set(exported) == {"both/forward", "both/backward"}
    x = inputs("float32", seed=9)
    ours = np.concatenate([run(exported, "both/forward", x),
                           run(exported, "both/backward", x)[:, ::-1]], axis=-1)
    np.testing.assert_allclose(ours, keras_output(model, x), **tolerance("float32"))


def test_saved_spec_rebuilds_the_layer(tmp_path, capsys):
    x_in = keras.Input((T, C), dtype="float64")
    model = keras.Model(x_in, keras.layers.LSTM(3, return_sequences=True, dtype="float64",
                                                recurrent_activation="hard_sigmoid")(x_in))
    randomize(model, seed=4)
    model.save(tmp_path / "m.keras")
    (module, weights_path), = compile_model(capsys, tmp_path / "m.keras", tmp_path).values()
    with np.load(weights_path) as saved:
        layer = lstmgen.LSTM.from_config(json.loads(str(saved["spec"])))
        assert str(saved["module"]) + ".py" == os.path.basename(module.__file__)
    layer.set_weights(module.load(weights_path))
    x = inputs("float64", seed=5)
    np.testing.assert_allclose(layer(x), keras_output(model, x), **tolerance("float64"))
    assert layer.recurrent_activation == "hard_sigmoid"


def test_tf_keras_cudnnlstm_runs_as_its_lstm(tmp_path, capsys):
    rng = np.random.default_rng(6)
    cudnn = [rng.normal(0, 0.5, s).astype("float32") for s in ((C, 12), (3, 12), (24,))]
    write_tf_keras_h5(tmp_path / "tf.h5", [tf_keras_layer("CuDNNLSTM", "cu", 3)],
                      {"cu": dict(zip(("kernel", "recurrent_kernel", "bias"), cudnn))})
    exported = compile_model(capsys, tmp_path / "tf.h5", tmp_path / "out")
    x_in = keras.Input((T, C))
    oracle = keras.Model(x_in, keras.layers.LSTM(3, return_sequences=True)(x_in))
    oracle.layers[1].set_weights(list(cudnnlstm_to_lstm(*cudnn)))
    x = inputs("float32", seed=7)
    np.testing.assert_allclose(run(exported, "cu", x), keras_output(oracle, x), **tolerance("float32"))


def test_tf_keras_bidirectional_cudnnlstm_compiles_as_the_lstms_of_its_directions(tmp_path, capsys):
    weights = write_bidirectional_cudnnlstm_h5(tmp_path / "tf.h5", seed=10, units=3)
    exported = compile_model(capsys, tmp_path / "tf.h5", tmp_path / "out")
    assert set(exported) == {"both_ways/forward", "both_ways/backward"}
    oracle = keras.layers.Bidirectional(keras.layers.LSTM(3, return_sequences=True))
    oracle.build((N, T, C))
    oracle.set_weights([*cudnnlstm_to_lstm(*weights[:3]), *cudnnlstm_to_lstm(*weights[3:])])
    x = inputs("float32", seed=11)
    ours = np.concatenate([run(exported, "both_ways/forward", x),
                           run(exported, "both_ways/backward", x)[:, ::-1]], axis=-1)
    np.testing.assert_allclose(ours, keras_output(oracle, x), **tolerance("float32"))


def test_load_refuses_another_modules_weights(tmp_path, capsys):
    x_in = keras.Input((T, C))
    y = keras.layers.LSTM(2, return_sequences=True, name="a")(x_in)
    model = keras.Model(x_in, keras.layers.LSTM(3, name="b")(y))
    model.save(tmp_path / "m.keras")
    exported = compile_model(capsys, tmp_path / "m.keras", tmp_path)
    with pytest.raises(ValueError, match="spec hash"):
        exported["a"][0].load(exported["b"][1])


@pytest.mark.parametrize("content, message", [
    (b"not a model", "neither a .keras archive"),
    (None, "no such model file"),
])
def test_bad_model_file_exits_2_and_writes_nothing(tmp_path, capsys, content, message):
    path = tmp_path / "bad.keras"
    if content is not None:
        path.write_bytes(content)
    out = tmp_path / "out"
    assert main(["compile", str(path), "-o", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_layer_that_cannot_be_compiled_writes_nothing(tmp_path, capsys):
    """The second layer is refused (mixed precision): the first layer's files must not appear."""
    x_in = keras.Input((T, C))
    y = keras.layers.LSTM(2, return_sequences=True, name="fine")(x_in)
    model = keras.Model(x_in, keras.layers.LSTM(3, name="half", dtype="mixed_float16")(y))
    model.save(tmp_path / "m.keras")
    out = tmp_path / "out"
    assert main(["compile", str(tmp_path / "m.keras"), "-o", str(out)]) == 2
    assert "half" in capsys.readouterr().err
    assert not out.exists()


def onnx_lstm_file(path, weights_as_inputs=False):
    """A bidirectional ONNX LSTM node (peepholes, two biases, other activations, clip) whose
    weights are initializers; with `weights_as_inputs`, W is a graph input instead."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(10)
    hidden = 3
    arrays = {"W": rng.normal(0, 0.5, (2, 4 * hidden, C)), "R": rng.normal(0, 0.5, (2, 4 * hidden, hidden)),
              "B": rng.normal(0, 0.2, (2, 8 * hidden)), "P": rng.normal(0, 0.3, (2, 3 * hidden))}
    arrays = {k: v.astype("float32") for k, v in arrays.items()}
    node = helper.make_node("LSTM", ["X", "W", "R", "B", "", "", "", "P"], ["Y", "Y_h", "Y_c"],
                            name="seq", hidden_size=hidden, direction="bidirectional", clip=2.0,
                            activations=["HardSigmoid", "Tanh", "Softsign", "Sigmoid", "Tanh", "Tanh"],
                            activation_alpha=[0.25], activation_beta=[0.4])
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, None, C])]
    if weights_as_inputs:
        inputs.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, list(arrays.pop("W").shape)))
    graph = helper.make_graph(
        [node], "g", inputs, [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("Y", "Y_h", "Y_c")],
        initializer=[numpy_helper.from_array(v, k) for k, v in arrays.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)]), path)


def test_onnx_node_compiles_as_its_directions(tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    onnx_lstm_file(tmp_path / "seq.onnx")
    exported = compile_model(capsys, tmp_path / "seq.onnx", tmp_path / "out")
    assert set(exported) == {"seq/forward", "seq/backward"}
    x = inputs("float32", seed=11, shape=(T, 4, C))  # layout 0: time-major
    y = np.stack([run(exported, "seq/forward", x), run(exported, "seq/backward", x)[::-1]], axis=1)
    session = ort.InferenceSession(str(tmp_path / "seq.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(y, session.run(["Y"], {"X": x})[0], rtol=2e-5, atol=2e-6)


def test_onnx_weights_that_are_not_in_the_file_are_refused(tmp_path, capsys):
    onnx_lstm_file(tmp_path / "seq.onnx", weights_as_inputs=True)
    assert main(["compile", str(tmp_path / "seq.onnx"), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "'seq'" in err and "input W ('W') is not an initializer" in err
    (tmp_path / "bad.onnx").write_bytes(b"garbage\x00\x01")
    assert main(["compile", str(tmp_path / "bad.onnx"), "-o", str(tmp_path / "out")]) == 2
    assert "not an ONNX model file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
