"""`lstmgen.Bidirectional`: Keras 3's Bidirectional wrapper around lstmgen LSTM or CuDNNLSTM layers.

Keras 3 (keras/src/layers/rnn/bidirectional.py, its two-layer path) is the reference: the forward
layer is a fresh copy of `layer` made from its config (named `forward_<name>`, no weights carried
over), the backward layer a copy with go_backwards=True (`backward_<name>`) unless one is given;
both get zero_output_for_mask = return_sequences (CuDNNLSTM layers have none: they refuse masks,
as tf.keras's Bidirectional(CuDNNLSTM) does). A call runs both on the same inputs, reverses the
backward sequence back into input order, casts both outputs to the wrapper's dtype and merges
them. Like Keras, it casts floating inputs and initial states to its own dtype before the layers
cast them to theirs. States: the forward layer's [h, c] then the backward layer's. Each direction
runs its own generated variant, on its own thread when both are worth it (batch_threads.run_pair).
Glossary: T time steps, N batch, C input features, H units.
"""

import numpy as np

from lstmgen import batch_threads
from lstmgen.cudnnlstm import CuDNNLSTM
from lstmgen.runtime import LSTM
from lstmgen.spec import DTYPES, keras_dtype_name

MERGE_MODES = ("concat", "sum", "mul", "ave", None)
# What both directions must share (Keras checks the first three; the time axis is lstmgen's).
_COMMON = ("stateful", "return_sequences", "return_state", "time_major")
_CONFIG_KEYS = ("name", "trainable", "dtype", "merge_mode", "layer", "backward_layer")
# The layer classes a Bidirectional wraps, by their config class_name.
_LAYERS = {"LSTM": LSTM, "CuDNNLSTM": CuDNNLSTM}


