"""Registry of elementwise activations: Keras name -> NumPy reference and Numba source.

The NumPy form is the oracle (float64, written independently of the Numba form); the
Numba form is a scalar expression in `x` that templates paste into a generated
`@njit(inline="always")` function. Only names in this table ever reach generated code.

Some take parameters (ONNX's activation_alpha / activation_beta): a spec names them as a
`Parametrized` value, spelled `{"name": "leaky_relu", "alpha": 0.01}`; with every parameter at its
default the value is the plain name, so Keras's names mean what they always meant. Parameters reach
code only as `repr` of validated finite floats.
"""

import ast
import math
import numbers
from dataclasses import dataclass
from typing import Callable, Union

import numpy as np

from lstmgen.errors import SpecError


@dataclass(frozen=True)
class Activation:
    name: str
    numpy: Callable[[np.ndarray], np.ndarray]
    # A scalar expression in `x`; may use `math`, `np`, the helpers in SCALAR_HELPERS and
    # (float32 forms) the FLOAT32_CONSTANTS.
    scalar_source: str
    # A float32 expression LLVM can vectorize (no libm calls), within FAST_FLOAT32_ABS_ERROR of
    # the exact value; empty where there is none and scalar_source is used in float32 too.
    fast_float32_source: str = ""
    # The same for float64, within FAST_FLOAT64_ABS_ERROR.
    fast_float64_source: str = ""
    # (parameter, default) pairs: `numpy` takes them as keyword arguments with these defaults, and
    # `scalar_source` names each as `{parameter}`.
    params: tuple = ()
    # False for ONNX's functions that Keras does not have.
    keras: bool = True


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
    # [-7.905, 7.905], where float32 tanh is already +-1. min and max keep NaN (Python's
    # semantics, which Numba follows) and, unlike a conditional expression, add no branch.
    "_fast_tanh": (
        "x = min(max(x, -_TANH_BOUND), _TANH_BOUND)",
        "x2 = x * x",
        "p = x2 * _TANH_ALPHA_13 + _TANH_ALPHA_11",
        "p = p * x2 + _TANH_ALPHA_9",
        "p = p * x2 + _TANH_ALPHA_7",
        "p = p * x2 + _TANH_ALPHA_5",
        "p = p * x2 + _TANH_ALPHA_3",
        "p = p * x2 + _TANH_ALPHA_1",
        "q = x2 * _TANH_BETA_6 + _TANH_BETA_4",
        "q = q * x2 + _TANH_BETA_2",
        "q = q * x2 + _TANH_BETA_0",
        "return x * p / q",
    ),
    # float64 expm1(x) for 0 <= x <= 708 in plain arithmetic: Taylor of degree 18 at x / 2**10,
    # then doubled 10 times by expm1(2y) = expm1(y) * (expm1(y) + 2), which keeps the relative
    # accuracy near 0 that e**x - 1 would lose.
    "_fast_expm1_64": (
        "r = x * 0.0009765625",
        f"q = {1.0 / math.factorial(18)!r}",
        *(f"q = q * r + {1.0 / math.factorial(k)!r}" for k in range(17, 0, -1)),
        "q = q * r",
        *(["q = q * (q + 2.0)"] * 10),
        "return q",
    ),
    # tanh|x| = q / (q + 2) with q = expm1(2|x|); 1.0 in float64 from |x| = 19.1 on.
    "_fast_tanh_64": (
        "q = _fast_expm1_64(min(abs(x) * 2.0, 40.0))",
        "return math.copysign(q / (q + 2.0), x)",
    ),
    # sigmoid(|x|) = (1 + q) / (2 + q) and sigmoid(-|x|) = 1 / (2 + q), q = expm1(|x|): both
    # accurate relative to the value, tails included (Keras's 1 / (1 + exp(-x)) is too).
    "_fast_sigmoid_64": (
        "q = _fast_expm1_64(min(abs(x), 708.0))",
        "return (1.0 + q * (x >= 0.0)) / (2.0 + q)",
    ),
}
# The float32 constants the helpers name: module globals in generated code, which Numba reads as
# constants, where each np.float32(...) written in a function is a call that Numba types, copies
# into every caller it is inlined into, and lowers again (with branches, a fifth of a variant's
# compile time went to inlining the gates' five activations).
FLOAT32_CONSTANTS = {
    "_TANH_BOUND": 7.90531110763549805,
    "_TANH_ALPHA_13": -2.76076847742355e-16,
    "_TANH_ALPHA_11": 2.00018790482477e-13,
    "_TANH_ALPHA_9": -8.60467152213735e-11,
    "_TANH_ALPHA_7": 5.12229709037114e-08,
    "_TANH_ALPHA_5": 1.48572235717979e-05,
    "_TANH_ALPHA_3": 6.37261928875436e-04,
    "_TANH_ALPHA_1": 4.89352455891786e-03,
    "_TANH_BETA_6": 1.19825839466702e-06,
    "_TANH_BETA_4": 1.18534705686654e-04,
    "_TANH_BETA_2": 2.26843463243900e-03,
    "_TANH_BETA_0": 4.89352518554385e-03,
    "_HALF": 0.5,
}
# Bounds on |fast - exact| over all float32 (float64) inputs, checked by tests/test_activations.py.
FAST_FLOAT32_ABS_ERROR = 5e-7
FAST_FLOAT64_ABS_ERROR = 1e-15

