"""Registry of elementwise activations: Keras name -> NumPy reference and Numba source.

The NumPy form is the oracle (float64, written independently of the Numba form); the
Numba form is a scalar expression in `x` that templates paste into a generated
`@njit(inline="always")` function. Only names in this table ever reach generated code.
"""

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from lstmgen.errors import SpecError


@dataclass(frozen=True)
class Activation:
    name: str
    numpy: Callable[[np.ndarray], np.ndarray]
    # A scalar expression in `x`; may use `math`, `np` and the helpers in SCALAR_HELPERS.
    scalar_source: str
    # A float32 expression LLVM can vectorize (no libm calls), within FAST_FLOAT32_ABS_ERROR of
    # the exact value; empty where there is none and scalar_source is used in float32 too.
    fast_float32_source: str = ""


# math.erf elementwise: scipy.special would cost a quarter second of import time for one function.
_erf = np.vectorize(math.erf, otypes=[np.float64])


def _softplus(x):
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _hard_sigmoid(x):
    return np.clip(x / 6.0 + 0.5, 0.0, 1.0)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946

# Scalar helper functions of `x` shared by several activations' Numba sources: name -> body lines.
SCALAR_HELPERS = {
    "_softplus": ("return max(x, 0.0) + math.log1p(math.exp(-abs(x)))",),
    "_hard_sigmoid": ("return min(max(x / 6.0 + 0.5, 0.0), 1.0)",),
    # Eigen's and ONNX Runtime's rational tanh: odd degree-13 over even degree-6 polynomial on
    # [-7.905, 7.905], where float32 tanh is already +-1. The clamp is written so NaN stays NaN.
    "_fast_tanh": (
        "bound = np.float32(7.90531110763549805)",
        "x = bound if x > bound else (-bound if x < -bound else x)",
        "x2 = x * x",
        "p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)",
        "p = p * x2 + np.float32(-8.60467152213735e-11)",
        "p = p * x2 + np.float32(5.12229709037114e-08)",
        "p = p * x2 + np.float32(1.48572235717979e-05)",
        "p = p * x2 + np.float32(6.37261928875436e-04)",
        "p = p * x2 + np.float32(4.89352455891786e-03)",
        "q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)",
        "q = q * x2 + np.float32(2.26843463243900e-03)",
        "q = q * x2 + np.float32(4.89352518554385e-03)",
        "return x * p / q",
    ),
}
# Bound on |fast - exact| over all float32 inputs, checked by tests/test_activations.py.
FAST_FLOAT32_ABS_ERROR = 5e-7