class Bidirectional:
    """`lstmgen.Bidirectional(layer, merge_mode="concat", weights=None, backward_layer=None,
    name="bidirectional", dtype="float32")`, NumPy in and out.

    `layer`, `backward_layer`: `lstmgen.LSTM` or `lstmgen.CuDNNLSTM`. `dtype` is the wrapper's, as
    Keras's dtype policy (default float32 whatever the layers'): the outputs are cast to it, the
    states are not.
    `weights`: the forward layer's weights then the backward layer's, set now.
    """

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None,
                 name="bidirectional", dtype="float32"):
        for argument, value, optional in (("layer", layer, False),
                                          ("backward_layer", backward_layer, True)):
            if not isinstance(value, tuple(_LAYERS.values())) and not (optional and value is None):
                raise TypeError(f"{argument}={value!r} for Bidirectional {name!r}: expected an "
                                "lstmgen.LSTM or lstmgen.CuDNNLSTM")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode={merge_mode!r} for Bidirectional {name!r}: must be one of "
                             f"{', '.join(map(repr, MERGE_MODES))}")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r} for Bidirectional {name!r}: must be one of "
                             f"{', '.join(DTYPES)}")
        self.name, self.merge_mode, self._dtype = name, merge_mode, np.dtype(dtype)
        self.forward_layer = _copy(layer, f"forward_{layer.name.removeprefix('forward_')}",
                                   go_backwards=layer.go_backwards)
        self.backward_layer = (backward_layer if backward_layer is not None else
                               _copy(layer, f"backward_{layer.name.removeprefix('backward_')}",
                                     go_backwards=True))
        self._check_pair()
        for direction in (self.forward_layer, self.backward_layer):
            if (isinstance(direction, LSTM)
                    and direction.zero_output_for_mask != direction.return_sequences):
                direction._set_spec(direction.spec.replace(
                    zero_output_for_mask=direction.return_sequences))
        if weights:
            self.set_weights(weights)

    def _check_pair(self) -> None:
        forward, backward = self.forward_layer, self.backward_layer
        if forward.go_backwards == backward.go_backwards:
            raise ValueError(f"Bidirectional {self.name!r}: the forward and backward layers need "
                             f"different go_backwards; both have {forward.go_backwards}")
        for attribute in _COMMON:
            values = getattr(forward.spec, attribute), getattr(backward.spec, attribute)
            if values[0] != values[1]:
                raise ValueError(f"Bidirectional {self.name!r}: {attribute} is {values[0]} for "
                                 f"the forward layer and {values[1]} for the backward layer; "
                                 "they must match")
        widths = forward.spec.output_size, backward.spec.output_size
        if self.merge_mode in ("sum", "mul", "ave") and widths[0] != widths[1]:
            raise ValueError(f"merge_mode={self.merge_mode!r} for Bidirectional {self.name!r}: "
                             f"the layers output {widths[0]} and {widths[1]} features; "
                             "merging elementwise needs the same")

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def stateful(self) -> bool:
        return self.forward_layer.stateful

    @property
    def return_sequences(self) -> bool:
        return self.forward_layer.return_sequences

    @property
    def return_state(self) -> bool:
        return self.forward_layer.return_state

    @property
    def time_major(self) -> bool:
        return self.forward_layer.spec.time_major

    @property
    def built(self) -> bool:
        return self.forward_layer.built and self.backward_layer.built

    def build(self, input_shape) -> None:
        for direction in (self.forward_layer, self.backward_layer):
            if not direction.built:
                direction.build(input_shape)

    def get_weights(self) -> list:
        """The forward layer's weights, then the backward layer's (Keras's order)."""
        return self.forward_layer.get_weights() + self.backward_layer.get_weights()

    def set_weights(self, weights) -> None:
        weights = list(weights)
        count = len(self.forward_layer.spec.weight_names)
        expected = count + len(self.backward_layer.spec.weight_names)
        if len(weights) != expected:
            raise ValueError(f"weights for Bidirectional {self.name!r}: got {len(weights)} arrays, "
                             f"expected {expected} (the forward layer's, then the backward layer's)")
        self.forward_layer.set_weights(weights[:count])
        self.backward_layer.set_weights(weights[count:])

    @property
    def weights(self) -> list:
        return self.get_weights()

    def __call__(self, inputs, mask=None, training=False, initial_state=None):
        """Run both directions. Returns the merged output (a list [forward, backward] when
        merge_mode is None), followed by h, c of the forward and of the backward layer with
        return_state; `initial_state`: the forward layer's states, then the backward layer's."""
        if hasattr(inputs, "__cuda_array_interface__"):
            raise TypeError(f"inputs for Bidirectional {self.name!r}: a device array; "
                            "Bidirectional takes NumPy arrays")
        inputs = self._autocast(inputs)
        forward_state = backward_state = None
        if initial_state is not None:
            states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
            states = [self._autocast(s) for s in states]
            half = len(states) // 2
            forward_state, backward_state = states[:half], states[half:]
        forward, backward = batch_threads.run_pair(
            lambda: self.forward_layer(inputs, mask, training, forward_state),
            lambda: self.backward_layer(inputs, mask, training, backward_state),
            self._worth_a_thread(inputs))
        states = []
        if self.return_state:
            states = forward[1:] + backward[1:]
            forward, backward = forward[0], backward[0]
        forward, backward = forward.astype(self.dtype, copy=False), backward.astype(self.dtype, copy=False)
        if self.return_sequences:
            backward = np.ascontiguousarray(np.flip(backward, axis=0 if self.time_major else 1))
        output = _merge(self.merge_mode, forward, backward)
        if self.return_state:
            return (output if self.merge_mode is None else [output]) + states
        return output

    def _autocast(self, value):
        """Floating arrays in the wrapper's dtype, as Keras casts a layer's call arguments."""
        array = np.asarray(value)
        return array.astype(self.dtype, copy=False) if np.issubdtype(array.dtype, np.floating) else array

    def _worth_a_thread(self, inputs) -> bool:
        shape = np.shape(inputs)
        if len(shape) != 3:
            return False  # the layers say what is wrong
        n_batch, n_time = (shape[1], shape[0]) if self.time_major else shape[:2]
        return all(batch_threads.worth_a_thread(
            n_batch, n_time * 4 * d.units * (shape[2] + d.spec.output_size))
            for d in (self.forward_layer, self.backward_layer))

    @property
    def states(self) -> list:
        """[h, c] of the forward layer then of the backward layer (None where unknown)."""
        return self.forward_layer.states + self.backward_layer.states

    def reset_states(self) -> None:
        """Zero both layers' states (Keras: AttributeError when not stateful)."""
        if not self.stateful:
            raise AttributeError(f"Layer {self.name!r} must be stateful.")
        self.forward_layer.reset_states()
        self.backward_layer.reset_states()

    @property
    def losses(self) -> list:
        """Keras's order: both layers' activity penalties, then both cells' weight penalties."""
        layers = (self.forward_layer, self.backward_layer)
        counts = [len(layer._activity_losses) for layer in layers]
        losses = [layer.losses for layer in layers]
        return ([v for n, l in zip(counts, losses) for v in l[:n]]
                + [v for n, l in zip(counts, losses) for v in l[n:]])

    def apply_constraints(self) -> None:
        self.forward_layer.apply_constraints()
        self.backward_layer.apply_constraints()

    def explain(self) -> str:
        return (f"forward layer {self.forward_layer.name!r}: {self.forward_layer.explain()}\n"
                f"backward layer {self.backward_layer.name!r}: {self.backward_layer.explain()}")

    def get_config(self) -> dict:
        """A Keras-style config: the two layers as {"class_name": "LSTM" (or "CuDNNLSTM"),
        "config": ...}."""
        return {"name": self.name, "dtype": self.dtype.name, "merge_mode": self.merge_mode,
                **{key: {"class_name": type(layer).__name__, "config": layer.get_config()}
                   for key, layer in (("layer", self.forward_layer),
                                      ("backward_layer", self.backward_layer))}}

    @classmethod
    def from_config(cls, config: dict) -> "Bidirectional":
        """A wrapper from `get_config()`, or from a Keras 3 or tf.keras Bidirectional config of
        LSTM or CuDNNLSTM layers (tf.keras writes no backward_layer unless one was given: it is
        then made)."""
        if not isinstance(config, dict):
            raise TypeError(f"config={config!r}: expected a Bidirectional config dict")
        unknown = sorted(set(config) - set(_CONFIG_KEYS))
        if unknown:
            raise ValueError(f"{unknown[0]}={config[unknown[0]]!r} in a Bidirectional config: "
                             f"unknown key (known: {', '.join(_CONFIG_KEYS)})")
        if "layer" not in config:
            raise ValueError("a Bidirectional config needs the wrapped layer ('layer')")
        backward = config.get("backward_layer")
        return cls(_layer_from_config(config["layer"], "layer"),
                   merge_mode=config.get("merge_mode", "concat"),
                   backward_layer=None if backward is None else _layer_from_config(backward,
                                                                                  "backward_layer"),
                   name=config.get("name", "bidirectional"),
                   dtype=keras_dtype_name(config.get("dtype", "float32")))


def _merge(mode, forward: np.ndarray, backward: np.ndarray):
    if mode == "concat":
        return np.concatenate([forward, backward], axis=-1)
    if mode == "sum":
        return forward + backward
    if mode == "ave":
        return (forward + backward) / 2
    if mode == "mul":
        return forward * backward
    return [forward, backward]


def _copy(layer, name: str, go_backwards: bool):
    """A fresh layer of `layer`'s class from its config (Keras: no weights or states carried
    over; __init__ then sets zero_output_for_mask)."""
    config = {**layer.get_config(), "name": name, "go_backwards": go_backwards}
    return type(layer).from_config(config, target=layer._requested_target)


def _layer_from_config(entry, key: str):
    """An LSTM or CuDNNLSTM from a serialized layer ({"class_name": ..., "config": {...}, ...})."""
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise ValueError(f"{key}={entry!r} in a Bidirectional config: expected "
                         "{'class_name': 'LSTM', 'config': {...}}")
    if entry.get("class_name") not in _LAYERS:
        raise ValueError(f"{key} in a Bidirectional config is a {entry.get('class_name')}: "
                         "lstmgen.Bidirectional wraps LSTM and CuDNNLSTM layers")
    return _LAYERS[entry["class_name"]].from_config(entry["config"])