_TABLE = [
    Activation("tanh", np.tanh, "math.tanh(x)", "_fast_tanh(x)", "_fast_tanh_64(x)"),
    Activation("sigmoid", lambda x: 1.0 / (1.0 + np.exp(-x)), "1.0 / (1.0 + math.exp(-x))",
               "_HALF * _fast_tanh(_HALF * x) + _HALF",
               "_fast_sigmoid_64(x)"),
    Activation("hard_sigmoid", _hard_sigmoid, "_hard_sigmoid(x)"),
    # tf.keras / Keras 2 defined hard_sigmoid as clip(0.2x + 0.5): models imported from there need it.
    # ONNX's HardSigmoid is this form with parameters.
    Activation("keras2_hard_sigmoid", lambda x, alpha=0.2, beta=0.5: np.clip(alpha * x + beta, 0.0, 1.0),
               "min(max({alpha} * x + {beta}, 0.0), 1.0)", params=(("alpha", 0.2), ("beta", 0.5))),
    Activation("linear", lambda x: x, "x"),
    Activation("relu", lambda x: np.where(x > 0.0, x, 0.0), "x if x > 0.0 else 0.0"),
    Activation("relu6", lambda x: np.clip(x, 0.0, 6.0), "min(max(x, 0.0), 6.0)"),
    Activation("leaky_relu", lambda x, alpha=0.2: np.where(x >= 0.0, x, alpha * x),
               "x if x >= 0.0 else {alpha} * x", params=(("alpha", 0.2),)),
    Activation("elu", lambda x, alpha=1.0: np.where(x > 0.0, x, alpha * np.expm1(np.minimum(x, 0.0))),
               "x if x > 0.0 else {alpha} * math.expm1(x)", params=(("alpha", 1.0),)),
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
    # ONNX's: defaults are the ONNX operators' (ONNX Runtime's LSTM defaults these to 0.0).
    Activation("affine", lambda x, alpha=1.0, beta=0.0: alpha * x + beta, "{alpha} * x + {beta}",
               params=(("alpha", 1.0), ("beta", 0.0)), keras=False),
    Activation("thresholded_relu", lambda x, alpha=1.0: np.where(x > alpha, x, 0.0),
               "x if x > {alpha} else 0.0", params=(("alpha", 1.0),), keras=False),
    Activation("scaled_tanh", lambda x, alpha=1.0, beta=1.0: alpha * np.tanh(beta * x),
               "{alpha} * math.tanh({beta} * x)", params=(("alpha", 1.0), ("beta", 1.0)), keras=False),
]

ACTIVATIONS = {a.name: a for a in _TABLE}
ALIASES = {"swish": "silu", "hard_swish": "hard_silu", None: "linear"}
# Keras accepts these, but they mix units (or need extra arguments), so an LSTM gate
# cannot be computed one element at a time.
NOT_ELEMENTWISE = ("glu", "log_softmax", "softmax", "sparsemax", "threshold")


@dataclass(frozen=True)
class Parametrized:
    """A registry activation with parameters other than its defaults (see `canonical`)."""

    name: str
    params: tuple  # one float per parameter of the registry entry, in its order

    def to_dict(self) -> dict:
        names = [p for p, _ in ACTIVATIONS[self.name].params]
        return {"name": self.name, **dict(zip(names, self.params))}


ActivationValue = Union[str, Parametrized]


def canonical_name(value: object, field: str) -> str:
    """The registry name for a Keras activation identifier, or SpecError."""
    name = ALIASES.get(value, value) if (value is None or isinstance(value, str)) else value
    if isinstance(name, str) and name in ACTIVATIONS:
        return ACTIVATIONS[name].name  # the registry's own string, never a caller's str subclass
    allowed = ", ".join(sorted(ACTIVATIONS) + sorted(a for a in ALIASES if a))
    if isinstance(value, str) and value in NOT_ELEMENTWISE:
        raise SpecError(field, value, f"is not elementwise, so it cannot act on LSTM gates; "
                                      f"must be one of {allowed}")
    raise SpecError(field, value, f"must be one of {allowed} (or None for linear), or "
                                  "{'name': ..., parameter: number} for one with parameters")


