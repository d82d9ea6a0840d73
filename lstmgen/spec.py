"""LSTMSpec: every argument of a Keras LSTM layer, validated, frozen and hashable.

Glossary used across lstmgen and in every generated module:
    T  time steps          N  batch size
    C  input features      H  units
    P  proj_size (the width of h and of the output; H when proj_size is 0)
Keras gate order along the last axis of every weight: i, f, c, o. The weights, in this order,
each only when the spec has it (`LSTMSpec.weight_names`):
    kernel            [C, 4H]
    recurrent_kernel  [P, 4H]
    bias              [4H]      use_bias
    recurrent_bias    [4H]      use_recurrent_bias (added to h·recurrent_kernel, as PyTorch's
                                bias_hh and ONNX's Rb are)
    peephole          [3H]      use_peepholes: gates i, f, o (ONNX stores i, o, f)
    projection        [H, P]    proj_size > 0 (PyTorch's weight_hr, transposed)
"""

import dataclasses
import hashlib
import json
import math
import numbers
from dataclasses import dataclass
from typing import Any, Optional

from lstmgen import constraints, initializers, regularizers
from lstmgen.activations import Parametrized, canonical
from lstmgen.errors import SpecError

DTYPES = ("float32", "float64")
_BOOL_FIELDS = ("use_bias", "unit_forget_bias", "return_sequences", "return_state",
                "go_backwards", "stateful", "time_major", "unroll", "zero_output_for_mask",
                "use_recurrent_bias", "use_peepholes", "input_forget")
_INITIALIZER_FIELDS = ("kernel_initializer", "recurrent_initializer", "bias_initializer")
_REGULARIZER_FIELDS = ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
                       "activity_regularizer")
_CONSTRAINT_FIELDS = ("kernel_constraint", "recurrent_constraint", "bias_constraint")
_OPTIONAL_SIZES = ("input_dim", "batch_size", "timesteps")
# Keys of a Keras layer config that describe the Keras object, not the computation.
_KERAS_BOOKKEEPING = ("name", "trainable")
# The cell options of ONNX's and PyTorch's LSTMs that Keras's lacks, with the default that means
# Keras's cell. `to_dict` leaves a field at its default out, so a Keras-like spec serializes (and
# hashes, and names its generated module) as it did before these fields existed.
CELL_OPTIONS = {"output_activation": None, "use_recurrent_bias": False, "use_peepholes": False,
                "clip": None, "input_forget": False, "proj_size": 0}


