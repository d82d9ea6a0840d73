"""`lstmgen.CuDNNLSTM`: tf.compat.v1.keras.layers.CuDNNLSTM's arguments and weights, on any target.

Its weights mean what they meant in tf.keras (lstmgen.interop.cudnnlstm says how), so
`set_weights(tf_keras_layer.get_weights())` reproduces tf.keras. It runs as the lstmgen.LSTM that
computes the same (tanh, sigmoid, bias = input + recurrent bias), which picks the target:
cuDNN where a GPU and cuDNN 9 are found, else the CPU target, with the same answer.
Glossary: T time steps, N batch, C input features, H units.
"""

import collections

import numpy as np

from lstmgen.errors import SpecError
from lstmgen.interop.cudnnlstm import cudnnlstm_to_lstm
from lstmgen.runtime import LSTM, checked_weights, spec_property
from lstmgen.spec import LSTMSpec

# tf.compat.v1.keras.layers.CuDNNLSTM's arguments after `units`, with its defaults.
ARGUMENTS = {
    "kernel_initializer": "glorot_uniform", "recurrent_initializer": "orthogonal",
    "bias_initializer": "zeros", "unit_forget_bias": True, "kernel_regularizer": None,
    "recurrent_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
    "kernel_constraint": None, "recurrent_constraint": None, "bias_constraint": None,
    "return_sequences": False, "return_state": False, "go_backwards": False, "stateful": False,
}
# These apply to CuDNNLSTM's own weights, so they stay here, not on the LSTM that runs it.
_PENALTIES = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer")
_CONSTRAINTS = ("kernel_constraint", "recurrent_constraint", "bias_constraint")
# tf.keras CuDNNLSTM config keys that its constructor does not take; they change nothing.
_BOOKKEEPING = ("trainable", "batch_input_shape", "batch_shape")
# tf.keras's `cell` of a CuDNNLSTM holds only the state sizes.
Cell = collections.namedtuple("cell", "state_size")


