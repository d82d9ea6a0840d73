"""Which code a spec needs: the variant key, and which target runs it and why."""

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

from lstmgen.activations import Parametrized
from lstmgen.spec import CELL_OPTIONS, LSTMSpec

# Every target lstmgen knows, and those this build can run, best first. cudnn generates no
# module: a layer drives cuDNN at run time, where a GPU and cuDNN 9 are found.
KNOWN_TARGETS = ("cpu", "cuda", "cudnn")
TARGETS = ("cudnn", "cuda", "cpu")
REQUESTABLE = ("auto",) + KNOWN_TARGETS
DEVICE_TARGETS = ("cuda", "cudnn")
# Why each device target cannot run in this process, for callers that did not look (lowering
# does no I/O): "auto" then picks neither. A layer and `lstmgen explain` look (lstmgen/devices.py).
NOT_PROBED = {target: "not looked for: only a layer (or `lstmgen explain`) looks for a GPU"
              for target in DEVICE_TARGETS}
# The BLAS generated CPU code calls (lstmgen/blas.py says which one a layer takes).
BLAS_CHOICES = ("mkl", "numpy")


# Key fields left out of its JSON at these values, so that the variants that were named before
# them keep their names.
_LEFT_OUT_AT = {**CELL_OPTIONS, "blocked_any_size": False}


@dataclass(frozen=True)
class VariantKey:
    """The spec fields that change generated code, plus target and dtype.

    It names the generated file, its functions and its cache entry; specs that differ only
    in initializers, regularizers, constraints, rates' values or statefulness share it.
    """

    target: str
    dtype: str
    units: int
    input_dim: int
    activation: str
    recurrent_activation: str
    use_bias: bool
    go_backwards: bool
    return_sequences: bool
    time_major: bool
    zero_output_for_mask: bool
    # The sequence length baked into straight-line code, or None for a loop.
    unrolled_timesteps: Optional[int]
    # Training-mode dropout masks per call: 0 (none), 1, or 4 (one per gate).
    input_mask_count: int
    recurrent_mask_count: int
    # The BLAS the cpu target's code calls (one of BLAS_CHOICES); None for the other targets.
    blas: Optional[str]
    # The cell options (lstmgen.spec.CELL_OPTIONS), with the same defaults: left out of the JSON
    # at their defaults, so Keras-like variants keep their names.
    output_activation: object = None
    use_recurrent_bias: bool = False
    use_peepholes: bool = False
    clip: Optional[float] = None
    input_forget: bool = False
    proj_size: int = 0
    # The cpu target runs float32 products in the module's own code at any size
    # (lower.cpu.blocked_product), not only where the weights are small: where MKL has no
    # AVX-512 code for the CPU (lstmgen.blas.blocked_any_size). Left out of the JSON when False.
    blocked_any_size: bool = False

    @classmethod
    def from_spec(cls, spec: LSTMSpec, target: str, blas: str = "numpy",
                  blocked_any_size: bool = False) -> "VariantKey":
        if spec.input_dim is None:
            raise ValueError(f"input_dim is unknown for {spec!r}: generating code needs it "
                             "(build the layer, or set input_dim in the spec)")
        if spec.unroll and spec.timesteps is None:
            raise ValueError(f"unroll=True for {spec!r} needs timesteps to write straight-line code")
        if blas not in BLAS_CHOICES:
            raise ValueError(f"blas={blas!r}: must be one of {', '.join(BLAS_CHOICES)}")
        return cls(
            target=target,
            dtype=spec.dtype,
            units=spec.units,
            input_dim=spec.input_dim,
            activation=spec.activation,
            recurrent_activation=spec.recurrent_activation,
            use_bias=spec.use_bias,
            go_backwards=spec.go_backwards,
            return_sequences=spec.return_sequences,
            time_major=spec.time_major,
            zero_output_for_mask=spec.zero_output_for_mask,
            unrolled_timesteps=spec.timesteps if spec.unroll else None,
            input_mask_count=spec.dropout_mask_count if spec.dropout > 0 else 0,
            recurrent_mask_count=4 if spec.recurrent_dropout > 0 else 0,
            blas=blas if target == "cpu" else None,
            **{name: getattr(spec, name) for name in CELL_OPTIONS},
            blocked_any_size=blocked_any_size and target == "cpu",
        )

    def to_json(self) -> str:
        fields = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not (f.name in _LEFT_OUT_AT and value == _LEFT_OUT_AT[f.name]):
                fields[f.name] = value.to_dict() if isinstance(value, Parametrized) else value
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @property
    def module_name(self) -> str:
        short_dtype = {"float32": "f32", "float64": "f64"}[self.dtype]
        return f"lstm_{self.target}_{short_dtype}_h{self.units}_c{self.input_dim}_{self.hash[:12]}"


