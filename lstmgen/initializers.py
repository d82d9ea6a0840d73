"""Keras 3's weight initializers in NumPy, as frozen, validated, serializable objects.

`get(identifier, field)` parses a Keras name ("glorot_uniform", "GlorotUniform"), a Keras 3 or
tf.keras config dict, or an Initializer; calling the result as `init(shape, dtype, rng)` returns the
initial weight. Keras draws from torch's random streams, so values cannot match Keras bit for bit:
the formulas (fans, scales, truncation, QR sign fix) follow keras/src/initializers exactly instead.
"""

import dataclasses
import math

import numpy as np

from lstmgen._keras_object import Family, KerasObject, choice, number, optional_axes, param, seed
from lstmgen.errors import SpecError

# Standard deviation of a standard normal truncated to (-2, 2); Keras divides by it so that a
# truncated_normal VarianceScaling has exactly the requested variance.
TRUNCATED_STDDEV = 0.87962566103423978


@dataclasses.dataclass(frozen=True)
class Initializer(KerasObject):
    """Base class. Subclasses implement `_sample(shape, rng)` in float64."""

    def __call__(self, shape, dtype, rng: np.random.Generator) -> np.ndarray:
        """The initial value of a weight of `shape`; an own `seed` replaces `rng`, so seeded draws repeat."""
        own_seed = getattr(self, "seed", None)
        if own_seed is not None:
            rng = np.random.default_rng(own_seed)
        return np.asarray(self._sample(tuple(shape), rng), dtype=np.float64).astype(dtype)