class CuDNNLSTM:
    """`lstmgen.CuDNNLSTM(units, target="auto", name="cu_dnnlstm", dtype="float32", **kwargs)`.

    kwargs: exactly the tf.keras arguments in ARGUMENTS. Weights: kernel [C, 4H],
    recurrent_kernel [H, 4H], bias [8H] (input biases, then recurrent biases; gates i, f, c, o).
    """

    def __init__(self, units, target="auto", name="cu_dnnlstm", dtype="float32", **kwargs):
        unknown = sorted(set(kwargs) - set(ARGUMENTS))
        if unknown:
            raise SpecError(unknown[0], kwargs[unknown[0]],
                            "is not a CuDNNLSTM argument; known arguments: units, "
                            f"{', '.join(ARGUMENTS)}, target, name, dtype",
                            f"CuDNNLSTM(units={units!r})")
        self.spec = LSTMSpec(units, dtype=dtype, **kwargs)  # validates every argument
        self.name = name
        runner = self.spec.replace(**{k: None for k in _PENALTIES + _CONSTRAINTS})
        self._lstm = LSTM(target=target, name=name, **runner.to_dict())
        self._requested_target = target
        self._weights = None
        self._rng = np.random.default_rng()

    @property
    def built(self) -> bool:
        return self._weights is not None

    @property
    def dtype(self) -> np.dtype:
        return self._lstm.dtype

    @property
    def target(self) -> str:
        return self._lstm.target

    @property
    def runner(self) -> LSTM:
        """The lstmgen.LSTM that computes this layer (LSTM-form weights, one summed bias)."""
        return self._lstm

    @property
    def cell(self) -> Cell:
        return Cell(state_size=(self.spec.units, self.spec.units))

    def build(self, input_shape) -> None:
        """Create weights as tf.keras does, for inputs of `input_shape` [N, T, C]."""
        self._lstm.build(input_shape)  # checks the shape; a stateful layer learns its batch size
        spec, units, n_in = self.spec, self.spec.units, self._lstm.spec.input_dim
        init_bias = spec.bias_initializer
        if spec.unit_forget_bias:  # ones in the recurrent forget slot [5H:6H]
            bias = np.concatenate([init_bias((5 * units,), self.dtype, self._rng),
                                   np.ones(units, self.dtype),
                                   init_bias((2 * units,), self.dtype, self._rng)])
        else:
            bias = init_bias((8 * units,), self.dtype, self._rng)
        self._set([spec.kernel_initializer((n_in, 4 * units), self.dtype, self._rng),
                   spec.recurrent_initializer((units, 4 * units), self.dtype, self._rng), bias])

    def get_weights(self) -> list:
        """[kernel [C, 4H], recurrent_kernel [H, 4H], bias [8H]], tf.keras's layout."""
        return [w.copy() for w in self._weights] if self.built else []

    def set_weights(self, weights) -> None:
        weights = list(weights)
        if not self.built:
            if not weights or np.ndim(weights[0]) != 2:
                raise ValueError(f"weights for layer {self.name!r}: expected kernel [C, 4H], "
                                 "recurrent_kernel [H, 4H], bias [8H]")
            self.build((None, None, np.shape(weights[0])[0]))
        n_in, units = self._lstm.spec.input_dim, self.spec.units
        shapes = [(n_in, 4 * units), (units, 4 * units), (8 * units,)]
        self._set(checked_weights(self.name, weights, shapes, self.dtype))

    weights = property(get_weights)

    def _set(self, weights: list) -> None:
        self._weights = [np.ascontiguousarray(w, dtype=self.dtype) for w in weights]
        self._lstm.set_weights(cudnnlstm_to_lstm(*self._weights))

    def __call__(self, inputs, mask=None, training=False, initial_state=None):
        """Returns `output`, or `[output, h, c]` with return_state. Masks are refused, as in tf.keras."""
        if mask is not None:
            raise ValueError(f"mask for layer {self.name!r}: masking is not supported for CuDNN "
                             "RNNs (tf.keras's CuDNNLSTM refuses it too)")
        if not self.built and np.ndim(inputs) == 3:
            self.build(np.shape(inputs))
        return self._lstm(inputs, training=training, initial_state=initial_state)

    @property
    def states(self) -> list:
        return self._lstm.states

    def reset_states(self, states=None) -> None:
        self._lstm.reset_states(states)

    @property
    def _activity_losses(self) -> list:
        """The last call's activity penalties (lstmgen.Bidirectional orders losses by them)."""
        return self._lstm._activity_losses

    @property
    def losses(self) -> list:
        """The last call's activity penalties, then the kernel, recurrent kernel and bias ones."""
        weight_losses = [float(getattr(self.spec, r)(w)) for r, w in zip(_PENALTIES, self._weights or [])
                         if getattr(self.spec, r) is not None]
        return self._lstm.losses + weight_losses

    def apply_constraints(self) -> None:
        """Project CuDNNLSTM's own weights through their constraints (as Keras's optimizer does)."""
        constraints = [getattr(self.spec, k) for k in _CONSTRAINTS]
        if self.built:
            self._set([w if k is None else k(w) for k, w in zip(constraints, self._weights)])

    def explain(self) -> str:
        return "CuDNNLSTM runs as " + self._lstm.explain()

    def get_config(self) -> dict:
        """tf.keras's CuDNNLSTM config: name, dtype, units and ARGUMENTS (Keras objects as configs)."""
        values = self.spec.to_dict()
        return {"name": self.name, "dtype": self.spec.dtype, "units": self.spec.units,
                **{k: values[k] for k in ARGUMENTS}}

    @classmethod
    def from_config(cls, config: dict, target: str = "auto") -> "CuDNNLSTM":
        """A layer from `get_config()` or tf.keras's CuDNNLSTM config (its `trainable`,
        `batch_input_shape` / `batch_shape` change nothing and are ignored; time_major=True is
        refused)."""
        values = {k: v for k, v in config.items() if k not in _BOOKKEEPING}
        if values.pop("time_major", False):
            raise SpecError("time_major", True, "is not supported (CuDNNLSTM takes [N, T, C] inputs)",
                            f"CuDNNLSTM {values.get('name', 'cu_dnnlstm')!r}")
        dtype = LSTMSpec.from_keras_config({"units": 1, "dtype": values.pop("dtype", "float32")}).dtype
        return cls(target=target, dtype=dtype, **values)


for _name in ("units",) + tuple(ARGUMENTS):
    setattr(CuDNNLSTM, _name, spec_property(_name))
