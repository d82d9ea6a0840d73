"""`lstmgen.onnx_backend` against ONNX's own LSTM test cases, ONNX Runtime (layout 0) and
`onnx.reference.ReferenceEvaluator` (layout 1, which ONNX Runtime rejects), and its refusals.

Tolerances: float32 within rtol 1e-5, atol 1e-6; float64 within 1e-12.
"""

import concurrent.futures
import functools
import subprocess
import sys
import warnings

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import lstmgen

ort = pytest.importorskip("onnxruntime")

# ONNX's LSTM cases (onnx 1.23) and what lstmgen's spec cannot compute yet, by the refusal it gives.
ONNX_CASES = {"test_lstm_defaults": None, "test_lstm_with_initial_bias": None,
              "test_lstm_batchwise": None, "test_lstm_reverse": None,
              "test_lstm_with_peepholes": None, "test_lstm_bidirectional": None}
DIRECTIONS = ["forward", "reverse", "bidirectional"]
C, N, T, H = 3, 4, 6, 5
RANKS = {"X": 3, "W": 3, "R": 3, "B": 2, "sequence_lens": 1, "initial_h": 3, "initial_c": 3, "P": 2,
         "Y": 4, "Y_h": 3, "Y_c": 3}


def tolerance(dtype) -> dict:
    return dict(rtol=1e-5, atol=1e-6) if np.dtype(dtype) == np.float32 else dict(rtol=1e-12, atol=1e-12)


@functools.cache
def onnx_cases() -> dict:
    from onnx.backend.test.case import node

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # other ops' case generators overflow on purpose
        return {case.name: case for case in node.collect_testcases(op_type="LSTM")}


def test_onnx_cases_are_the_known_ones():
    """A case added, renamed or dropped by onnx fails here until ONNX_CASES says what to expect."""
    assert sorted(onnx_cases()) == sorted(ONNX_CASES)


@pytest.mark.parametrize("name", sorted(ONNX_CASES))
def test_onnx_case(name):
    case = onnx_cases()[name]
    assert case.kind == "node" and case.data_sets
    for inputs, expected in case.data_sets:
        if ONNX_CASES[name] is not None:
            with pytest.raises(lstmgen.ModelImportError, match="not supported yet") as error:
                lstmgen.onnx_backend.prepare(case.model).run(inputs)
            assert ONNX_CASES[name] in str(error.value)
            continue
        outputs = lstmgen.onnx_backend.prepare(case.model).run(inputs)
        assert len(outputs) == len(expected)
        for got, want in zip(outputs, expected):
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_allclose(got, want, **tolerance(want.dtype))
        node = case.model.graph.node[0]
        by_node = lstmgen.onnx_backend.run_node(node, inputs)
        for got, want in zip(by_node, expected):
            np.testing.assert_allclose(got, want, **tolerance(want.dtype))