def _truncated_normal(rng, shape):
    """Standard normal truncated to (-2, 2): out-of-range draws are redrawn until none is left.

    This is the distribution TF and JAX sample exactly; Keras's torch backend approximates it by
    drawing 4 values per element and keeping the first one inside, which leaves an outlier with
    probability P(|z| >= 2)**4 ~ 4e-6.
    """
    x = rng.standard_normal(shape)
    outside = np.abs(x) >= 2.0
    while outside.any():
        x[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(x) >= 2.0
    return x


@dataclasses.dataclass(frozen=True)
class Zeros(Initializer):
    def _sample(self, shape, rng):
        return np.zeros(shape)


@dataclasses.dataclass(frozen=True)
class Ones(Initializer):
    def _sample(self, shape, rng):
        return np.ones(shape)


@dataclasses.dataclass(frozen=True)
class Constant(Initializer):
    value: float = param(0.0, number())

    def _sample(self, shape, rng):
        return np.full(shape, self.value)


@dataclasses.dataclass(frozen=True)
class Identity(Initializer):
    """Keras's eye(rows, cols) * gain; Keras's own get_config drops `gain`, ours keeps it."""

    gain: float = param(1.0, number())

    def _sample(self, shape, rng):
        if len(shape) != 2:
            raise SpecError("shape", shape, "Identity initializes 2-D weights only")
        return self.gain * np.eye(*shape)


@dataclasses.dataclass(frozen=True)
class RandomNormal(Initializer):
    mean: float = param(0.0, number())
    stddev: float = param(0.05, number(0.0))
    seed: int | None = param(None, seed)

    def _sample(self, shape, rng):
        return self.mean + self.stddev * rng.standard_normal(shape)


@dataclasses.dataclass(frozen=True)
class RandomUniform(Initializer):
    minval: float = param(-0.05, number())
    maxval: float = param(0.05, number())
    seed: int | None = param(None, seed)

    def __post_init__(self):
        super().__post_init__()
        if self.maxval < self.minval:
            raise SpecError("maxval", self.maxval, f"a number >= minval={self.minval}")

    def _sample(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, shape)


@dataclasses.dataclass(frozen=True)
class TruncatedNormal(Initializer):
    """Normal(mean, stddev) truncated to mean +- 2 stddev (so its own stddev is 0.88 * stddev)."""

    mean: float = param(0.0, number())
    stddev: float = param(0.05, number(0.0))
    seed: int | None = param(None, seed)

    def _sample(self, shape, rng):
        return self.mean + self.stddev * _truncated_normal(rng, shape)


def compute_fans(shape, input_axes, output_axes):
    """Keras's compute_fans: products over the given axes if both are set, else by rank."""
    if input_axes is not None and output_axes is not None:
        return math.prod(shape[a] for a in input_axes), math.prod(shape[a] for a in output_axes)
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


@dataclasses.dataclass(frozen=True)
class VarianceScaling(Initializer):
    """Zero-mean draws of variance scale / n, n the fan_in, fan_out or their mean (at least 1)."""

    scale: float = param(1.0, number(0.0, low_open=True))
    mode: str = param("fan_in", choice("fan_in", "fan_out", "fan_avg"))
    distribution: str = param("truncated_normal", choice("truncated_normal", "untruncated_normal", "uniform"))
    seed: int | None = param(None, seed)
    input_axes: tuple[int, ...] | None = param(None, optional_axes)
    output_axes: tuple[int, ...] | None = param(None, optional_axes)

    def _sample(self, shape, rng):
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        variance = self.scale / max(1.0, n)
        if self.distribution == "truncated_normal":
            return math.sqrt(variance) / TRUNCATED_STDDEV * _truncated_normal(rng, shape)
        if self.distribution == "untruncated_normal":
            return math.sqrt(variance) * rng.standard_normal(shape)
        limit = math.sqrt(3.0 * variance)
        return rng.uniform(-limit, limit, shape)


def _fixed(value):
    """A VarianceScaling argument that a named special case fixes (not a constructor argument)."""
    return dataclasses.field(default=value, init=False)


@dataclasses.dataclass(frozen=True)
class GlorotNormal(VarianceScaling):
    scale: float = _fixed(1.0)
    mode: str = _fixed("fan_avg")
    distribution: str = _fixed("truncated_normal")


@dataclasses.dataclass(frozen=True)
class GlorotUniform(VarianceScaling):
    scale: float = _fixed(1.0)
    mode: str = _fixed("fan_avg")
    distribution: str = _fixed("uniform")


@dataclasses.dataclass(frozen=True)
class HeNormal(VarianceScaling):
    scale: float = _fixed(2.0)
    mode: str = _fixed("fan_in")
    distribution: str = _fixed("truncated_normal")


@dataclasses.dataclass(frozen=True)
class HeUniform(VarianceScaling):
    scale: float = _fixed(2.0)
    mode: str = _fixed("fan_in")
    distribution: str = _fixed("uniform")


@dataclasses.dataclass(frozen=True)
class LecunNormal(VarianceScaling):
    scale: float = _fixed(1.0)
    mode: str = _fixed("fan_in")
    distribution: str = _fixed("truncated_normal")


@dataclasses.dataclass(frozen=True)
class LecunUniform(VarianceScaling):
    scale: float = _fixed(1.0)
    mode: str = _fixed("fan_in")
    distribution: str = _fixed("uniform")


@dataclasses.dataclass(frozen=True)
class Orthogonal(Initializer):
    """Q of the QR of a (max, min) normal matrix, columns sign-fixed by diag(R), transposed if wide."""

    gain: float = param(1.0, number())
    seed: int | None = param(None, seed)

    def _sample(self, shape, rng):
        if len(shape) < 2:
            raise SpecError("shape", shape, "Orthogonal initializes weights of rank >= 2 only")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        q, r = np.linalg.qr(rng.standard_normal((max(rows, cols), min(rows, cols))))
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)


_FAMILY = Family(
    Initializer,
    [Zeros, Ones, Constant, Identity, RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling,
     GlorotNormal, GlorotUniform, HeNormal, HeUniform, LecunNormal, LecunUniform, Orthogonal],
    # The aliases Keras 3's initializers.get also accepts.
    {"normal": RandomNormal, "uniform": RandomUniform, "one": Ones, "zero": Zeros,
     "IdentityInitializer": Identity, "OrthogonalInitializer": Orthogonal},
    module="keras.initializers",
    optional=False,
)


def get(identifier, field: str) -> Initializer:
    """The Initializer `identifier` names; raises SpecError naming `field` if it is not one (or None)."""
    return _FAMILY.get(identifier, field)