@dataclass(frozen=True)
class TargetChoice:
    target: str
    # One line per target considered: why it was taken or passed over.
    reasons: tuple


def cudnn_ineligible_reason(spec: LSTMSpec, mask=None) -> Optional[str]:
    """Why cuDNN cannot compute `spec` (on this call's `mask [N, T]`, when given), or None.

    The seed's rules (Keras's): tanh, sigmoid, no recurrent dropout, no unroll, a bias, and a
    mask strictly right-padded with no empty row; plus, as Keras 3 applies input dropout before
    cuDNN, input dropout only as the one mask that implementation=2 draws.
    """
    rules = (
        (spec.activation == "tanh", f"activation={spec.activation!r} (cuDNN computes tanh)"),
        (cell_options(spec) == "", f"{cell_options(spec)} (lstmgen's cuDNN path runs Keras's cell)"),
        (spec.recurrent_activation == "sigmoid",
         f"recurrent_activation={spec.recurrent_activation!r} (cuDNN computes sigmoid)"),
        (spec.recurrent_dropout == 0, f"recurrent_dropout={spec.recurrent_dropout} (must be 0)"),
        (not spec.unroll, "unroll=True"),
        (spec.use_bias, "use_bias=False"),
        (spec.dropout == 0 or spec.dropout_mask_count == 1,
         "dropout with implementation=1 draws one input mask per gate, which cuDNN cannot apply"),
    )
    for ok, why in rules:
        if not ok:
            return why
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        lengths = mask.sum(axis=1)
        if not np.array_equal(mask, np.arange(mask.shape[1]) < lengths[:, None]):
            return "the mask is not strictly right-padded"
        if (lengths == 0).any():
            return "the mask has a fully masked sample (cuDNN rejects empty sequences)"
    return None


def cell_options(spec: LSTMSpec) -> str:
    """The spec's cell options not at their Keras defaults, as `name=value, ...` ("" when none)."""
    return ", ".join(f"{name}={getattr(spec, name)!r}" for name, default in CELL_OPTIONS.items()
                     if getattr(spec, name) != default)


def cuda_uncovered_reason(spec: LSTMSpec) -> Optional[str]:
    """Why the CUDA templates do not cover `spec`, or None."""
    if spec.unroll:
        return "unroll=True asks for straight-line code, which only the cpu template writes"
    if spec.proj_size:
        return (f"proj_size={spec.proj_size}: the cuda template has no projection (a reduction "
                "over units every step); cpu has")
    return None


def unsupported_reason(target: str, spec: LSTMSpec, unavailable: Mapping = NOT_PROBED
                       ) -> Optional[str]:
    """Why `target` cannot run `spec`, or None when it can. Shared by choice, explain and tests.

    `unavailable` maps each device target to why this process cannot use it (no GPU, no library),
    or None where it can (or where code is only generated).
    """
    if target not in TARGETS:
        return f"target {target!r} is not available in this build (available: {', '.join(TARGETS)})"
    if target == "cudnn":
        return cudnn_ineligible_reason(spec) or unavailable["cudnn"]
    if target == "cuda":
        return cuda_uncovered_reason(spec) or unavailable["cuda"]
    return None


