"""Lower a variant key into the context the CUDA template fills in, and pick a recurrence strategy.

Two recurrence strategies share one generated module (Numba compiles only what is launched):
  persistent  one cooperative launch for the whole sequence; block b keeps the recurrent weights
              of units [b*SLICE_UNITS, (b+1)*SLICE_UNITS) in shared memory across time steps and
              the grid meets at a barrier after every step. For small batches (the published
              persistent-RNN result: a GEMM per step is latency-bound there).
  per_step    one fused recurrent-GEMM + gates kernel launch per time step, for large batches.
"""

from dataclasses import dataclass

from lstmgen.lower.cpu import CommonContext, cell_weights, common_fields, entry_points, weight_params
from lstmgen.lower.plan import VariantKey

TEMPLATE = "cuda/lstm.py.j2"

# Square thread block and shared-memory tile of the projection and per-step GEMM kernels.
TILE = 16
PERSISTENT_THREADS = 128
# The persistent kernel sizes its shared memory for at most this many rows (batch entries).
PERSISTENT_MAX_BATCH = 8
# Launch bounds: registers for this many resident blocks per SM (<= 170 each). ptxas needs up to
# 146 for the float32 kernels without spilling (it spills at 128, i.e. 4 blocks per SM).
PERSISTENT_MIN_BLOCKS = 3
# Bytes of static shared memory a block's weight slice may take: Numba only declares static
# shared arrays, which CUDA caps at 48 KiB per block; the rest holds the partial sums.
WEIGHT_SLICE_BYTES = 40 * 1024
ITEMSIZE = {"float32": 4, "float64": 8}

# Buffers an `<entry point>_into` function writes: scratch zx [N*T, 4H] and hbuf [2, N, H]
# (h of the previous and the current step), then the results output, h and c.
BUFFERS = ("zx", "hbuf", "output", "h", "c")


def slice_units(units: int, dtype: str) -> int:
    """Units per persistent block: every (row, gate, unit) dot product of the slice gets at least
    one thread at the largest batch, and the slice's weights [4*S, H] fit the shared budget."""
    by_threads = PERSISTENT_THREADS // (4 * PERSISTENT_MAX_BATCH)
    by_memory = WEIGHT_SLICE_BYTES // (4 * units * ITEMSIZE[dtype])
    return min(by_threads, by_memory, units)


@dataclass(frozen=True)
class Strategy:
    name: str  # "persistent" or "per_step"
    reason: str


def choose_strategy(key: VariantKey, n_batch: int) -> Strategy:
    """The recurrence strategy for a call with `n_batch` rows (the runtime then checks that a
    persistent grid of SLICES blocks can be co-resident on its GPU)."""
    units = slice_units(key.units, key.dtype)
    if units == 0:
        return Strategy("per_step", f"units={key.units}: one unit's {key.dtype} recurrent weights "
                                    f"do not fit a block's {WEIGHT_SLICE_BYTES} B of shared memory")
    if n_batch > PERSISTENT_MAX_BATCH:
        return Strategy("per_step", f"batch {n_batch} > {PERSISTENT_MAX_BATCH}: a recurrent GEMM "
                                    "per step has enough rows to fill the GPU")
    return Strategy("persistent", f"batch {n_batch} <= {PERSISTENT_MAX_BATCH}: weights stay in "
                                  f"shared memory, {_ceil(key.units, units)} blocks, a grid barrier per step")


def strategy_rule() -> str:
    """The rule choose_strategy applies, in one line (for explain())."""
    return (f"persistent kernel for batch <= {PERSISTENT_MAX_BATCH} when its blocks fit on the GPU, "
            "one fused kernel per time step otherwise")


@dataclass(frozen=True)
class CudaEntryPoint:
    """A host function launching one whole-sequence variant, and its two recurrence kernels."""

    name: str
    masked: bool
    training: bool
    params: tuple  # input arguments, in order
    into_params: tuple  # params + BUFFERS
    dropped_input: bool  # the projection multiplies x by the input dropout masks
    dropped_recurrent: bool  # the recurrence multiplies h by the recurrent dropout masks
    recurrence_args: tuple  # arguments both recurrence kernels take after their own
    update_args: tuple  # the part of them the per-element update takes


@dataclass(frozen=True)
class Kernel:
    """A kernel's (or exposed device function's) name and Numba argument types, for compile_ptx."""

    name: str
    types: tuple
    device: bool = False


@dataclass(frozen=True)
class CudaContext(CommonContext):
    cell_params: str  # `cell`'s parameters after z_i, z_f, z_c, z_o, c: ", p_i, p_f, p_o" (peepholes)
    cell_inputs: tuple  # the activations' arguments in `cell`: gates i, f, c, o
    cell_weights: str  # the arguments for cell_params, for unit j
    h_activation: str  # the function applied to the new cell state
    step_sums: tuple  # the initial sums of `step`'s four gates (biases)
    update_inputs: tuple  # `_update`'s four pre-activations (recurrent sums a_*, zx, recurrent bias)
    input_mask_gate: str  # which input mask a projection block of gate `gate` uses
    tile: int
    persistent_threads: int
    persistent_max_batch: int
    persistent_min_blocks: int
    persistent: bool  # a unit's weights fit a block: the persistent kernels exist
    slice_units: int
    slices: int
    entry_points: tuple
    step_params: str
    step_masked_params: str
    kernels: tuple


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _array_type(dtype: str, ndim: int) -> str:
    return f"numba.{dtype}[{', '.join([':'] * (ndim - 1) + ['::1'])}]"


