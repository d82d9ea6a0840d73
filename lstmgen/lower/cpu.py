"""Lower a variant key into the context the CPU template fills in (plain frozen data)."""

from dataclasses import dataclass

from lstmgen.activations import ACTIVATIONS, SCALAR_HELPERS
from lstmgen.lower.plan import VariantKey
from lstmgen.version import GENERATOR_VERSION

TEMPLATE = "cpu/lstm.py.j2"


# Buffers a `<entry point>_into` function writes: scratch zx [N*T, 4H] and zh [N, 4H], then
# the results output, h and c. The runtime owns them; `<entry point>` allocates them.
BUFFERS = ("zx", "zh", "output", "h", "c")


@dataclass(frozen=True)
class EntryPoint:
    """One generated whole-sequence function: inference or training, with or without a mask."""

    name: str
    masked: bool
    training: bool
    params: tuple  # input argument names, in order; `_into` adds BUFFERS

    @property
    def into_params(self) -> tuple:
        return self.params + BUFFERS


# Where each `_into` argument keeps its batch rows, so that a caller can run parts of the batch
# separately: an axis, ZX_ROWS for zx (row n owns its T consecutive rows within the part), or
# None for weights, which every row shares.
ZX_ROWS = "zx rows"


def batch_axis(param: str, key: VariantKey):
    if param in ("kernel", "recurrent_kernel", "bias"):
        return None
    if param == "zx":
        return ZX_ROWS
    time_leading = key.time_major and (param == "x" or (param == "output" and key.return_sequences))
    return 1 if time_leading or param in ("input_masks", "recurrent_masks") else 0


@dataclass(frozen=True)
class TimeStep:
    position: int  # where the step's output goes (processing order)
    index: int  # which input step it reads


@dataclass(frozen=True)
class CommonContext:
    """The fields every target's template takes (see common_fields)."""

    generator_version: str
    template: str
    spec_json: str
    spec_literal: str  # spec_json as a Python string literal
    spec_hash: str
    dtype: str
    units: int
    gates: int
    input_dim: int
    activation_source: str
    recurrent_activation_source: str
    helpers: tuple  # (name, body lines) of the scalar helpers the activations use
    use_bias: bool
    time_major: bool
    go_backwards: bool
    return_sequences: bool
    zero_output_for_mask: bool
    timesteps_literal: str
    input_mask_count: int
    recurrent_mask_count: int


@dataclass(frozen=True)
class CpuContext(CommonContext):
    unrolled_steps: tuple  # TimeStep per step when unrolled, else empty
    entry_points: tuple
    step_params: str
    step_masked_params: str
    blas: str  # "mkl" or "numpy" (lower.plan.BLAS_CHOICES)
    mkl_prefix: str  # "s" or "d": MKL's name letter for the dtype (cblas_sgemm, cblas_dgemm)


def weight_params(key: VariantKey) -> tuple:
    return ("kernel", "recurrent_kernel") + (("bias",) if key.use_bias else ())


def entry_points(key: VariantKey) -> tuple:
    trainable = key.input_mask_count or key.recurrent_mask_count
    points = []
    for training in (False, True) if trainable else (False,):
        for masked in (False, True):
            name = "forward" + ("_train" if training else "") + ("_masked" if masked else "")
            params = ("x",) + weight_params(key) + ("h0", "c0") + (("mask",) if masked else ())
            if training:
                params += (("input_masks",) if key.input_mask_count else ())
                params += (("recurrent_masks",) if key.recurrent_mask_count else ())
            points.append(EntryPoint(name, masked, training, params))
    return tuple(points)


def activation_source(name: str, dtype: str) -> str:
    """float32 code uses the vectorizable approximation where the registry has one."""
    activation = ACTIVATIONS[name]
    if dtype == "float32" and activation.fast_float32_source:
        return activation.fast_float32_source
    return activation.scalar_source


def common_fields(key: VariantKey, template: str) -> dict:
    """The context fields every target's template takes: header, sizes, activations, flags."""
    sources = [activation_source(key.activation, key.dtype),
               activation_source(key.recurrent_activation, key.dtype)]
    helpers = tuple((name, body) for name, body in sorted(SCALAR_HELPERS.items())
                    if any(name + "(" in s for s in sources))
    return dict(
        generator_version=GENERATOR_VERSION,
        template=template,
        spec_json=key.to_json(),
        spec_literal=repr(key.to_json()),
        spec_hash=key.hash,
        dtype=key.dtype,
        units=key.units,
        gates=4 * key.units,
        input_dim=key.input_dim,
        activation_source=sources[0],
        recurrent_activation_source=sources[1],
        helpers=helpers,
        use_bias=key.use_bias,
        time_major=key.time_major,
        go_backwards=key.go_backwards,
        return_sequences=key.return_sequences,
        zero_output_for_mask=key.zero_output_for_mask,
        timesteps_literal=repr(key.unrolled_timesteps),
        input_mask_count=key.input_mask_count,
        recurrent_mask_count=key.recurrent_mask_count,
    )


def lower(key: VariantKey) -> CpuContext:
    steps = ()
    if key.unrolled_timesteps is not None:
        t = key.unrolled_timesteps
        steps = tuple(TimeStep(s, t - 1 - s if key.go_backwards else s) for s in range(t))
    step_params = ("x_t", "h", "c") + weight_params(key)
    return CpuContext(
        **common_fields(key, TEMPLATE),
        unrolled_steps=steps,
        entry_points=entry_points(key),
        step_params=", ".join(step_params),
        step_masked_params=", ".join(step_params + ("mask_t",)),
        blas=key.blas,
        mkl_prefix={"float32": "s", "float64": "d"}[key.dtype],
    )
