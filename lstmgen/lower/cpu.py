"""Lower a variant key into the context the CPU template fills in (plain frozen data)."""

import re
from dataclasses import dataclass
from typing import NamedTuple

from lstmgen.activations import FLOAT32_CONSTANTS, SCALAR_HELPERS, source, written_out
from lstmgen.lower.plan import VariantKey
from lstmgen.spec import weight_names, weight_shape
from lstmgen.version import GENERATOR_VERSION

TEMPLATE = "cpu/lstm.py.j2"


# Buffers a `<entry point>_into` function writes: scratch zx [N*T, 4H] (zx_step [N, 4H] when it
# projects step by step) and zh [N, 4H], then the results output, h and c. The runtime owns them;
# `<entry point>` allocates them.
BUFFERS = ("zx", "zh", "output", "h", "c")


@dataclass(frozen=True)
class EntryPoint:
    """One generated whole-sequence function: inference or training, with or without a mask;
    `stepwise`: the input projection of each step right before the step, not of all steps first."""

    name: str
    masked: bool
    training: bool
    params: tuple  # input argument names, in order; `_into` adds BUFFERS
    stepwise: bool = False

    @property
    def into_params(self) -> tuple:
        return self.params + (("zx_step",) + BUFFERS[1:] if self.stepwise else BUFFERS)


# Where each `_into` argument keeps its batch rows, so that a caller can run parts of the batch
# separately: an axis, ZX_ROWS for zx (row n owns its T consecutive rows within the part), or
# None for weights, which every row shares.
ZX_ROWS = "zx rows"


def batch_axis(param: str, key: VariantKey):
    if param in weight_params(key):
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
    output_activation_source: str  # "" when h uses `activation` (Keras's cell)
    helpers: tuple  # (name, body lines) of the scalar helpers the activations use
    constants: tuple  # (name, definition) of the float32 constants they name
    weights_literal: str  # weight_shapes as a Python literal: the module's WEIGHTS
    use_bias: bool
    # The cell options (lstmgen.spec.CELL_OPTIONS) but proj_size, which only the CPU template computes.
    use_recurrent_bias: bool
    use_peepholes: bool
    clip_literal: str  # the bound as a float literal, "" without clip
    input_forget: bool
    cell_args: str  # ", name" for each weight the cell reads besides the GEMMs' (recurrent_bias, ...)
    time_major: bool
    go_backwards: bool
    return_sequences: bool
    zero_output_for_mask: bool
    timesteps_literal: str
    input_mask_count: int
    recurrent_mask_count: int


@dataclass(frozen=True)
class CpuContext(CommonContext):
    proj_size: int
    output_units: str  # the width of h and the output: "UNITS", or "PROJ_SIZE" with a projection
    gate_lines: "GateLines"  # gate_activations(key)
    unrolled_steps: tuple  # TimeStep per step when unrolled, else empty
    entry_points: tuple
    step_params: str
    step_masked_params: str
    blas: str  # "mkl" or "numpy" (lower.plan.BLAS_CHOICES)
    mkl_prefix: str  # "s" or "d": MKL's name letter for the dtype (cblas_sgemm, cblas_dgemm)
    # (entry point name, native_shapes, native_scratch, native_arguments) of those with a native twin
    native: tuple
    padding_scratch: str  # PADDING_SCRATCH
    blocked_product: bool  # blocked_product(key)
    blocked_projection: bool  # blocked_projection(key)
    panel_columns: int  # PANEL_COLUMNS
    masked_by_step: bool  # masked_by_step(key)
    project_used: bool  # whether an entry calls _project_used (projects_used_steps)
    unit_split: bool  # unit_split(key) and native_forward_units_into generated


def weight_params(key: VariantKey) -> tuple:
    return weight_names(key.use_bias, key.use_recurrent_bias, key.use_peepholes, key.proj_size)


