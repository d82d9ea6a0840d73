"""Shared machinery of the Keras-style initializers, regularizers and constraints.

Every such object is a frozen dataclass whose init fields are exactly the Keras constructor
arguments, each declared with `param(default, check)`: the check validates and normalizes the value
(ints to floats, lists to tuples) so objects compare equal however they were written and hash.
`Family.get` is the one parser for identifiers: names are looked up in a fixed table and configs
only ever become keyword arguments of a known class, so no identifier can run code.
"""

import dataclasses
import math
import numbers
import re

from lstmgen.errors import SpecError


def param(default, check):
    """A dataclass field validated and normalized by `check(name, value)` on construction."""
    return dataclasses.field(default=default, metadata={"check": check})


def number(low=-math.inf, high=math.inf, low_open=False):
    """Check for a finite real number (bool is not one) in [low, high] (or (low, high]); returns a float."""
    bounds = [f"> {low:g}" if low_open else f">= {low:g}"] if low > -math.inf else []
    bounds += [f"<= {high:g}"] if high < math.inf else []
    allowed = " ".join(["a finite real number", " and ".join(bounds)]).strip()

    def check(name, value):
        if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
                or value < low or (low_open and value == low) or value > high):
            raise SpecError(name, value, allowed)
        return float(value) + 0.0  # -0.0 -> 0.0, so equal objects serialize equally
    return check


def choice(*options):
    """Check for one of a fixed set of strings."""
    def check(name, value):
        if not isinstance(value, str) or value not in options:
            raise SpecError(name, value, f"one of {sorted(options)}")
        return value
    return check


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _int_tuple(value):
    """A list or tuple of ints as a tuple of ints, else None."""
    if isinstance(value, (list, tuple)) and all(_is_int(v) for v in value):
        return tuple(int(v) for v in value)
    return None


def seed(name, value):
    """Seeds are None or a non-negative int, the seeds numpy.random.default_rng takes."""
    if value is None:
        return None
    if _is_int(value) and value >= 0:
        return int(value)
    raise SpecError(name, value, "None or an int >= 0")


def axis(name, value):
    """A constraint's norm axis: an int or a list of ints (Keras accepts both)."""
    if _is_int(value):
        return int(value)
    if axes := _int_tuple(value):
        return axes
    raise SpecError(name, value, "an int or a non-empty list of ints")


def optional_axes(name, value):
    """VarianceScaling's input_axes/output_axes: None or a list of ints."""
    if value is None:
        return None
    if (axes := _int_tuple(value)) is not None:
        return axes
    raise SpecError(name, value, "None or a list of ints")


@dataclasses.dataclass(frozen=True)
class KerasObject:
    """Base of the frozen objects: validation on construction, `config()` and `to_keras()`."""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if f.init:
                object.__setattr__(self, f.name, f.metadata["check"](f.name, getattr(self, f.name)))

    @property
    def class_name(self) -> str:
        """The canonical Keras 3 class name (our classes are named exactly like Keras's)."""
        return type(self).__name__

    def config(self) -> dict:
        """Every constructor argument, defaults included, as JSON-ready values (tuples as lists)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self) if f.init}

    def to_keras(self) -> dict:
        """The tf.keras-style serialization, which both Keras 3 and `get` read back."""
        return {"class_name": self.class_name, "config": self.config()}


def _snake_case(name):
    """Keras's `to_snake_case`, which makes its lower-case names ("L1L2" -> "l1l2", "NonNeg" -> "non_neg")."""
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


class Family:
    """One kind of Keras object (initializers, ...): its base class, its names and its Keras module."""

    _DICT_KEYS = ("class_name", "config", "module", "registered_name")

    def __init__(self, base, classes, aliases, module, optional):
        self.base = base
        self.module = module
        self.optional = optional
        self.names = {**{c.__name__: c for c in classes}, **{_snake_case(c.__name__): c for c in classes},
                      **aliases}
        self.allowed = f"one of {sorted(self.names)}, a Keras config dict" + (" or None" if optional else "")

    def get(self, identifier, field):
        """Parse a name, a Keras 3 or tf.keras config dict or an object already parsed (see module docs)."""
        if identifier is None and self.optional:
            return None
        if isinstance(identifier, self.base):
            return identifier
        if isinstance(identifier, str) and identifier in self.names:
            cls, config = self.names[identifier], {}
        elif isinstance(identifier, dict):
            cls, config = self._parse_dict(identifier, field)
        else:
            raise SpecError(field, identifier, self.allowed)
        try:
            return cls(**config)
        except SpecError as e:
            raise SpecError(f"{field}.{e.field}", e.value, e.allowed) from None

    def _parse_dict(self, identifier, field):
        for key in identifier:
            if key not in self._DICT_KEYS:
                raise SpecError(field, key, f"a Keras config dict has only the keys {list(self._DICT_KEYS)}")
        class_name, config = identifier.get("class_name"), identifier.get("config")
        if not isinstance(class_name, str) or class_name not in self.names:
            raise SpecError(f"{field}.class_name", class_name, f"one of {sorted(self.names)}")
        if not isinstance(config, dict):
            raise SpecError(f"{field}.config", config, "a dict of constructor arguments")
        if identifier.get("module") not in (None, self.module):
            raise SpecError(f"{field}.module", identifier["module"], f"None or {self.module!r}")
        if identifier.get("registered_name") not in (None, class_name):
            raise SpecError(f"{field}.registered_name", identifier["registered_name"], f"None or {class_name!r}")
        cls = self.names[class_name]
        keys = [f.name for f in dataclasses.fields(cls) if f.init]
        for key in config:
            if key not in keys:
                raise SpecError(f"{field}.config", key, f"{class_name} takes only the keys {keys}")
        return cls, config
