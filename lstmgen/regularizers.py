"""Keras 3's weight regularizers in NumPy, as frozen, validated, serializable objects.

`get(identifier, field)` parses a Keras name ("l2", "L2"), a Keras 3 or tf.keras config dict, a
Regularizer or None; calling the result on a weight returns the penalty Keras adds to the loss,
computed in float64 with the formulas of keras/src/regularizers/regularizers.py.
"""

import dataclasses

import numpy as np

from lstmgen._keras_object import Family, KerasObject, choice, number, param
from lstmgen.errors import SpecError

# Keras's validate_float_arg: penalty factors are finite and non-negative.
_FACTOR = number(0.0)
_EPSILON = 1e-7  # keras.config.epsilon()


@dataclasses.dataclass(frozen=True)
class Regularizer(KerasObject):
    """Base class: `regularizer(w)` is the float penalty for weight `w`."""


@dataclasses.dataclass(frozen=True)
class L1(Regularizer):
    l1: float = param(0.01, _FACTOR)

    def __call__(self, w: np.ndarray) -> float:
        return self.l1 * float(np.sum(np.abs(np.asarray(w, dtype=np.float64))))


@dataclasses.dataclass(frozen=True)
class L2(Regularizer):
    l2: float = param(0.01, _FACTOR)

    def __call__(self, w: np.ndarray) -> float:
        return self.l2 * float(np.sum(np.square(np.asarray(w, dtype=np.float64))))


@dataclasses.dataclass(frozen=True)
class L1L2(Regularizer):
    """Defaults are 0 and 0 in Keras 3 ("l1l2" is a zero penalty); Keras skips a term whose factor is 0."""

    l1: float = param(0.0, _FACTOR)
    l2: float = param(0.0, _FACTOR)

    def __call__(self, w: np.ndarray) -> float:
        penalty = 0.0
        if self.l1:
            penalty += L1(self.l1)(w)
        if self.l2:
            penalty += L2(self.l2)(w)
        return penalty


@dataclasses.dataclass(frozen=True)
class OrthogonalRegularizer(Regularizer):
    """factor * mean |cos| over pairs of distinct rows (or columns) of a 2-D weight.

    Keras normalizes with x * min(rsqrt(sum x^2), 1/epsilon) and divides by the pair count
    size * (size - 1) / 2, so a weight with a single row (column) gives nan, as in Keras.
    """

    factor: float = param(0.01, _FACTOR)
    mode: str = param("rows", choice("rows", "columns"))

    def __call__(self, w: np.ndarray) -> float:
        w = np.asarray(w, dtype=np.float64)
        if w.ndim != 2:
            raise SpecError("weight shape", w.shape, "OrthogonalRegularizer applies to 2-D weights only")
        vectors = w if self.mode == "rows" else w.T
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_norm = 1.0 / np.sqrt(np.sum(np.square(vectors), axis=1, keepdims=True))
            unit = vectors * np.minimum(inv_norm, 1.0 / _EPSILON)
            size = unit.shape[0]
            off_diagonal = np.abs(unit @ unit.T) * (1.0 - np.eye(size))
            return float(self.factor * 0.5 * np.sum(off_diagonal) / np.float64(size * (size - 1.0) / 2.0))


_FAMILY = Family(Regularizer, [L1, L2, L1L2, OrthogonalRegularizer], {}, module="keras.regularizers", optional=True)


def get(identifier, field: str) -> Regularizer | None:
    """The Regularizer `identifier` names, or None; raises SpecError naming `field` otherwise."""
    return _FAMILY.get(identifier, field)