def lstm_model(dtype, direction="forward", layout=0, present=("B", "sequence_lens", "initial_h",
               "initial_c"), hidden=H, **attrs) -> onnx.ModelProto:
    """A graph of one LSTM node whose every present input is a graph input."""
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    names = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
    used = [n if n in ("X", "W", "R") or n in present else "" for n in names]
    while used[-1] == "":
        used.pop()
    node = helper.make_node("LSTM", used, ["Y", "Y_h", "Y_c"], name="lstm_under_test",
                            hidden_size=hidden, direction=direction, layout=layout, **attrs)
    graph = helper.make_graph(
        [node], "lstm_graph",
        [helper.make_tensor_value_info(n, TensorProto.INT32 if n == "sequence_lens" else elem,
                                       [None] * RANKS[n]) for n in used if n],
        [helper.make_tensor_value_info(n, elem, [None] * RANKS[n]) for n in ("Y", "Y_h", "Y_c")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def lstm_inputs(rng, dtype, layout=0, present=("B", "sequence_lens", "initial_h", "initial_c"),
                lengths=None, direction="forward") -> dict:
    """Random inputs (never zeros) for `lstm_model`."""
    def normal(*shape, scale=0.6):
        return rng.normal(0, scale, shape).astype(dtype)

    d = 2 if direction == "bidirectional" else 1
    values = {"X": normal(*((N, T, C) if layout else (T, N, C)), scale=1.0),
              "W": normal(d, 4 * H, C), "R": normal(d, 4 * H, H), "B": normal(d, 8 * H),
              "sequence_lens": np.asarray(lengths if lengths is not None else rng.integers(1, T + 1, N),
                                          np.int32),
              "initial_h": normal(*((N, d, H) if layout else (d, N, H))),
              "initial_c": normal(*((N, d, H) if layout else (d, N, H))), "P": normal(d, 3 * H)}
    return {k: v for k, v in values.items() if k in ("X", "W", "R") or k in present}


def run_ours(model, inputs: dict) -> tuple:
    return tuple(lstmgen.onnx_backend.prepare(model).run(inputs))


OPTIONAL = ("B", "sequence_lens", "initial_h", "initial_c")


@settings(max_examples=24, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), direction=st.sampled_from(DIRECTIONS),
       present=st.sets(st.sampled_from(OPTIONAL)))
def test_against_onnx_runtime(seed, direction, present):
    """float32 only: ONNX Runtime's LSTM "does not support double yet" (1.32)."""
    dtype = "float32"
    rng = np.random.default_rng(seed)
    model = lstm_model(dtype, direction, present=present)
    inputs = lstm_inputs(rng, dtype, present=present, direction=direction)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, inputs)
    for got, want in zip(run_ours(model, inputs), expected):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, **tolerance(dtype))


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_sequence_lens_against_onnx_runtime(direction):
    """Lengths from 1 to T in one batch: Y is zero past each length, Y_h / Y_c the last valid state."""
    rng = np.random.default_rng(7 + len(direction))
    model = lstm_model("float32", direction)
    inputs = lstm_inputs(rng, "float32", lengths=[1, T, 3, T - 1], direction=direction)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, inputs)
    got = run_ours(model, inputs)
    for ours, want in zip(got, expected):
        np.testing.assert_allclose(ours, want, **tolerance("float32"))
    assert np.all(got[0][1:, :, 0] == 0) and np.all(got[0][:1, :, 0] != 0)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_empty_sequences_against_onnx_runtime(direction):
    """A length of 0: Y zero throughout and Y_h / Y_c zero too (not initial_h / initial_c), as ONNX
    Runtime gives; the other rows unaffected."""
    rng = np.random.default_rng(17 + len(direction))
    model = lstm_model("float32", direction)
    inputs = lstm_inputs(rng, "float32", lengths=[0, T, 2, 0], direction=direction)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, inputs)
    got = run_ours(model, inputs)
    for ours, want in zip(got, expected):
        np.testing.assert_allclose(ours, want, **tolerance("float32"))
    assert np.all(got[1][:, [0, 3]] == 0) and np.all(got[1][:, [1, 2]] != 0)


@settings(max_examples=16, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), direction=st.sampled_from(DIRECTIONS),
       present=st.sets(st.sampled_from(("B", "initial_h", "initial_c", "P"))),
       dtype=st.sampled_from(["float32", "float64"]), layout=st.sampled_from([0, 1]))
def test_against_reference_evaluator(seed, direction, present, dtype, layout):
    """Layout 1 (which ONNX Runtime rejects) and float64 (which it does not run); peepholes (the
    evaluator computes no other cell option)."""
    rng = np.random.default_rng(seed)
    model = lstm_model(dtype, direction, layout=layout, present=present)
    inputs = lstm_inputs(rng, dtype, layout=layout, present=present, direction=direction)
    expected = ReferenceEvaluator(model).run(None, inputs)
    got = run_ours(model, inputs)
    d = 2 if direction == "bidirectional" else 1
    shapes = [(N, T, d, H), (N, d, H), (N, d, H)] if layout else [(T, d, N, H), (d, N, H), (d, N, H)]
    assert [g.shape for g in got] == shapes
    for ours, want in zip(got, expected):
        np.testing.assert_allclose(ours, want.astype(dtype), **tolerance(dtype))


