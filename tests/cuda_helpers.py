"""Shared by the CUDA tests: fresh imports of generated CUDA modules, and spreads of variants."""

from lstmgen.cache import import_module
from lstmgen.lower.plan import VariantKey
from lstmgen.render import generate
from lstmgen.spec import LSTMSpec


def cuda_key(units=3, input_dim=2, **kwargs) -> VariantKey:
    return VariantKey.from_spec(LSTMSpec(units, input_dim=input_dim, **kwargs), "cuda")


def fresh_module(key: VariantKey, directory):
    """A new module object (new dispatchers, nothing compiled yet) for `key`."""
    return import_module(generate(key, directory))