def weight_shapes(key: VariantKey) -> tuple:
    """(name, shape) of each weight argument, in the order every generated function takes them."""
    return tuple((name, weight_shape(name, key.input_dim, key.units, key.proj_size))
                 for name in weight_params(key))


def cell_weights(key: VariantKey) -> tuple:
    """The weights the cell reads besides the GEMMs' (kernel, recurrent_kernel, bias)."""
    return tuple(w for w in weight_params(key) if w not in ("kernel", "recurrent_kernel", "bias"))


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


def cpu_entry_points(key: VariantKey) -> tuple:
    """entry_points, plus `forward_stepwise` where the steps run in a loop (not unrolled)."""
    points = entry_points(key)
    if key.unrolled_timesteps is not None:
        return points
    return points + (EntryPoint("forward_stepwise", False, False, points[0].params, stepwise=True),)


# The entry points with a native twin (lstmgen.native), `native_<name>_into`, and the scratch
# each takes from its caller (native_scratch). It takes one pointer, to int64 arguments
# (native_arguments): the addresses of the `_into` function's arrays (native_shapes), then of each
# scratch buffer, then n_batch and n_time, then the size in bytes of each packed_* buffer (a
# matrix packed by MKL for n_batch rows, 64-byte aligned). index: intp [PADDING_SCRATCH];
# h_active: [N, H]; x_active: [N, C] (a masked call of a variant that projects in panels: the
# step's rows); all in the variant's dtype. Not scratch but weights: blocked_recurrent_kernel
# and blocked_kernel (native_scratch), the recurrent kernel and the kernel (starting from the
# bias) in blocked_product's panels [ceil(4H / 64), H + 1, 64] and [ceil(4H / 64), C + 1, 64],
# 64-byte aligned, laid out by the caller once per weights (lstmgen.native.to_panels).
# forward_units (unit_split) is forward_into run by two threads at once, each on its part of the
# units and told which (`part`, its last argument), sharing its scratch: h_steps [2, N, H] (the
# steps' h), flags: int64 [16], zeros (each thread's count of phases run, on a cache line of its
# own).
NATIVE_SCRATCH = {"forward": ("packed_recurrent_kernel",),
                  "forward_masked": ("packed_recurrent_kernel", "index", "h_active"),
                  "forward_stepwise": ("packed_recurrent_kernel", "packed_kernel"),
                  "forward_units": ("packed_recurrent_kernel", "h_steps", "flags")}
PADDING_SCRATCH = "4 * n_batch + 2 * n_time + 1"  # a masked call's intp scratch (rows and steps)
# The element type of the native arguments that do not point to the variant's dtype.
NATIVE_POINTEES = {"mask": "np.bool_", "index": "np.intp", "packed_recurrent_kernel": "np.uint8",
                   "packed_kernel": "np.uint8", "flags": "np.int64"}

# The recurrent product runs in register-blocked code of the module's own instead of a BLAS call
# where its weights are float32 and small enough that a panel of 64 of their columns stays in L1:
# at 1-32 rows 14-50% faster than MKL's packed product for H = 32..128; at H = 256 10% slower from
# 8 rows (benchmarks/recurrent_product.py; BENCHMARKS.md), on an Intel CPU. At any size where the
# key says blocked_any_size (lstmgen.blas.blocked_any_size: MKL has no AVX-512 code for the CPU).
# Panels are PANEL_COLUMNS columns, the last one padded where 4H is not whole panels.
BLOCKED_PRODUCT_MAX_WEIGHT_BYTES = 256 * 1024
PANEL_COLUMNS = 64


def blocked_product(key: VariantKey) -> bool:
    if key.dtype != "float32" or key.proj_size:
        return False
    recurrent_kernel_bytes = key.units * 4 * key.units * 4  # [H, 4H] float32
    return key.blocked_any_size or recurrent_kernel_bytes <= BLOCKED_PRODUCT_MAX_WEIGHT_BYTES