@dataclass(frozen=True, init=False)
class LSTMSpec:
    """The frozen description of one LSTM layer. Defaults are Keras 3's."""

    units: int
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    use_bias: bool = True
    kernel_initializer: Any = "glorot_uniform"
    recurrent_initializer: Any = "orthogonal"
    bias_initializer: Any = "zeros"
    unit_forget_bias: bool = True
    kernel_regularizer: Any = None
    recurrent_regularizer: Any = None
    bias_regularizer: Any = None
    activity_regularizer: Any = None
    kernel_constraint: Any = None
    recurrent_constraint: Any = None
    bias_constraint: Any = None
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    seed: Optional[int] = None
    implementation: int = 2
    return_sequences: bool = False
    return_state: bool = False
    go_backwards: bool = False
    stateful: bool = False
    time_major: bool = False
    unroll: bool = False
    zero_output_for_mask: bool = False
    use_cudnn: Any = "auto"
    dtype: str = "float32"
    input_dim: Optional[int] = None
    batch_size: Optional[int] = None
    timesteps: Optional[int] = None
    # The cell options (CELL_OPTIONS). output_activation: ONNX's h, applied to the cell state
    # (None: `activation`, Keras's choice for both g and h); `activation` is ONNX's g and
    # `recurrent_activation` its f. clip bounds every gate's pre-activation to [-clip, clip]
    # (ONNX Runtime's reading of ONNX's clip). input_forget: f = 1 - i. proj_size: PyTorch's.
    output_activation: Any = None
    use_recurrent_bias: bool = False
    use_peepholes: bool = False
    clip: Optional[float] = None
    input_forget: bool = False
    proj_size: int = 0

    def __init__(self, units: int, **kwargs: Any):
        known = field_names()
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            raise SpecError(unknown[0], kwargs[unknown[0]],
                            f"is not an LSTM argument; known arguments: {', '.join(known)}",
                            _context(units))
        values = {f.name: f.default for f in dataclasses.fields(self) if f.name != "units"}
        values.update(kwargs, units=units)
        try:
            checked = _validate(values)
        except SpecError as err:
            raise err.within(_context(units)) from None
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        changed = [f"{k}={v!r}" for k, v in self.to_dict().items()
                   if k != "units" and v != _DEFAULTS_JSON.get(k)]
        return f"LSTMSpec(units={self.units}{''.join(', ' + c for c in changed)})"

    def replace(self, **changes: Any) -> "LSTMSpec":
        """A copy with some arguments changed (validated again)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values.update(changes)
        return LSTMSpec(**values)

    def to_dict(self) -> dict:
        """Plain JSON-ready values; Keras objects in their Keras config form, parametrized
        activations as `{"name": ..., <parameter>: value}`; cell options at their defaults left out."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in CELL_OPTIONS and value == CELL_OPTIONS[f.name]:
                continue
            if isinstance(value, Parametrized):
                value = value.to_dict()
            out[f.name] = value.to_keras() if hasattr(value, "to_keras") else value
        return out

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no spaces, so equal specs give equal strings."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "LSTMSpec":
        if not isinstance(text, (str, bytes, bytearray)):
            raise SpecError("spec", text, "must be a JSON string")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise SpecError("spec", text[:60], f"is not valid JSON ({err.msg})") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict) -> "LSTMSpec":
        if not isinstance(data, dict):
            raise SpecError("spec", data, "must be a JSON object of LSTM arguments")
        if "units" not in data:
            raise SpecError("units", None, "is required", _context(None))
        return cls(**data)

    @classmethod
    def from_config(cls, config: dict) -> "LSTMSpec":
        """lstmgen's own form (`to_dict()`, optionally with a layer `name`) or a Keras layer config."""
        if isinstance(config, dict) and set(config) - {"name"} <= set(field_names()):
            return cls.from_dict({k: v for k, v in config.items() if k != "name"})
        return cls.from_keras_config(config)

    @classmethod
    def from_keras_config(cls, config: dict) -> "LSTMSpec":
        """Accept `layer.get_config()` of a Keras 3 or tf.keras LSTM as is.

        A layer config (it has a `name`) with `time_major` or `implementation` keys is tf.keras's
        (Keras 3 writes neither), so its "hard_sigmoid" means tf.keras's `keras2_hard_sigmoid`.
        """
        if not isinstance(config, dict):
            raise SpecError("config", config, "must be a Keras layer config dict")
        values = {k: v for k, v in config.items() if k not in _KERAS_BOOKKEEPING}
        if _is_tf_keras(config):
            for name in ("activation", "recurrent_activation"):
                if values.get(name) == "hard_sigmoid":
                    values[name] = "keras2_hard_sigmoid"
        if "dtype" in values:
            values["dtype"] = keras_dtype_name(values["dtype"])
        for key in ("batch_input_shape", "batch_shape"):
            if key in values:
                values.update(_shape_fields(key, values.pop(key), values.get("time_major")))
        return cls.from_dict(values)

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @property
    def output_size(self) -> int:
        """The width of h and of the output: proj_size, or units without a projection."""
        return self.proj_size or self.units

    @property
    def weight_names(self) -> tuple:
        """The layer's weights, in order (see the module docstring)."""
        return weight_names(self.use_bias, self.use_recurrent_bias, self.use_peepholes, self.proj_size)

    def weight_shapes(self, input_dim: int) -> list:
        """Each weight's shape, for inputs of `input_dim` features."""
        return [weight_shape(name, input_dim, self.units, self.proj_size) for name in self.weight_names]

    @property
    def dropout_mask_count(self) -> int:
        """Keras draws one mask per gate with implementation 1, which recurrent_dropout forces."""
        return 4 if self.implementation == 1 or self.recurrent_dropout > 0 else 1


def weight_names(use_bias: bool, use_recurrent_bias: bool, use_peepholes: bool, proj_size: int) -> tuple:
    return (("kernel", "recurrent_kernel") + (("bias",) if use_bias else ())
            + (("recurrent_bias",) if use_recurrent_bias else ())
            + (("peephole",) if use_peepholes else ()) + (("projection",) if proj_size else ()))


def weight_shape(name: str, input_dim: int, units: int, proj_size: int) -> tuple:
    gates = 4 * units
    return {"kernel": (input_dim, gates), "recurrent_kernel": (proj_size or units, gates),
            "bias": (gates,), "recurrent_bias": (gates,), "peephole": (3 * units,),
            "projection": (units, proj_size)}[name]


def field_names() -> tuple:
    return tuple(f.name for f in dataclasses.fields(LSTMSpec))


def _context(units: object) -> str:
    return f"LSTM(units={units!r})"