@pytest.mark.parametrize("direction, case", [(d, None) for d in DIRECTIONS]
                         + [("forward", "peepholes_clip_scaled")])
def test_layout_1_sequence_lens_equals_layout_0(direction, case):
    """The reference evaluator ignores sequence_lens and the cell options but peepholes; layout 0
    (checked against ONNX Runtime) is the oracle for layout 1 with them."""
    rng = np.random.default_rng(11)
    attrs, present = CELL_CASES[case] if case else ({}, OPTIONAL)
    inputs0 = lstm_inputs(rng, "float64", lengths=[2, T, 1, 4], present=present, direction=direction)
    inputs1 = {k: (np.swapaxes(v, 0, 1) if k in ("X", "initial_h", "initial_c") else v)
               for k, v in inputs0.items()}
    y0, h0, c0 = run_ours(lstm_model("float64", direction, present=present, **attrs), inputs0)
    y1, h1, c1 = run_ours(lstm_model("float64", direction, layout=1, present=present, **attrs), inputs1)
    # Equal to rounding: batch-major code projects a padded batch row by row (_project_used),
    # time-major code in one product, and BLAS may sum in another order for another shape.
    same = dict(rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(y1, np.transpose(y0, (2, 0, 1, 3)), **same)
    np.testing.assert_allclose(h1, np.swapaxes(h0, 0, 1), **same)
    np.testing.assert_allclose(c1, np.swapaxes(c0, 0, 1), **same)


# Cell options ONNX's own cases lack, each node checked against ONNX Runtime: between them every ONNX
# activation in some role, with and without activation_alpha / _beta (ONNX Runtime's defaults for
# LeakyRelu, HardSigmoid and Elu are ONNX's; for Affine, ThresholdedRelu and ScaledTanh it takes 0,
# ONNX's operators 1, so those are always given), clip, input_forget, peepholes.
CELL_CASES = {
    "peepholes_clip_scaled": (dict(activations=["HardSigmoid", "LeakyRelu", "ScaledTanh"],
                                   activation_alpha=[0.25, 0.05, 1.3], activation_beta=[0.45, 0.8],
                                   clip=2.0), OPTIONAL + ("P",)),
    "input_forget_affine_elu": (dict(activations=["Sigmoid", "Affine", "Elu"],
                                     activation_alpha=[0.7, 1.4], activation_beta=[0.1],
                                     input_forget=1), OPTIONAL + ("P",)),
    "softsign_thresholded_softplus": (dict(activations=["softsign", "thresholdedrelu", "SOFTPLUS"],
                                           activation_alpha=[0.2], clip=1.5), ("B", "sequence_lens")),
    "relu_gates_clipped": (dict(activations=["Relu", "Tanh", "Relu"], clip=3.0, input_forget=1),
                           ("sequence_lens", "initial_c")),
    "onnx_defaults": (dict(activations=["HardSigmoid", "LeakyRelu", "Elu"]), OPTIONAL + ("P",)),
    # Six functions, f g h per direction; alpha / beta consumed across both directions in order.
    "bidirectional_mixed": (dict(activations=["HardSigmoid", "Tanh", "LeakyRelu",
                                              "Sigmoid", "ScaledTanh", "Tanh"],
                                 activation_alpha=[0.3, 0.02, 1.2], activation_beta=[0.4, 0.9],
                                 clip=2.5), OPTIONAL + ("P",)),
}


@pytest.mark.parametrize("case, direction", [
    ("peepholes_clip_scaled", "forward"), ("peepholes_clip_scaled", "reverse"),
    ("input_forget_affine_elu", "reverse"), ("softsign_thresholded_softplus", "forward"),
    ("relu_gates_clipped", "reverse"), ("onnx_defaults", "forward"),
    ("bidirectional_mixed", "bidirectional")])
def test_cell_options_against_onnx_runtime(case, direction):
    attrs, present = CELL_CASES[case]
    model = lstm_model("float32", direction, present=present, **attrs)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for seed in range(3):
        rng = np.random.default_rng(100 + seed)
        inputs = lstm_inputs(rng, "float32", present=present, direction=direction)
        expected = session.run(None, inputs)
        for got, want in zip(run_ours(model, inputs), expected):
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6 * max(1.0, np.abs(want).max()))