# Two threads on one sequence (unit_split) wait for each other once or twice a step; from this
# many units their halves of the step's work save more. Layer calls of one row, 1000 steps, one
# thread / two (BENCHMARKS.md, session 15): H = 32 0.26-0.31 / 0.32-0.48 ms, 48 0.59-0.71 /
# 0.59-0.67, 64 1.09-1.24 / 0.81-0.94, 100 2.41-3.03 / 2.08-2.11, 200 8.7-10.2 / 5.6-6.2.
MIN_SPLIT_UNITS = 64


def unit_split(key: VariantKey) -> bool:
    """Whether the variant has forward_units (NATIVE_SCRATCH), for two threads on one call whose
    batch is not split (a batch of 1): both products in the blocked product, and units enough
    that a step's product outweighs the threads' waits for each other (MIN_SPLIT_UNITS)."""
    return blocked_projection(key) and key.units >= MIN_SPLIT_UNITS


def blocked_projection(key: VariantKey) -> bool:
    """Whether x·kernel + bias runs in the same code (where the whole sequence is projected at
    once): in variants that run the recurrent product so, where the kernel's panels are no
    larger than the recurrent kernel's (C <= H). Measured: BENCHMARKS.md, session 10."""
    return blocked_product(key) and key.input_dim <= key.units


def masked_by_step(key: VariantKey) -> bool:
    """Whether masked inference calls project each step's used rows right before the step
    (gathered into x_active), not every step first: where they project in panels and run the
    steps in a loop. Measured on the unmasked calls: BENCHMARKS.md, session 13."""
    return blocked_projection(key) and key.unrolled_timesteps is None


def projects_used_steps(key: VariantKey) -> bool:
    """Whether an entry projects every row's used steps first (_project_used): batch-major
    masked ones, but those that project by step (masked_by_step: inference) or drop inputs."""
    return not key.time_major and any(
        e.masked and not (masked_by_step(key) and not e.training)
        and not (e.training and key.input_mask_count) for e in cpu_entry_points(key))


def native_scratch(key: VariantKey, entry_name: str) -> tuple:
    """NATIVE_SCRATCH of the entry, with the recurrent kernel in panels, blocked_recurrent_kernel,
    instead of packed by MKL where the variant runs the product itself (blocked_product), and
    the kernel in blocked_kernel where it projects so (blocked_projection), also step by step."""
    scratch = NATIVE_SCRATCH[entry_name]
    if not blocked_product(key):
        return scratch
    scratch = tuple("blocked_recurrent_kernel" if name == "packed_recurrent_kernel" else name
                    for name in scratch)
    if blocked_projection(key):
        scratch = tuple(name for name in scratch if name != "packed_kernel") + ("blocked_kernel",)
        if entry_name == "forward_masked" and masked_by_step(key):  # each step's rows: x_active
            scratch += ("x_active",)
    return scratch


def native_arguments(key: VariantKey, entry_name: str) -> tuple:
    """(name, element type or None) of each of `native_<entry_name>_into`'s int64 arguments, in
    order (see NATIVE_SCRATCH): an array's or scratch buffer's address and what it holds, then
    the sizes (None)."""
    scratch = native_scratch(key, entry_name)
    pointers = (*(param for param, _ in native_shapes(key, entry_name)), *scratch)
    sizes = ("n_batch", "n_time", *(f"{name}_size" for name in scratch if name.startswith("packed")),
             *(("part",) if entry_name == "forward_units" else ()))
    return (*((name, NATIVE_POINTEES.get(name, "DTYPE")) for name in pointers),
            *((name, None) for name in sizes))


def calls_numpy_blas(key: VariantKey, entry_name: str) -> bool:
    """Whether the entry's code calls NumPy's BLAS (np.dot): in NumPy-BLAS variants every entry
    but the inference ones where both products run in the blocked product (blocked_projection;
    training-mode dropout multiplies through np.dot)."""
    return key.blas == "numpy" and not (blocked_projection(key) and entry_name in
                                        ("forward", "forward_masked", "forward_stepwise",
                                         "forward_units"))


