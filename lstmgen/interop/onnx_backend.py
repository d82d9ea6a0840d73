"""ONNX graphs of LSTM nodes run by lstmgen: `OnnxBackend` (`lstmgen.onnx_backend`), an
`onnx.backend.base.Backend` with `prepare(model)` → `OnnxRep` and `run_node(node, inputs)`.

Covers what lstmgen's spec computes exactly today: direction forward, reverse or bidirectional
(one lstmgen LSTM per direction), every activation (f, g, h per direction) with activation_alpha /
activation_beta, clip, input_forget, peepholes (P), layout 0 and 1, B (kept as two biases),
sequence_lens (a right-padded mask; Y zero past each length, Y_h / Y_c the state at the last valid
step, as ONNX Runtime gives), initial_h / initial_c, float32 and float64. Anything else is refused
by name. activation_alpha / activation_beta are consumed in order by the functions that take them
(ONNX Runtime's reading); a function short of values takes its ONNX operator's default.
Shapes (D = 2 when bidirectional, else 1; layout 0; layout 1 swaps the first two axes of X, Y,
initial_h/c, Y_h/c): X [T, N, C], W [D, 4H, C], R [D, 4H, H], B [D, 8H], sequence_lens [N],
initial_h/c [D, N, H], P [D, 3H]; Y [T, D, N, H] (the reverse direction in input time order),
Y_h / Y_c [D, N, H]. ONNX gate order i, o, f, c (lstmgen.interop.gates).
onnx is needed only by this module (the `onnx` extra).
"""

import threading

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import ModelProto, NodeProto, helper, numpy_helper
from onnx.backend.base import Backend, BackendRep, namedtupledict

from lstmgen.errors import ModelImportError
from lstmgen.interop.gates import onnx_biases_to_keras, onnx_peepholes_to_keras, onnx_to_keras
from lstmgen.runtime import LSTM

INPUTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")
WEIGHTS = ("W", "R", "B", "P")  # the inputs a node's layers are built from
OUTPUTS = ("Y", "Y_h", "Y_c")
ATTRIBUTES = ("activation_alpha", "activation_beta", "activations", "clip", "direction",
              "hidden_size", "input_forget", "layout")
_DEFAULT_ACTIVATIONS = ("Sigmoid", "Tanh", "Tanh")
# ONNX's activations (lower-cased, as ONNX Runtime matches them): the registry's name, and the
# alpha / beta each takes with its ONNX operator's default (lstmgen.activations holds the forms).
_ACTIVATIONS = {
    "relu": ("relu", {}, {}), "tanh": ("tanh", {}, {}), "sigmoid": ("sigmoid", {}, {}),
    "affine": ("affine", {"alpha": 1.0}, {"beta": 0.0}),
    "leakyrelu": ("leaky_relu", {"alpha": 0.01}, {}),
    "thresholdedrelu": ("thresholded_relu", {"alpha": 1.0}, {}),
    "scaledtanh": ("scaled_tanh", {"alpha": 1.0}, {"beta": 1.0}),
    "hardsigmoid": ("keras2_hard_sigmoid", {"alpha": 0.2}, {"beta": 0.5}),
    "elu": ("elu", {"alpha": 1.0}, {}),
    "softsign": ("softsign", {}, {}), "softplus": ("softplus", {}, {}),
}
# Each ONNX direction as the go_backwards of the lstmgen layers that run it, in ONNX's order.
_DIRECTIONS = {"forward": (False,), "reverse": (True,), "bidirectional": (False, True)}
_DTYPES = (np.dtype("float32"), np.dtype("float64"))


