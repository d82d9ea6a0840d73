"""Which code a spec needs: the variant key, and which target runs it and why."""

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Optional

from lstmgen.spec import LSTMSpec

# Every target lstmgen knows, and those this build can generate code for, best first.
KNOWN_TARGETS = ("cpu", "cuda", "cudnn")
TARGETS = ("cuda", "cpu")
REQUESTABLE = ("auto",) + KNOWN_TARGETS
# What callers that did not look for a GPU pass as `cuda_unavailable` (lowering does no I/O):
# "auto" then never picks cuda. A layer and `lstmgen explain` look (lstmgen/cuda_runtime.py).
CUDA_NOT_PROBED = "no GPU looked for (a layer or `lstmgen explain` looks)"


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

    @classmethod
    def from_spec(cls, spec: LSTMSpec, target: str) -> "VariantKey":
        if spec.input_dim is None:
            raise ValueError(f"input_dim is unknown for {spec!r}: generating code needs it "
                             "(build the layer, or set input_dim in the spec)")
        if spec.unroll and spec.timesteps is None:
            raise ValueError(f"unroll=True for {spec!r} needs timesteps to write straight-line code")
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
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))

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


def cuda_uncovered_reason(spec: LSTMSpec) -> Optional[str]:
    """Why the CUDA templates do not cover `spec`, or None."""
    if spec.unroll:
        return "unroll=True asks for straight-line code, which only the cpu template writes"
    return None


def unsupported_reason(target: str, spec: LSTMSpec, cuda_unavailable: Optional[str] = CUDA_NOT_PROBED
                       ) -> Optional[str]:
    """Why `target` cannot run `spec`, or None when it can. Shared by choice, explain and tests.

    `cuda_unavailable` is why this process cannot launch CUDA kernels (no GPU, no numba-cuda), or
    None when it can (or when only code is generated).
    """
    if target not in TARGETS:
        return f"target {target!r} is not available in this build (available: {', '.join(TARGETS)})"
    if target == "cuda":
        return cuda_uncovered_reason(spec) or cuda_unavailable
    return None


def is_supported(target: str, spec: LSTMSpec, cuda_unavailable: Optional[str] = CUDA_NOT_PROBED) -> bool:
    return unsupported_reason(target, spec, cuda_unavailable) is None


def choose_target(spec: LSTMSpec, requested: str = "auto",
                  cuda_unavailable: Optional[str] = CUDA_NOT_PROBED) -> TargetChoice:
    """The best supported target for "auto"; a requested target that cannot run raises ValueError."""
    if requested not in REQUESTABLE:
        raise ValueError(f"target={requested!r}: must be one of {', '.join(REQUESTABLE)}")
    if spec.use_cudnn is True:
        raise ValueError(f"use_cudnn=True for {spec!r}: no cuDNN target is available in this "
                         "build; pass use_cudnn='auto' to run on another target")
    if requested != "auto":
        why_not = unsupported_reason(requested, spec, cuda_unavailable)
        if why_not is not None:
            raise ValueError(f"target={requested!r} cannot run {spec!r}: {why_not}")
        return TargetChoice(requested, (f"{requested}: chosen, requested",))
    reasons = []
    for target in TARGETS:
        why_not = unsupported_reason(target, spec, cuda_unavailable)
        if why_not is None:
            reasons.append(f"{target}: chosen, the best available target for this spec")
            return TargetChoice(target, tuple(reasons))
        reasons.append(f"{target}: {why_not}")
    raise ValueError(f"no target can run {spec!r}: " + "; ".join(reasons))


def explain(spec: LSTMSpec, requested: str = "auto", cuda_unavailable: Optional[str] = CUDA_NOT_PROBED) -> str:
    choice = choose_target(spec, requested, cuda_unavailable)
    lines = [f"{spec!r} runs on target {choice.target!r}."]
    lines += [f"  {reason}" for reason in choice.reasons]
    if choice.target == "cuda":
        from lstmgen.lower.cuda import strategy_rule

        lines.append(f"  cuda: {strategy_rule()}")
    if spec.use_cudnn == "auto":
        lines.append("  cudnn: not available in this build, so use_cudnn='auto' falls back")
    return "\n".join(lines)