def native_shapes(key: VariantKey, entry_name: str) -> tuple:
    """(param, shape expression) of each array `native_<entry_name>_into` views through a
    pointer, in `<entry_name>_into`'s order; empty where the variant has no such twin. Only code
    that calls MKL or no BLAS at all can have one (NumPy's BLAS is reached through Numba's
    runtime): MKL variants, and NumPy-BLAS ones whose products both run in the blocked product
    (blocked_projection). Not unrolled or projected code either (both reshape arrays, which may
    raise: a native library must not need Numba's runtime)."""
    if (entry_name not in NATIVE_SCRATCH or calls_numpy_blas(key, entry_name)
            or key.unrolled_timesteps is not None or key.proj_size
            or (entry_name == "forward_units" and not unit_split(key))):
        return ()
    steps = "(n_time, n_batch" if key.time_major else "(n_batch, n_time"
    output = steps + ", UNITS)" if key.return_sequences else "(n_batch, UNITS)"
    entry = next(e for e in cpu_entry_points(key) if e.name == entry_name.replace("_units", ""))
    # x as zx's rows (its steps and rows in memory order), except where the code reads x by
    # step (step by step, and masked calls projecting in panels: they gather each step's rows)
    # or by row (a batch-major masked call projects each row's used steps).
    whole = entry.stepwise or (entry.masked and (not key.time_major or masked_by_step(key)))
    shapes = {"x": steps + ", INPUT_DIM)" if whole else "(n_batch * n_time, INPUT_DIM)",
              **{name: repr(shape) for name, shape in weight_shapes(key)},
              "h0": "(n_batch, UNITS)", "c0": "(n_batch, UNITS)", "mask": "(n_batch, n_time)",
              "zx": "(n_batch * n_time, GATES)", "zx_step": "(n_batch, GATES)",
              "zh": "(n_batch, GATES)", "output": output, "h": "(n_batch, UNITS)",
              "c": "(n_batch, UNITS)"}
    return tuple((param, shapes[param]) for param in entry.into_params)


def activation_source(value, dtype: str) -> str:
    """Code uses the vectorizable approximation for its dtype where the registry has one."""
    return source(value, dtype)


def helpers_used(sources: list) -> set:
    """The SCALAR_HELPERS that the sources call, and those that those call."""
    used, pending = set(), list(sources)
    while pending:
        text = pending.pop()
        for name, body in SCALAR_HELPERS.items():
            if name not in used and name + "(" in text:
                used.add(name)
                pending.extend(body)
    return used


def constants_used(sources: list) -> tuple:
    """(name, definition) of the FLOAT32_CONSTANTS that the sources or their helpers name."""
    texts = [*sources, *(line for name in helpers_used(sources) for line in SCALAR_HELPERS[name])]
    return tuple((name, f"np.float32({value!r})") for name, value in FLOAT32_CONSTANTS.items()
                 if any(re.search(rf"\b{name}\b", text) for text in texts))


def activation_sources(key: VariantKey) -> tuple:
    """The source of the variant's activation, recurrent_activation and output_activation ("" when
    h takes `activation`, as in Keras's cell)."""
    return (activation_source(key.activation, key.dtype),
            activation_source(key.recurrent_activation, key.dtype),
            activation_source(key.output_activation, key.dtype) if key.output_activation else "")


def common_fields(key: VariantKey, template: str) -> dict:
    """The context fields every target's template takes: header, sizes, activations, flags."""
    sources = activation_sources(key)
    helpers = tuple((name, SCALAR_HELPERS[name]) for name in sorted(helpers_used(sources)))
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
        output_activation_source=sources[2],
        helpers=helpers,
        constants=constants_used(sources),
        weights_literal=repr(weight_shapes(key)),
        use_bias=key.use_bias,
        use_recurrent_bias=key.use_recurrent_bias,
        use_peepholes=key.use_peepholes,
        clip_literal="" if key.clip is None else repr(key.clip),
        input_forget=key.input_forget,
        cell_args="".join(f", {w}" for w in cell_weights(key)),
        time_major=key.time_major,
        go_backwards=key.go_backwards,
        return_sequences=key.return_sequences,
        zero_output_for_mask=key.zero_output_for_mask,
        timesteps_literal=repr(key.unrolled_timesteps),
        input_mask_count=key.input_mask_count,
        recurrent_mask_count=key.recurrent_mask_count,
    )