class OnnxBackend(Backend):
    """Runs ONNX graphs made of LSTM nodes on lstmgen (CPU)."""

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return str(device).upper() == "CPU"

    @classmethod
    def prepare(cls, model, device="CPU", target="auto", **kwargs) -> "OnnxRep":
        """Check every node of `model` (a ModelProto) now; `run` then computes its outputs."""
        super().prepare(model, device, **kwargs)
        if not isinstance(model, ModelProto):
            raise TypeError(f"OnnxBackend.prepare: expected an onnx.ModelProto, got {type(model).__name__}")
        return OnnxRep(model, target)

    @classmethod
    def run_node(cls, node, inputs, device="CPU", outputs_info=None, target="auto", **kwargs) -> tuple:
        """The outputs of one LSTM `node` (its non-empty outputs, in order) for `inputs`: a dict by
        input name, or a list with one entry per `node.input` (None for an absent one) or one per
        present input."""
        if not isinstance(node, NodeProto):
            raise TypeError(f"OnnxBackend.run_node: expected an onnx.NodeProto, got {type(node).__name__}")
        where = ("ONNX node", _node_name(node, 0))
        present = [name for name in node.input if name]
        if isinstance(inputs, dict):
            values = dict(inputs)
        elif len(inputs) == len(node.input):
            values = {name: value for name, value in zip(node.input, inputs) if name}
        elif len(inputs) == len(present):
            values = dict(zip(present, inputs))
        else:
            raise ModelImportError(*where, f"{len(inputs)} inputs given; the node has "
                                   f"{len(present)} ({', '.join(present)})")
        lstm = OnnxLSTM(node, *where)
        results = lstm.run(values, target)
        return tuple(results[name] for name in node.output if name)


class OnnxRep(BackendRep):
    """A checked graph of LSTM nodes; `run(inputs)` → its graph outputs (a namedtupledict)."""

    def __init__(self, model: ModelProto, target: str = "auto"):
        graph = model.graph
        self.source = f"ONNX graph {graph.name!r}"
        self.target = target
        self.constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.input_names = [v.name for v in graph.input if v.name not in self.constants]
        self.output_names = [v.name for v in graph.output]
        self.nodes = [OnnxLSTM(node, self.source, _node_name(node, k))
                      for k, node in enumerate(graph.node)]
        # A node whose weights are all initializers builds its layers once (building them took
        # ~40x a small node's run); a run that finds them in use by another thread builds its own.
        self._built = {}
        self._in_use = [threading.Lock() for _ in self.nodes]

    def run(self, inputs, **kwargs):
        """`inputs`: one array per graph input (in order), or a dict by name."""
        if isinstance(inputs, dict):
            values = dict(inputs)
        else:
            inputs = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
            if len(inputs) != len(self.input_names):
                raise ModelImportError(self.source, None, f"{len(inputs)} inputs given; the graph "
                                       f"has {len(self.input_names)} ({', '.join(self.input_names)})")
            values = dict(zip(self.input_names, inputs))
        passed = values
        values = {**self.constants, **passed}
        for k, node in enumerate(self.nodes):
            names = node.weight_names()
            fixed = all(n in self.constants and n not in passed for n in names.values())
            if not (fixed and self._in_use[k].acquire(blocking=False)):
                values.update(node.run(values, self.target))
                continue
            try:
                if k not in self._built:
                    weights = {role: self.constants[n] for role, n in names.items()}
                    self._built[k] = node.layers(weights, self.target)
                values.update(node.run(values, self.target, self._built[k]))
            finally:
                self._in_use[k].release()
        missing = [name for name in self.output_names if name not in values]
        if missing:
            raise ModelImportError(self.source, None, f"graph output {missing[0]!r} is computed by no node")
        return namedtupledict("Outputs", self.output_names)(*[values[n] for n in self.output_names])