def _types(key: VariantKey, params: tuple) -> tuple:
    """Numba types of kernel parameters: every array C-contiguous, as the host functions pass them."""
    dims = {"x": 2, "kernel": 2, "recurrent_kernel": 2, "bias": 1, "recurrent_bias": 1,
            "peephole": 1, "zx": 2, "hbuf": 3, "h0": 2,
            "c0": 2, "h_in": 2, "h_out": 2, "h": 2, "c": 2, "input_masks": 3, "recurrent_masks": 3,
            "x_t": 2, "mask": 2, "mask_t": 1, "output": 3 if key.return_sequences else 2}
    types = []
    for p in params:
        if p in ("mask", "mask_t"):
            types.append(_array_type("boolean", dims[p]))
        elif p in dims:
            types.append(_array_type(key.dtype, dims[p]))
        else:
            types.append("numba.int64")
    return tuple(types)


def cuda_entry_points(key: VariantKey) -> tuple:
    out = []
    for ep in entry_points(key):
        recurrent = ep.training and key.recurrent_mask_count > 0
        update = ("c", "output") + cell_weights(key) + (("mask",) if ep.masked else ())
        out.append(CudaEntryPoint(ep.name, ep.masked, ep.training, ep.params, ep.params + BUFFERS,
                                  ep.training and key.input_mask_count > 0, recurrent,
                                  update + (("recurrent_masks",) if recurrent else ()), update))
    return tuple(out)


def _kernels(key: VariantKey, points: tuple, persistent: bool, step_params: tuple) -> tuple:
    bias = ("bias",) if key.use_bias else ()
    kernels = [Kernel("step", _types(key, step_params), device=True),
               Kernel("step_masked", _types(key, step_params + ("mask_t",)), device=True),
               Kernel("_init", _types(key, ("h0", "c0", "hbuf", "c", "output"))),
               Kernel("_copy", _types(key, ("h_in", "h"))),
               Kernel("_project", _types(key, ("x", "kernel") + bias + ("zx", "n_batch")))]
    if key.input_mask_count:
        kernels.append(Kernel("_project_dropped", _types(
            key, ("x", "kernel") + bias + ("input_masks", "zx", "n_batch"))))
    for ep in points:
        kernels.append(Kernel(f"_per_step_{ep.name}", _types(
            key, ("s", "zx", "recurrent_kernel", "hbuf") + ep.recurrence_args)))
        if persistent:
            kernels.append(Kernel(f"_persistent_{ep.name}", _types(
                key, ("zx", "recurrent_kernel", "hbuf") + ep.recurrence_args)))
    return tuple(kernels)


_GATE_OFFSETS = ("", "UNITS + ", "2 * UNITS + ", "3 * UNITS + ")


def _cell_fields(key: VariantKey) -> dict:
    """The expressions of `cell`, `step` and `_update` for the cell options (see CudaContext)."""
    inputs = ["z_i", "z_f", "z_c", "z_o"]
    if key.use_peepholes:  # i and f read the previous cell state, o the new one
        inputs = ["z_i + p_i * c", "z_f + p_f * c", "z_c", "z_o + p_o * c_new"]
    if key.clip is not None:
        inputs = [f"_clip({z})" for z in inputs]
    sums = [f"bias[{o}j]" if key.use_bias else "ZERO" for o in _GATE_OFFSETS]
    update = [f"a_{g} + zx[row, {o}j]" for g, o in zip("ifco", _GATE_OFFSETS)]
    if key.use_recurrent_bias:
        sums = [f"{b} + recurrent_bias[{o}j]" for b, o in zip(sums, _GATE_OFFSETS)]
        update = [f"(a_{g} + recurrent_bias[{o}j]) + zx[row, {o}j]" for g, o in zip("ifco", _GATE_OFFSETS)]
    peepholes = key.use_peepholes
    return dict(
        cell_params=", p_i, p_f, p_o" if peepholes else "",
        cell_inputs=tuple(inputs),
        cell_weights=", peephole[j], peephole[UNITS + j], peephole[2 * UNITS + j]" if peepholes else "",
        step_sums=tuple(sums),
        update_inputs=tuple(update),
    )


def lower(key: VariantKey) -> CudaContext:
    step_params = ("n", "j", "x_t", "h", "c") + weight_params(key) + ("h_out",)
    units = slice_units(key.units, key.dtype)
    points = cuda_entry_points(key)
    return CudaContext(
        **common_fields(key, TEMPLATE),
        **_cell_fields(key),
        input_mask_gate="gate" if key.input_mask_count == 4 else "0",
        h_activation="output_activation" if key.output_activation else "activation",
        persistent=units > 0,
        tile=TILE,
        persistent_threads=PERSISTENT_THREADS,
        persistent_max_batch=PERSISTENT_MAX_BATCH,
        persistent_min_blocks=PERSISTENT_MIN_BLOCKS,
        slice_units=units,
        slices=_ceil(key.units, units) if units else 0,
        entry_points=points,
        step_params=", ".join(step_params),
        step_masked_params=", ".join(step_params + ("mask_t",)),
        kernels=_kernels(key, points, units > 0, step_params),
    )