# Where each gate's peephole weights start within `peephole` [3H] (i, f, o), and which cell state
# it reads: the previous one (c_t[j], not yet overwritten) or the new one (c_new).
_PEEPHOLES = {"i": ("", "c_t[j]"), "f": ("UNITS + ", "c_t[j]"), "o": ("2 * UNITS + ", "c_new")}


def gate_inputs(key: VariantKey) -> tuple:
    """Python expressions of unit j's four pre-activations in `_gates` (zx_t, zh_t: its row)."""
    out = []
    for gate, offset in zip("ifco", ("", "UNITS + ", "2 * UNITS + ", "3 * UNITS + ")):
        recurrent = f"zh_t[{offset}j]"
        if key.use_recurrent_bias:  # bias_hh joins h·R before x·W's sum, as PyTorch and ONNX add them
            recurrent = f"({recurrent} + recurrent_bias[{offset}j])"
        expression = f"zx_t[{offset}j] + {recurrent}"
        if key.use_peepholes and gate in _PEEPHOLES:
            start, cell = _PEEPHOLES[gate]
            expression += f" + peephole[{start}j] * {cell}"
        out.append(f"_clip({expression})" if key.clip is not None else expression)
    return tuple(out)


class GateLines(NamedTuple):
    """Lines of `_gates`' loop body setting i, f, g, o and h_act (the new cell state's activation)
    for unit j of a row."""

    i: tuple
    f: tuple
    g: tuple
    o: tuple
    h: tuple


def gate_activations(key: VariantKey) -> GateLines:
    """The activations of `_gates`, written out (activations.written_out)."""
    activation, recurrent, output = activation_sources(key)
    output = output or activation
    z_i, z_f, z_c, z_o = gate_inputs(key)
    return GateLines(written_out(recurrent, "i", z_i, "i"), written_out(recurrent, "f", z_f, "f"),
                     written_out(activation, "g", z_c, "g"), written_out(recurrent, "o", z_o, "o"),
                     written_out(output, "h_act", "c_new", "h"))


def lower(key: VariantKey) -> CpuContext:
    steps = ()
    if key.unrolled_timesteps is not None:
        t = key.unrolled_timesteps
        steps = tuple(TimeStep(s, t - 1 - s if key.go_backwards else s) for s in range(t))
    step_params = ("x_t", "h", "c") + weight_params(key)
    return CpuContext(
        **common_fields(key, TEMPLATE),
        proj_size=key.proj_size,
        output_units="PROJ_SIZE" if key.proj_size else "UNITS",
        gate_lines=gate_activations(key),
        unrolled_steps=steps,
        entry_points=cpu_entry_points(key),
        step_params=", ".join(step_params),
        step_masked_params=", ".join(step_params + ("mask_t",)),
        blas=key.blas,
        mkl_prefix={"float32": "s", "float64": "d"}[key.dtype],
        native=tuple((name, native_shapes(key, name), native_scratch(key, name),
                      native_arguments(key, name))
                     for name in NATIVE_SCRATCH if native_shapes(key, name)),
        padding_scratch=PADDING_SCRATCH,
        blocked_product=blocked_product(key),
        blocked_projection=blocked_projection(key),
        panel_columns=PANEL_COLUMNS,
        masked_by_step=masked_by_step(key),
        project_used=projects_used_steps(key),
        unit_split=bool(native_shapes(key, "forward_units")),
    )