class OnnxLSTM:
    """One ONNX LSTM node, its attributes checked against what lstmgen computes exactly."""

    def __init__(self, node: NodeProto, source: str, name: str):
        self.node, self.source, self.name = node, source, name
        if node.op_type != "LSTM" or node.domain not in ("", "ai.onnx"):
            self._refuse(f"op {node.domain + '.' if node.domain else ''}{node.op_type} is not supported "
                         "(lstmgen runs graphs made of LSTM nodes)")
        if len(node.input) > len(INPUTS) or len(node.output) > len(OUTPUTS):
            self._refuse(f"{len(node.input)} inputs and {len(node.output)} outputs; LSTM has at "
                         f"most {len(INPUTS)} and {len(OUTPUTS)}")
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        unknown = sorted(set(attrs) - set(ATTRIBUTES))
        if unknown:
            self._refuse(f"attribute {unknown[0]}={attrs[unknown[0]]!r} is not supported yet "
                         f"(known: {', '.join(ATTRIBUTES)})")
        self.direction = _text(attrs.get("direction", b"forward"))
        if self.direction not in _DIRECTIONS:
            self._refuse(f"attribute direction={self.direction!r} is invalid "
                         "(forward, reverse or bidirectional)")
        self.cells = self._activations(attrs)
        if "clip" in attrs:
            if not 0 < attrs["clip"] < np.inf:  # NaN too
                self._refuse(f"attribute clip={attrs['clip']!r} is invalid (a positive finite number)")
            for cell in self.cells:
                cell["clip"] = attrs["clip"]
        if attrs.get("input_forget", 0) not in (0, 1):
            self._refuse(f"attribute input_forget={attrs['input_forget']!r} is invalid (0 or 1)")
        for cell in self.cells:
            cell["input_forget"] = attrs.get("input_forget", 0) == 1
        self.layout = attrs.get("layout", 0)
        if self.layout not in (0, 1):
            self._refuse(f"attribute layout={self.layout!r} is invalid (0 or 1)")
        self.hidden_size = attrs.get("hidden_size")

    def _activations(self, attrs: dict) -> list:
        """Per direction, the spec's recurrent_activation, activation, output_activation from
        ONNX's f, g, h (three functions per direction, in direction order)."""
        count = 3 * len(_DIRECTIONS[self.direction])
        names = [_text(a) for a in attrs.get("activations", _DEFAULT_ACTIVATIONS * (count // 3))]
        if len(names) != count:
            self._refuse(f"attribute activations={names!r} must name {count} functions (f, g, h "
                         f"per direction) for direction={self.direction!r}")
        given = {key: list(attrs.get(key, [])) for key in ("activation_alpha", "activation_beta")}
        remaining = {key: list(values) for key, values in given.items()}
        values = []
        for name in names:
            if name.lower() not in _ACTIVATIONS:
                self._refuse(f"attribute activations={names!r}: {name!r} is not an ONNX LSTM "
                             f"activation (known: {', '.join(sorted(_ACTIVATIONS))}, any case)")
            registry_name, alpha, beta = _ACTIVATIONS[name.lower()]
            value = {"name": registry_name}
            for key, params in (("activation_alpha", alpha), ("activation_beta", beta)):
                for param, default in params.items():
                    value[param] = remaining[key].pop(0) if remaining[key] else default
            values.append(value)
        for key, left in remaining.items():
            if left:
                self._refuse(f"attribute {key}={given[key]!r} has {len(left)} value(s) that none "
                             f"of the activations {names!r} takes")
        return [dict(zip(("recurrent_activation", "activation", "output_activation"), values[k:k + 3]))
                for k in range(0, count, 3)]

    def weight_names(self) -> dict:
        """{role: input name} of the node's weight inputs (W, R and, where named, B, P)."""
        return {role: name for role, name in zip(INPUTS, self.node.input) if name and role in WEIGHTS}

    def run(self, values: dict, target: str = "auto", layers: list = None) -> dict:
        """{output name: array} for the node's non-empty outputs, reading its inputs from `values`;
        `layers`: what layers(weights) built from the weights in `values`, else built here."""
        given = {}
        for role, name in zip(INPUTS, self.node.input):
            if not name:
                continue
            if name not in values or values[name] is None:
                self._refuse(f"input {role} ({name!r}) has no value")
            given[role] = np.asarray(values[name])
        for role in ("X", "W", "R"):
            if role not in given:
                self._refuse(f"input {role} is required")
        y, y_h, y_c = self._compute(given, target, layers)
        computed = dict(zip(OUTPUTS, (y, y_h, y_c)))
        return {name: computed[role] for role, name in zip(OUTPUTS, self.node.output) if name}

    def _compute(self, given: dict, target: str, layers: list) -> tuple:
        x = given["X"]
        if x.dtype not in _DTYPES:
            self._refuse(f"input X has dtype {x.dtype}, which is not supported yet (float32 or float64)")
        if x.ndim != 3:
            self._refuse(f"input X has shape {x.shape}, expected 3 axes "
                         f"({'[N, T, C]' if self.layout else '[T, N, C]'})")
        n_time, n_batch = (x.shape[1], x.shape[0]) if self.layout else x.shape[:2]
        self._check(given, x.shape[2], n_batch, x.dtype, f"X {x.shape}")
        mask, lengths = self._mask(given.get("sequence_lens"), n_batch, n_time)
        layers = layers or self._layers(given, x.dtype, target)
        runs = [self._run_direction(layer, given, d, mask, lengths) for d, layer in enumerate(layers)]
        y, y_h, y_c = ([run[k] for run in runs] for k in range(3))
        return (np.ascontiguousarray(np.stack(y, axis=2 if self.layout else 1), dtype=x.dtype),
                np.stack(y_h, axis=self.layout), np.stack(y_c, axis=self.layout))

    def layers(self, weights: dict, target: str = "auto") -> list:
        """One built lstmgen LSTM per direction (ONNX's order) from the node's weight inputs
        `weights` (W, R and, where the node has them, B and P), as `lstmgen compile` ships them:
        each runs Keras's semantics (a reverse direction's output last step first)."""
        for role in ("W", "R"):
            if role not in weights:
                self._refuse(f"input {role} is required")
        w = weights["W"]
        if w.dtype not in _DTYPES or w.ndim != 3:
            self._refuse(f"input W has dtype {w.dtype} and shape {w.shape}: expected float32 or "
                         "float64 [D, 4H, C]")
        self._check(weights, w.shape[2], None, w.dtype, f"W {w.shape}")
        return self._layers(weights, w.dtype, target)

    def _check(self, given: dict, n_in: int, n_batch, dtype, against: str) -> None:
        """Every given input's shape and dtype against X's (or W's, `against`); n_batch None: none
        of the per-call inputs (sequence_lens, initial states) is checked."""
        units = given["R"].shape[-1] if given["R"].ndim == 3 else None
        if self.hidden_size is not None and units != self.hidden_size:
            self._refuse(f"attribute hidden_size={self.hidden_size} does not match input R of "
                         f"shape {given['R'].shape} (expected [D, {4 * self.hidden_size}, "
                         f"{self.hidden_size}])")
        units = self.hidden_size if self.hidden_size is not None else units
        if units is None:
            self._refuse(f"input R has shape {given['R'].shape}, expected [D, 4H, H]")
        n_dir = len(_DIRECTIONS[self.direction])
        state_shape = (n_batch, n_dir, units) if self.layout else (n_dir, n_batch, units)
        shapes = {"W": (n_dir, 4 * units, n_in), "R": (n_dir, 4 * units, units),
                  "B": (n_dir, 8 * units), "sequence_lens": (n_batch,), "initial_h": state_shape,
                  "initial_c": state_shape, "P": (n_dir, 3 * units)}
        for role, value in given.items():
            if role == "X" or n_batch is None and role not in ("W", "R", "B", "P"):
                continue
            if value.shape != shapes[role]:
                self._refuse(f"input {role} has shape {value.shape}, expected {shapes[role]} "
                             f"({against}, layout={self.layout}, hidden_size={units}, "
                             f"direction={self.direction!r})")
            if role != "sequence_lens" and value.dtype != dtype:
                self._refuse(f"input {role} has dtype {value.dtype}, {against.split()[0]} has "
                             f"{dtype}: they must match")

    def _layers(self, given: dict, dtype, target: str) -> list:
        """The checked weight inputs as one lstmgen LSTM per direction."""
        layers = []
        for d, go_backwards in enumerate(_DIRECTIONS[self.direction]):
            kernel, recurrent_kernel, _ = onnx_to_keras(given["W"][d:d + 1], given["R"][d:d + 1])
            weights = {"kernel": kernel, "recurrent_kernel": recurrent_kernel}
            if "B" in given:
                weights["bias"], weights["recurrent_bias"] = onnx_biases_to_keras(given["B"][d:d + 1])
            if "P" in given:
                weights["peephole"] = onnx_peepholes_to_keras(given["P"][d:d + 1])
            layer = LSTM(recurrent_kernel.shape[0], target=target, name=self.name,
                         return_sequences=True, return_state=True, go_backwards=go_backwards,
                         time_major=not self.layout, zero_output_for_mask=True,
                         dtype=np.dtype(dtype).name, use_bias="B" in given,
                         use_recurrent_bias="B" in given, use_peepholes="P" in given, **self.cells[d])
            layer.set_weights([weights[name].astype(dtype) for name in layer.spec.weight_names])
            layers.append(layer)
        return layers

    def _run_direction(self, layer, given: dict, d: int, mask, lengths) -> tuple:
        """(output [T, N, H] or [N, T, H] in input time order, h [N, H], c [N, H]) of direction d."""
        x = given["X"]
        n_time, n_batch, units = x.shape[self.layout], x.shape[1 - self.layout], layer.units
        initial = None
        if "initial_h" in given or "initial_c" in given:
            zeros = np.zeros((n_batch, units), x.dtype)
            initial = [zeros if k not in given else given[k][:, d] if self.layout else given[k][d]
                       for k in ("initial_h", "initial_c")]
        output, h, c = layer(x, mask=mask, initial_state=initial)
        time_axis = 1 if self.layout else 0
        if layer.go_backwards:
            output = np.flip(output, axis=time_axis)  # Keras gives go_backwards outputs last step first
        if lengths is not None:
            valid = np.arange(n_time)[None, :] < lengths[:, None]  # [N, T]
            output = np.where((valid if self.layout else valid.T)[..., None], output, 0)
            # An empty sequence's final states are zeros, as ONNX Runtime gives (not initial_h/c).
            h, c = (np.where(lengths[:, None] > 0, state, 0) for state in (h, c))
        return output, h, c

    def _mask(self, sequence_lens, n_batch: int, n_time: int) -> tuple:
        """([N, T] right-padded mask or None, lengths [N] or None) from sequence_lens."""
        if sequence_lens is None:
            return None, None
        if sequence_lens.dtype.kind not in "iu":
            self._refuse(f"input sequence_lens has dtype {sequence_lens.dtype}, expected int32")
        lengths = sequence_lens.astype(np.int64)
        bad = (lengths < 0) | (lengths > n_time)
        if np.any(bad):
            self._refuse(f"input sequence_lens={lengths.tolist()}: each length must be in "
                         f"[0, {n_time}]")
        if np.all(lengths == n_time):
            return None, None
        return np.arange(n_time)[None, :] < lengths[:, None], lengths

    def _refuse(self, problem: str):
        raise ModelImportError(self.source, self.name, problem)


def read_model_file(path: str, target: str = "auto") -> dict:
    """{key: built lstmgen LSTM} of every LSTM node of the .onnx file at `path`, whose weight inputs
    (W, R, and B, P where named) must be initializers: key is the node's name, with "/forward" and
    "/backward" for a bidirectional node's two directions."""
    try:
        model = onnx.load(path)
    except (DecodeError, ValueError) as err:
        raise ModelImportError(path, None, f"not an ONNX model file ({err})") from None
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    found = {}
    for k, node in enumerate(model.graph.node):
        lstm = OnnxLSTM(node, path, _node_name(node, k))
        weights = {}
        for role, name in lstm.weight_names().items():
            if name not in constants:
                lstm._refuse(f"input {role} ({name!r}) is not an initializer: compiling needs "
                             "the weights in the file")
            weights[role] = constants[name]
        layers = lstm.layers(weights, target)
        suffixes = ("/forward", "/backward") if len(layers) == 2 else ("",)
        found.update({lstm.name + suffix: layer for suffix, layer in zip(suffixes, layers)})
    if not found:
        raise ModelImportError(path, None, "the graph has no LSTM node")
    return found


def _node_name(node: NodeProto, index: int) -> str:
    return node.name or f"#{index} ({node.op_type})"


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