_TABLE = [
    Activation("tanh", np.tanh, "math.tanh(x)", "_fast_tanh(x)"),
    Activation("sigmoid", lambda x: 1.0 / (1.0 + np.exp(-x)), "1.0 / (1.0 + math.exp(-x))",
               "np.float32(0.5) * _fast_tanh(np.float32(0.5) * x) + np.float32(0.5)"),
    Activation("hard_sigmoid", _hard_sigmoid, "_hard_sigmoid(x)"),
    # tf.keras / Keras 2 defined hard_sigmoid as clip(0.2x + 0.5): models imported from there need it.
    Activation("keras2_hard_sigmoid", lambda x: np.clip(0.2 * x + 0.5, 0.0, 1.0),
               "min(max(0.2 * x + 0.5, 0.0), 1.0)"),
    Activation("linear", lambda x: x, "x"),
    Activation("relu", lambda x: np.where(x > 0.0, x, 0.0), "x if x > 0.0 else 0.0"),
    Activation("relu6", lambda x: np.clip(x, 0.0, 6.0), "min(max(x, 0.0), 6.0)"),
    Activation("leaky_relu", lambda x: np.where(x >= 0.0, x, 0.2 * x), "x if x >= 0.0 else 0.2 * x"),
    Activation("elu", lambda x: np.where(x > 0.0, x, np.expm1(np.minimum(x, 0.0))),
               "x if x > 0.0 else math.expm1(x)"),
    Activation("selu",
               lambda x: _SELU_SCALE * np.where(x > 0.0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0.0))),
               f"{_SELU_SCALE!r} * (x if x > 0.0 else {_SELU_ALPHA!r} * math.expm1(x))"),
    Activation("celu", lambda x: np.maximum(x, 0.0) + np.minimum(np.expm1(np.minimum(x, 0.0)), 0.0),
               "max(x, 0.0) + min(math.expm1(min(x, 0.0)), 0.0)"),
    Activation("softplus", _softplus, "_softplus(x)"),
    Activation("softsign", lambda x: x / (1.0 + np.abs(x)), "x / (1.0 + abs(x))"),
    Activation("exponential", np.exp, "math.exp(x)"),
    Activation("gelu", lambda x: 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0))),
               "0.5 * x * (1.0 + math.erf(x * 0.7071067811865476))"),
    Activation("silu", lambda x: x / (1.0 + np.exp(-x)), "x / (1.0 + math.exp(-x))"),
    Activation("hard_silu", lambda x: x * _hard_sigmoid(x), "x * _hard_sigmoid(x)"),
    Activation("mish", lambda x: x * np.tanh(_softplus(x)), "x * math.tanh(_softplus(x))"),
    Activation("log_sigmoid", lambda x: -_softplus(-x),
               "min(x, 0.0) - math.log1p(math.exp(-abs(x)))"),
    Activation("hard_tanh", lambda x: np.clip(x, -1.0, 1.0), "min(max(x, -1.0), 1.0)"),
    Activation("tanh_shrink", lambda x: x - np.tanh(x), "x - math.tanh(x)"),
    Activation("soft_shrink",
               lambda x: np.where(x > 0.5, x - 0.5, np.where(x < -0.5, x + 0.5, 0.0)),
               "x - 0.5 if x > 0.5 else (x + 0.5 if x < -0.5 else 0.0)"),
    Activation("hard_shrink", lambda x: np.where(np.abs(x) > 0.5, x, 0.0),
               "x if abs(x) > 0.5 else 0.0"),
    Activation("squareplus", lambda x: 0.5 * (x + np.sqrt(x * x + 4.0)),
               "0.5 * (x + math.sqrt(x * x + 4.0))"),
    Activation("sparse_plus",
               lambda x: np.where(x <= -1.0, 0.0, np.where(x >= 1.0, x, 0.25 * (x + 1.0) ** 2)),
               "0.0 if x <= -1.0 else (x if x >= 1.0 else 0.25 * (x + 1.0) * (x + 1.0))"),
    Activation("sparse_sigmoid", lambda x: np.clip(0.5 * (x + 1.0), 0.0, 1.0),
               "0.0 if x <= -1.0 else (1.0 if x >= 1.0 else 0.5 * (x + 1.0))"),
]

ACTIVATIONS = {a.name: a for a in _TABLE}
ALIASES = {"swish": "silu", "hard_swish": "hard_silu", None: "linear"}
# Keras accepts these, but they mix units (or need extra arguments), so an LSTM gate
# cannot be computed one element at a time.
NOT_ELEMENTWISE = ("glu", "log_softmax", "softmax", "sparsemax", "threshold")


def canonical_name(value: object, field: str) -> str:
    """The registry name for a Keras activation identifier, or SpecError."""
    name = ALIASES.get(value, value) if (value is None or isinstance(value, str)) else value
    if isinstance(name, str) and name in ACTIVATIONS:
        return ACTIVATIONS[name].name  # the registry's own string, never a caller's str subclass
    allowed = ", ".join(sorted(ACTIVATIONS) + sorted(a for a in ALIASES if a))
    if isinstance(value, str) and value in NOT_ELEMENTWISE:
        raise SpecError(field, value, f"is not elementwise, so it cannot act on LSTM gates; "
                                      f"must be one of {allowed}")
    raise SpecError(field, value, f"must be one of {allowed} (or None for linear)")