def canonical(value: object, field: str) -> ActivationValue:
    """A registry name, or a `Parametrized` one from `{"name": ..., <parameter>: number, ...}`
    (or a Parametrized); the plain name when every parameter is at its default."""
    if isinstance(value, Parametrized):
        value = value.to_dict()
    if not isinstance(value, dict):
        return canonical_name(value, field)
    if "name" not in value:
        raise SpecError(field, value, "needs a 'name' (an activation with parameters is "
                                      "{'name': ..., parameter: number})")
    name = canonical_name(value["name"], f"{field}['name']")
    defaults = ACTIVATIONS[name].params
    unknown = sorted(set(value) - {"name"} - {p for p, _ in defaults}, key=str)
    if unknown:
        taken = ", ".join(p for p, _ in defaults) or "none"
        raise SpecError(field, value, f"gives {unknown[0]!r}, which {name} does not take "
                                      f"(its parameters: {taken})")
    params = []
    for param, default in defaults:
        number = value.get(param, default)
        if (isinstance(number, bool) or not isinstance(number, numbers.Real)
                or not math.isfinite(number)):
            raise SpecError(f"{field}[{param!r}]", number, "must be a finite real number")
        params.append(float(number) + 0.0)  # -0.0 -> 0.0, so equal values serialize equally
    if params == [default for _, default in defaults]:
        return name
    return Parametrized(name, tuple(params))


def _parts(value: ActivationValue) -> tuple:
    """(registry entry, {parameter: float}) of a canonical value."""
    if isinstance(value, Parametrized):
        activation = ACTIVATIONS[value.name]
        return activation, dict(zip((p for p, _ in activation.params), value.params))
    activation = ACTIVATIONS[value]
    return activation, dict(activation.params)


def numpy_form(value: ActivationValue) -> Callable[[np.ndarray], np.ndarray]:
    """The float64 NumPy function of a canonical value, its parameters bound."""
    activation, params = _parts(value)
    return lambda x: activation.numpy(x, **params)


def source(value: ActivationValue, dtype: str = "") -> str:
    """The scalar Numba expression in `x` of a canonical value (for dtype "float32" or "float64",
    the vectorizable form where the registry has one), its parameters rendered as float literals."""
    activation, params = _parts(value)
    fast = {"float32": activation.fast_float32_source,
            "float64": activation.fast_float64_source}.get(dtype, "")
    if fast:
        return fast
    if not activation.params:
        return activation.scalar_source
    return activation.scalar_source.format(**{p: f"({v!r})" if v < 0 else repr(v)
                                              for p, v in params.items()})


def written_out(expression: str, out: str, argument: str, tag: str) -> tuple:
    """Lines that set `out` to a `source` expression applied to `argument` (Python source), with
    every SCALAR_HELPERS call in it written out in place; locals get the suffix `_<tag><n>`.

    Numba inlines an `inline="always"` call by running its whole frontend again at each call site:
    a cell's five activations, each calling a helper, cost a quarter second of every variant's
    compile that straight-line code does not (BENCHMARKS.md, session 12).
    """
    inliner = _Inliner(tag)
    x = inliner.fresh("x")
    value = inliner.visit(_Renamer({"x": x}).visit(ast.parse(expression, mode="eval").body))
    return (f"{x} = {argument}", *inliner.lines, f"{out} = {ast.unparse(value)}")


class _Renamer(ast.NodeTransformer):
    def __init__(self, names: dict):
        self.names = names

    def visit_Name(self, node):
        return ast.Name(self.names.get(node.id, node.id), node.ctx)


class _Inliner(ast.NodeTransformer):
    """Replaces each helper call in an expression by the helper's result, its statements (with
    their helper calls written out too) appended to `lines`."""

    def __init__(self, tag: str):
        self.tag, self.lines, self.count = tag, [], 0

    def fresh(self, name: str) -> str:
        self.count += 1
        return f"{name}_{self.tag}{self.count}"

    def visit_Call(self, node):
        node = self.generic_visit(node)  # the arguments' helper calls first
        if not (isinstance(node.func, ast.Name) and node.func.id in SCALAR_HELPERS):
            return node
        body = ast.parse("\n".join(SCALAR_HELPERS[node.func.id])).body
        local = {"x"} | {target.id for line in body if isinstance(line, ast.Assign)
                         for target in line.targets}
        renamer = _Renamer({name: self.fresh(name) for name in sorted(local)})
        self.lines.append(f"{renamer.names['x']} = {ast.unparse(node.args[0])}")
        for line in body:
            value = self.visit(renamer.visit(line.value))
            if isinstance(line, ast.Return):  # a helper's last line
                return value
            self.lines.append(f"{renamer.names[line.targets[0].id]} = {ast.unparse(value)}")
        raise ValueError(f"helper {node.func.id} does not end in a return")
