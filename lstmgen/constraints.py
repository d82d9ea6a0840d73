"""Keras 3's weight constraints in NumPy, as frozen, validated, serializable objects.

`get(identifier, field)` parses a Keras name ("max_norm", "MaxNorm", tf.keras's "nonneg"), a Keras 3
or tf.keras config dict, a Constraint or None; calling the result on a weight returns the projected
weight in the weight's dtype, computed in float64 with the formulas (and the epsilon) of
keras/src/constraints/constraints.py.
"""

import dataclasses

import numpy as np

from lstmgen._keras_object import Family, KerasObject, axis, number, param
from lstmgen.errors import SpecError

_EPSILON = 1e-7  # keras.config.epsilon(), added to the norms Keras divides by


@dataclasses.dataclass(frozen=True)
class Constraint(KerasObject):
    """Base class: `constraint(w)` is the projection of `w`, in `w`'s dtype."""

    def __call__(self, w: np.ndarray) -> np.ndarray:
        w = np.asarray(w)
        return self._project(w.astype(np.float64)).astype(w.dtype)

    def _rescale(self, w, desired_norm):
        """w * desired / (epsilon + norm), the norms taken along `axis`: Keras's norm constraints."""
        norms = np.sqrt(np.sum(np.square(w), axis=self.axis, keepdims=True))
        return w * (desired_norm(norms) / (_EPSILON + norms))


@dataclasses.dataclass(frozen=True)
class MaxNorm(Constraint):
    max_value: float = param(2.0, number(0.0))
    axis: int | tuple[int, ...] = param(0, axis)

    def _project(self, w):
        return self._rescale(w, lambda norms: np.clip(norms, 0.0, self.max_value))


@dataclasses.dataclass(frozen=True)
class MinMaxNorm(Constraint):
    """Norms move to rate * clip(norm, min_value, max_value) + (1 - rate) * norm."""

    min_value: float = param(0.0, number(0.0))
    max_value: float = param(1.0, number(0.0))
    rate: float = param(1.0, number(0.0, 1.0))
    axis: int | tuple[int, ...] = param(0, axis)

    def __post_init__(self):
        super().__post_init__()
        if self.max_value < self.min_value:
            raise SpecError("max_value", self.max_value, f"a number >= min_value={self.min_value}")

    def _project(self, w):
        return self._rescale(
            w, lambda norms: self.rate * np.clip(norms, self.min_value, self.max_value) + (1.0 - self.rate) * norms)


@dataclasses.dataclass(frozen=True)
class NonNeg(Constraint):
    def _project(self, w):
        return np.maximum(w, 0.0)


@dataclasses.dataclass(frozen=True)
class UnitNorm(Constraint):
    axis: int | tuple[int, ...] = param(0, axis)

    def _project(self, w):
        return self._rescale(w, lambda norms: 1.0)


_FAMILY = Family(
    Constraint,
    [MaxNorm, MinMaxNorm, NonNeg, UnitNorm],
    # tf.keras's legacy names; Keras 3 itself only knows the class names and their snake_case forms.
    {"maxnorm": MaxNorm, "nonneg": NonNeg, "unitnorm": UnitNorm},
    module="keras.constraints",
    optional=True,
)


def get(identifier, field: str) -> Constraint | None:
    """The Constraint `identifier` names, or None; raises SpecError naming `field` otherwise."""
    return _FAMILY.get(identifier, field)