def is_supported(target: str, spec: LSTMSpec, unavailable: Mapping = NOT_PROBED) -> bool:
    return unsupported_reason(target, spec, unavailable) is None


def choose_target(spec: LSTMSpec, requested: str = "auto",
                  unavailable: Mapping = NOT_PROBED) -> TargetChoice:
    """The target that runs `spec`: the first of TARGETS that can ("auto"), or the requested one
    (ValueError when it cannot). Keras 3's use_cudnn: True demands cuDNN, False forbids it."""
    if requested not in REQUESTABLE:
        raise ValueError(f"target={requested!r}: must be one of {', '.join(REQUESTABLE)}")
    if spec.use_cudnn is True:
        if requested not in ("auto", "cudnn"):
            raise ValueError(f"use_cudnn=True for {spec!r} contradicts target={requested!r}")
        why_not = unsupported_reason("cudnn", spec, unavailable)
        if why_not is not None:
            raise ValueError(f"use_cudnn=True for {spec!r}, but cuDNN cannot run it: {why_not}; "
                             "pass use_cudnn='auto' to run on another target")
    if spec.use_cudnn is False and requested == "cudnn":
        raise ValueError(f"use_cudnn=False for {spec!r} contradicts target='cudnn'")
    if requested != "auto":
        why_not = unsupported_reason(requested, spec, unavailable)
        if why_not is not None:
            raise ValueError(f"target={requested!r} cannot run {spec!r}: {why_not}")
        return TargetChoice(requested, (f"{requested}: chosen, requested",))
    reasons = []
    for target in TARGETS:
        if target == "cudnn" and spec.use_cudnn is False:
            reasons.append("cudnn: use_cudnn=False")
            continue
        why_not = unsupported_reason(target, spec, unavailable)
        if why_not is None:
            reasons.append(f"{target}: chosen, the best available target for this spec")
            return TargetChoice(target, tuple(reasons))
        reasons.append(f"{target}: {why_not}")
    raise ValueError(f"no target can run {spec!r}: " + "; ".join(reasons))


def generation_key(spec: LSTMSpec, requested: str = "auto", blas: str = "numpy") -> VariantKey:
    """The variant `lstmgen compile` writes for `spec`. Generating looks for no GPU: "auto"
    means cpu, and "cuda" writes CUDA code without one; cudnn has no module to write.
    `blas`: what cpu code calls (numpy's by default, so the module runs wherever Numba does)."""
    if requested == "cudnn":
        raise ValueError("target 'cudnn' generates no module: a layer drives cuDNN at run time")
    unavailable = {**NOT_PROBED, "cuda": None} if requested == "cuda" else NOT_PROBED
    return VariantKey.from_spec(spec, choose_target(spec, requested, unavailable).target, blas)


def explain(spec: LSTMSpec, requested: str = "auto", unavailable: Mapping = NOT_PROBED) -> str:
    choice = choose_target(spec, requested, unavailable)
    lines = [f"{spec!r} runs on target {choice.target!r}."]
    lines += [f"  {reason}" for reason in choice.reasons]
    if choice.target == "cudnn":
        lines.append("  a call whose mask is not strictly right-padded, or has a fully masked "
                     "sample, runs on cuda when its inputs are device arrays, else on cpu"
                     + (" (use_cudnn=True: it raises ValueError)" if spec.use_cudnn is True else ""))
    elif spec.use_cudnn == "auto" and requested == "auto":
        lines.append(f"  use_cudnn='auto' falls back to {choice.target} (the cudnn line says why)")
    if choice.target == "cuda":
        from lstmgen.lower.cuda import strategy_rule

        lines.append(f"  cuda: {strategy_rule()}")
    return "\n".join(lines)