def _validate(values: dict) -> dict:
    out = dict(values)
    out["units"] = _positive_int("units", values["units"])
    for name in ("activation", "recurrent_activation"):
        out[name] = canonical(values[name], name)
    if values["output_activation"] is not None:
        output_activation = canonical(values["output_activation"], "output_activation")
        out["output_activation"] = None if output_activation == out["activation"] else output_activation
    for name in _BOOL_FIELDS:
        if not isinstance(values[name], bool):
            raise SpecError(name, values[name], "must be True or False")
    for name in _INITIALIZER_FIELDS:
        out[name] = initializers.get(values[name], name)
    for name in _REGULARIZER_FIELDS:
        out[name] = regularizers.get(values[name], name)
    for name in _CONSTRAINT_FIELDS:
        out[name] = constraints.get(values[name], name)
    for name in ("dropout", "recurrent_dropout"):
        out[name] = checked_rate(name, values[name])
    if values["seed"] is not None:
        out["seed"] = _non_negative_int("seed", values["seed"])
    implementation = values["implementation"]
    if (isinstance(implementation, bool) or not isinstance(implementation, numbers.Integral)
            or implementation not in (1, 2)):
        raise SpecError("implementation", implementation, "must be 1 or 2")
    out["implementation"] = int(implementation)
    use_cudnn = values["use_cudnn"]
    if not (use_cudnn is True or use_cudnn is False or isinstance(use_cudnn, str) and use_cudnn == "auto"):
        raise SpecError("use_cudnn", use_cudnn, "must be 'auto', True or False")
    out["use_cudnn"] = use_cudnn if isinstance(use_cudnn, bool) else "auto"
    # Stored as our own string: a caller's str subclass could print as anything in generated code.
    out["dtype"] = _one_of("dtype", values["dtype"], DTYPES)
    for name in _OPTIONAL_SIZES:
        if values[name] is not None:
            out[name] = _positive_int(name, values[name])
    if values["use_recurrent_bias"] and not values["use_bias"]:
        raise SpecError("use_recurrent_bias", True, "needs use_bias=True (the input bias)")
    clip = values["clip"]
    if clip is not None:
        if (isinstance(clip, bool) or not isinstance(clip, numbers.Real) or not math.isfinite(clip)
                or clip <= 0):
            raise SpecError("clip", clip, "must be None or a positive finite number")
        out["clip"] = float(clip)
    proj_size = values["proj_size"]
    if (isinstance(proj_size, bool) or not isinstance(proj_size, numbers.Integral)
            or not 0 <= proj_size < out["units"]):
        raise SpecError("proj_size", proj_size, f"must be 0 (no projection) or an integer in "
                                                f"[1, units) = [1, {out['units']})")
    out["proj_size"] = int(proj_size)
    return out


def _one_of(name: str, value: object, allowed: tuple) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise SpecError(name, value, f"must be one of {', '.join(allowed)}")
    return allowed[allowed.index(value)]


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise SpecError(name, value, "must be a positive integer")
    return int(value)


def _non_negative_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise SpecError(name, value, "must be None or a non-negative integer")
    return int(value)


def checked_rate(name: str, value: object) -> float:
    """A dropout rate in [0, 1) as a float, or SpecError naming `name` (Stack checks its own too)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or not 0.0 <= value < 1.0):
        raise SpecError(name, value, "must be a number in [0, 1)")
    return float(value) + 0.0  # -0.0 -> 0.0, so equal specs serialize equally


def _is_tf_keras(config: dict) -> bool:
    return "name" in config and ("time_major" in config or "implementation" in config)


def keras_dtype_name(value: object) -> object:
    """The dtype name in a Keras config's "dtype": Keras 3 writes a DTypePolicy config, tf.keras
    a plain name (returned as given, for the caller to check)."""
    if isinstance(value, dict):
        name = value.get("config", {}).get("name") if isinstance(value.get("config"), dict) else None
        if value.get("class_name") in ("DTypePolicy", "Policy") and isinstance(name, str):
            return name
        raise SpecError("dtype", value, f"must be a DTypePolicy of {' or '.join(DTYPES)}")
    return value


def _shape_fields(key: str, shape: object, time_major: object) -> dict:
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3):
        raise SpecError(key, shape, "must be [batch_size, timesteps, input_dim] (entries may be null)")
    names = ("timesteps", "batch_size") if time_major is True else ("batch_size", "timesteps")
    return dict(zip(names + ("input_dim",), shape))


_DEFAULTS_JSON = LSTMSpec(1).to_dict()