def test_zero_peepholes_are_no_peepholes():
    rng = np.random.default_rng(3)
    present = OPTIONAL + ("P",)
    inputs = lstm_inputs(rng, "float32", present=present)
    inputs["P"] = np.zeros_like(inputs["P"])
    with_p = run_ours(lstm_model("float32", present=present), inputs)
    inputs.pop("P")
    without = run_ours(lstm_model("float32"), inputs)
    for a, b in zip(with_p, without):  # not bit-equal: LLVM contracts the two loops differently
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_run_node_takes_a_list_with_absent_inputs():
    rng = np.random.default_rng(5)
    model = lstm_model("float32", present=("initial_h",))
    inputs = lstm_inputs(rng, "float32", present=("initial_h",))
    node = model.graph.node[0]
    as_list = [inputs.get(name) if name else None for name in node.input]
    by_node = lstmgen.onnx_backend.run_node(node, as_list)
    for a, b in zip(by_node, run_ours(model, inputs)):
        np.testing.assert_array_equal(a, b)


REFUSED = [
    (dict(direction="bidirectional", activations=["Sigmoid", "Tanh", "Tanh"]), {},
     "must name 6 functions"),
    (dict(activations=["Sigmoid", "Gelu", "Tanh"]), {}, "'Gelu' is not an ONNX LSTM activation"),
    (dict(activations=["Sigmoid", "Tanh"]), {}, "must name 3 functions"),
    (dict(activations=["HardSigmoid", "Tanh", "Relu"], activation_alpha=[0.3, 0.1, 0.2]), {},
     "activation_alpha=[0.30000001192092896, 0.10000000149011612, 0.20000000298023224] has 2 value(s)"),
    (dict(activation_beta=[0.5]), {}, "activation_beta=[0.5] has 1 value(s) that none"),
    (dict(clip=-2.5), {}, "clip=-2.5 is invalid"),
    (dict(input_forget=2), {}, "input_forget=2 is invalid"),
    (dict(hidden=H + 1), {}, f"hidden_size={H + 1}"),
    (dict(), {"X": "float16"}, "dtype float16"),
    (dict(), {"sequence_lens": [-1, T, 1, 2]}, "sequence_lens=[-1, 6, 1, 2]: each length must be in [0, 6]"),
]


@pytest.mark.parametrize("attrs, change, words", REFUSED, ids=[w for _, _, w in REFUSED])
def test_refusals_name_the_node_the_attribute_and_the_value(attrs, change, words):
    rng = np.random.default_rng(13)
    present = OPTIONAL + (("P",) if "P" in change else ())
    direction = attrs.pop("direction", "forward")
    hidden = attrs.pop("hidden", H)
    dtype = change.get("X", "float32")
    model = lstm_model(dtype, direction, present=present, hidden=hidden, **attrs)
    inputs = lstm_inputs(rng, "float32", present=present,
                         lengths=change.get("sequence_lens"))
    inputs["X"] = inputs["X"].astype(dtype)
    with pytest.raises(lstmgen.ModelImportError) as error:
        run_ours(model, inputs)
    message = str(error.value)
    assert "'lstm_under_test'" in message and words in message, message
    if any(w in words for w in ("direction", "dtype")):
        assert "not supported yet" in message


def test_one_direction_of_weights_for_a_bidirectional_node_is_refused():
    rng = np.random.default_rng(17)
    inputs = lstm_inputs(rng, "float32")  # W, R, B, initial states for one direction
    with pytest.raises(lstmgen.ModelImportError, match=r"'lstm_under_test': input W has shape "
                       r"\(1, 20, 3\), expected \(2, 20, 3\).*direction='bidirectional'"):
        run_ours(lstm_model("float32", "bidirectional"), inputs)


def test_other_ops_and_layouts_are_refused_at_prepare():
    relu = helper.make_node("Relu", ["X"], ["Y"], name="act")
    graph = helper.make_graph([relu], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])])
    with pytest.raises(lstmgen.ModelImportError, match=r"ONNX graph 'g', layer 'act': op Relu"):
        lstmgen.onnx_backend.prepare(helper.make_model(graph))
    with pytest.raises(lstmgen.ModelImportError, match=r"layer 'lstm_under_test': attribute layout=2"):
        lstmgen.onnx_backend.prepare(lstm_model("float32", layout=2))
    with pytest.raises(lstmgen.ModelImportError, match=r"'lstm_under_test': attribute "
                       r"direction='sideways' is invalid \(forward, reverse or bidirectional\)"):
        lstmgen.onnx_backend.prepare(lstm_model("float32", direction="sideways"))


def test_importing_lstmgen_does_not_import_onnx():
    code = "import sys, lstmgen; assert 'onnx' not in sys.modules; lstmgen.onnx_backend; " \
           "assert 'onnx' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def with_initializers(model: onnx.ModelProto, weights: dict) -> onnx.ModelProto:
    """`model` with the inputs named in `weights` turned into initializers holding them."""
    graph = model.graph
    inputs = [v for v in graph.input if v.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    graph.initializer.extend(onnx.numpy_helper.from_array(v, k) for k, v in weights.items())
    return model


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_initializer_weights_build_the_layers_once_and_inputs_can_still_override_them(direction):
    rng = np.random.default_rng(17)
    present = ("B", "sequence_lens")
    values = lstm_inputs(rng, np.float32, present=present, direction=direction)
    weights = {k: values.pop(k) for k in ("W", "R", "B")}
    model = lstm_model(np.float32, direction=direction, present=present)
    rep = lstmgen.onnx_backend.prepare(with_initializers(model, dict(weights)))
    first = rep.run(values)
    built = rep._built[0]
    xs = rng.normal(size=values["X"].shape).astype(np.float32)
    second = rep.run({**values, "X": xs})
    assert rep._built[0] is built and all(a is b for a, b in zip(rep._built[0], built))
    for got, want in zip(first, run_ours(model, {**values, **weights})):
        np.testing.assert_array_equal(got, want)  # the same code on the same numbers
    for got, want in zip(second, run_ours(model, {**values, **weights, "X": xs})):
        np.testing.assert_array_equal(got, want)
    # An input named like an initializer overrides it, as ONNX Runtime lets it; nothing is reused.
    other = {"W": rng.normal(0, 0.6, weights["W"].shape).astype(np.float32)}
    for got, want in zip(rep.run({**values, **other}), run_ours(model, {**values, **weights, **other})):
        np.testing.assert_array_equal(got, want)


def test_runs_from_several_threads_at_once_each_get_their_own_answer():
    rng = np.random.default_rng(18)
    values = lstm_inputs(rng, np.float64, present=("B",))
    weights = {k: values.pop(k) for k in ("W", "R", "B")}
    model = lstm_model(np.float64, present=("B",))
    rep = lstmgen.onnx_backend.prepare(with_initializers(model, dict(weights)))
    xs = [rng.normal(size=values["X"].shape) for _ in range(16)]
    expected = [run_ours(model, {**weights, "X": x}) for x in xs]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda x: rep.run({"X": x}), xs))
    for got, want in zip(results, expected):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
