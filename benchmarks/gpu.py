"""The GPU run for issues 4 and 5, in one command: the GPU test tier, then lstmgen's CUDA and cuDNN
targets timed against torch.nn.LSTM (cuDNN) and against Keras 3's own loops, on one GPU.

    PYTHONPATH=. python3 benchmarks/gpu.py --out DIR [--budget-s 420] [--tier-timeout-s 240] [--only TEXT]

Needs a CUDA GPU, numba-cuda, torch with CUDA, and for the Keras rows keras 3 (KERAS_BACKEND=torch
is set here). Writes into DIR, as it goes, so a run cut short keeps what it measured:
gpu_tests.xml (pytest's report of the tier), gpu_bench.json and gpu_bench.md (the tables
BENCHMARKS.md records). Every case first checks that both sides give the same outputs, then
times each side's call with its device synchronized, median of repeated calls (at least
REPEATS, more until BUDGET_PER_SIDE_S is spent). float32, return_sequences=True, input projection
included; ratio = peer / lstmgen (> 1: lstmgen is faster). TF32 is off in torch, so both sides
compute in float32. Once --budget-s is spent, the remaining cases are listed as not run.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")

from lstmgen.bench import time_call  # noqa: E402

SHAPES = {"batch": (64, 100, 128, 256), "stream": (1, 1000, 64, 128), "small": (32, 50, 32, 64),
          "large": (128, 100, 512, 512)}
SWEEP = [(n, 100, h, h) for h in (128, 256, 512, 1024) for n in range(1, 9)]
# What cuDNN cannot run, against Keras 3 on the torch backend on the same GPU: a mask with holes
# and recurrent dropout take its generic step loop, another activation its fused fallback loop.
KERAS_SHAPE = (32, 100, 64, 128)
KERAS_CASES = {"mask with holes": dict(holes=True), "activation='relu'": dict(activation="relu"),
               "recurrent_dropout=0.25, training": dict(recurrent_dropout=0.25, training=True)}
REPEATS = 10
BUDGET_PER_SIDE_S = 0.5
# Two float32 implementations summing in different orders drift apart by ~1e-6 of the outputs'
# size per step, so 1e-3 of it allows 1000 steps and still catches any semantic slip.
AGREEMENT = 1e-3
TIER = ("tests/test_cuda_gpu.py", "tests/test_cudnn_gpu.py", "tests/test_cudnn_bindings.py",
        "tests/test_cudnn_eligibility.py", "tests/test_cudnnlstm.py")


class Side(NamedTuple):
    """One implementation of a case: `call` runs it as timed, `result` gives the host output
    [N, T, H] to compare (without dropout), `sync` waits for its device."""

    call: Callable
    result: Callable
    sync: Callable
    note: Callable = str  # after a call: what ran (the CUDA target's strategy)


def _no_sync():
    pass


def problem(shape, seed=0):
    """Keras-form float32 weights [kernel, recurrent_kernel, bias] and inputs [N, T, C]."""
    n_batch, n_time, input_dim, units = shape
    rng = np.random.default_rng(seed)
    weights = [rng.normal(0, 1 / np.sqrt(input_dim), (input_dim, 4 * units)),
               rng.normal(0, 1 / np.sqrt(units), (units, 4 * units)),
               rng.normal(0, 0.1, 4 * units)]
    x = rng.normal(size=(n_batch, n_time, input_dim))
    holes = rng.random((n_batch, n_time)) > 0.2
    return [w.astype(np.float32) for w in weights], x.astype(np.float32), holes


def lstmgen_side(weights, x, target, mask=None, training=False, **layer_kwargs) -> Side:
    """An lstmgen layer on `target`. On "cuda" and "cudnn" the input and output stay on the
    device (what a pipeline on the GPU does); "cpu" takes and gives host arrays."""
    import lstmgen

    target_kwargs = dict(use_cudnn=True) if target == "cudnn" else dict(target=target)
    layer = lstmgen.LSTM(weights[1].shape[0], return_sequences=True, **target_kwargs, **layer_kwargs)
    layer.set_weights(weights)
    sync, inputs = _no_sync, x
    if target != "cpu":
        from numba import cuda

        sync, inputs = cuda.synchronize, cuda.to_device(x)

    def result():
        output = layer(inputs, mask=mask)
        return output.copy_to_host() if hasattr(output, "copy_to_host") else output

    def note():
        return f"{layer.target}, {layer._cuda.strategy.name}" if layer._cuda else layer.target

    return Side(lambda: layer(inputs, mask=mask, training=training), result, sync, note)


def torch_side(weights, x, device) -> Side:
    """torch.nn.LSTM with the same weights, its input already on `device`."""
    import torch

    from lstmgen.interop.gates import keras_to_torch

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    module = torch.nn.LSTM(x.shape[2], weights[1].shape[0], batch_first=True)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in keras_to_torch(*weights).items()})
    module = module.to(device).eval()
    on_device = torch.from_numpy(x).to(device)

    def call():
        with torch.inference_mode():
            return module(on_device)[0]

    def result():
        return call().cpu().numpy()

    sync = torch.cuda.synchronize if device == "cuda" else _no_sync
    return Side(call, result, sync)


def keras_side(weights, x, mask=None, training=False, **layer_kwargs) -> Side:
    """Keras 3's LSTM on the torch backend, on the GPU when torch sees one."""
    import keras
    import torch

    layer = keras.layers.LSTM(weights[1].shape[0], return_sequences=True, **layer_kwargs)
    layer.build((None,) + x.shape[1:])
    layer.set_weights(weights)
    inputs = keras.ops.convert_to_tensor(x)
    keras_mask = None if mask is None else keras.ops.convert_to_tensor(mask)

    # Forward only, as lstmgen computes: no autograd graph behind the weights.
    def call():
        with torch.no_grad():
            return layer(inputs, mask=keras_mask, training=training)

    def result():
        # a torch tensor (keras.ops.convert_to_numpy warns on torch 2.13's __array__)
        with torch.no_grad():
            return layer(inputs, mask=keras_mask, training=False).cpu().numpy()

    sync = torch.cuda.synchronize if torch.cuda.is_available() else _no_sync
    return Side(call, result, sync)


def compare(label: str, ours: Side, theirs: Side, flops: float) -> dict:
    """Check both sides agree, then time each (median ms); raises AssertionError if they differ."""
    ours_out, theirs_out = (np.asarray(side.result(), np.float64) for side in (ours, theirs))
    difference = float(np.abs(ours_out - theirs_out).max())
    # Relative to the outputs' size: relu's outputs are not bounded by 1.
    allowed = AGREEMENT * max(1.0, float(np.abs(theirs_out).max()))
    if not difference <= allowed:
        raise AssertionError(f"{label}: outputs differ by {difference:.3g} (> {allowed:.3g})")
    medians = []
    for side in (ours, theirs):
        samples = time_call(lambda: (side.call(), side.sync()), REPEATS, BUDGET_PER_SIDE_S)
        medians.append(1e3 * float(np.median(samples)))
    return {"case": label, "lstmgen_ms": medians[0], "peer_ms": medians[1],
            "ratio": medians[1] / medians[0], "max_difference": difference,
            "lstmgen_gflops": flops / medians[0] / 1e6, "note": ours.note()}


def flops(shape) -> float:
    n_batch, n_time, input_dim, units = shape
    return 2.0 * n_batch * n_time * (input_dim + units) * 4 * units


def cases(device: str):
    """(table, label, shape, make the two sides) for every comparison of the run, in order."""
    for name, shape in SHAPES.items():
        yield ("CUDA target vs torch.nn.LSTM (cuDNN), data on the device", f"{name} {shape}", shape,
               lambda w, x, holes: (lstmgen_side(w, x, "cuda"), torch_side(w, x, device)))
    for name, shape in SHAPES.items():
        yield ("cuDNN target (ctypes) vs torch.nn.LSTM (cuDNN), data on the device",
               f"{name} {shape}", shape,
               lambda w, x, holes: (lstmgen_side(w, x, "cudnn"), torch_side(w, x, device)))
    for label, options in KERAS_CASES.items():
        options = dict(options)
        mask_of = (lambda holes: holes) if options.pop("holes", False) else (lambda holes: None)
        yield ("CUDA target vs Keras 3 (torch backend) where cuDNN cannot run",
               f"{label} {KERAS_SHAPE}", KERAS_SHAPE,
               lambda w, x, holes, o=options, m=mask_of: (
                   lstmgen_side(w, x, "cuda", mask=m(holes), **o),
                   keras_side(w, x, mask=m(holes), **o)))
    # Last, as the longest table: a budget spent early costs the fewest tables.
    for shape in SWEEP:
        yield ("CUDA target vs torch.nn.LSTM (cuDNN) at small batch, data on the device",
               f"N={shape[0]} H={shape[3]} (T=100, C=H)", shape,
               lambda w, x, holes: (lstmgen_side(w, x, "cuda"), torch_side(w, x, device)))


def environment() -> dict:
    found = {"python": platform.python_version()}
    for name in ("numpy", "numba", "numba_cuda", "llvmlite", "torch", "keras", "jinja2"):
        try:
            found[name] = __import__(name).__version__
        except Exception as err:  # a missing peer only drops its rows
            found[name] = f"not available ({type(err).__name__}: {err})"
    from lstmgen.devices import unavailable

    found["lstmgen_targets_unavailable"] = unavailable()
    try:
        import torch

        found["device"] = torch.cuda.get_device_name(0)
        found["torch_cudnn"] = torch.backends.cudnn.version()
        from lstmgen.cudnn.library import candidates, version

        found["lstmgen_cudnn"] = {"version": version(), "candidates": [str(c) for c in candidates()]}
    except Exception as err:
        found["device_error"] = f"{type(err).__name__}: {err}"
    return found


def markdown(report: dict) -> str:
    lines = [f"Environment: {json.dumps(report['environment'])}", "",
             f"GPU test tier: {report.get('tier', 'not run')}", ""]
    table = None
    for row in report["rows"]:
        if row["table"] != table:
            table = row["table"]
            lines += ["", f"### {table}", "", "| case | lstmgen ms | peer ms | ratio | note |",
                      "|---|---|---|---|---|"]
        if "error" in row:
            lines.append(f"| {row['case']} | | | | {row['error']} |")
        else:
            lines.append(f"| {row['case']} | {row['lstmgen_ms']:.3f} | {row['peer_ms']:.3f} | "
                         f"{row['ratio']:.2f} | {row['note']} |")
    return "\n".join(lines) + "\n"


def save(report: dict, out: Path) -> None:
    (out / "gpu_bench.json").write_text(json.dumps(report, indent=1))
    (out / "gpu_bench.md").write_text(markdown(report))


def run_tier(root: Path, out: Path, timeout_s: float) -> str:
    """Run the GPU test tier in a child process, at most `timeout_s` (a hung kernel must not cost
    the timings); its outcome in one line."""
    workers = ["-n", str(min(8, os.cpu_count() or 1))]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *workers,
               f"--junitxml={out / 'gpu_tests.xml'}", *TIER]
    try:
        completed = subprocess.run(command, cwd=root, capture_output=True, text=True,
                                   timeout=timeout_s)
    except subprocess.TimeoutExpired as err:  # its output comes as bytes, whatever `text` says
        print((err.stdout or b"")[-6000:].decode(errors="replace"), flush=True)
        return f"stopped after {timeout_s:.0f} s (its report may be incomplete)"
    print(completed.stdout[-6000:], completed.stderr[-2000:], sep="\n", flush=True)
    summary = completed.stdout.strip().splitlines()[-1:] or ["no output"]
    return f"exit {completed.returncode}: {summary[0]}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget-s", type=float, default=420.0)
    parser.add_argument("--tier-timeout-s", type=float, default=240.0)
    parser.add_argument("--skip-tier", action="store_true")
    parser.add_argument("--only", default="", help="run only the cases whose table or label "
                        "holds this text (the others are listed as not run)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    report = {"environment": environment(), "rows": []}
    print(json.dumps(report["environment"], indent=1), flush=True)
    save(report, args.out)
    if not args.skip_tier:
        report["tier"] = run_tier(Path(__file__).resolve().parent.parent, args.out,
                                  args.tier_timeout_s)
        save(report, args.out)
    for table, label, shape, make in cases("cuda"):
        row = {"table": table, "case": label}
        if args.only not in f"{table} {label}":
            row["error"] = f"not run: not matched by --only {args.only!r}"
        elif time.perf_counter() - start > args.budget_s:
            row["error"] = "not run: the run's time budget was spent"
        else:
            try:
                row.update(compare(label, *make(*problem(shape)), flops(shape)))
            except Exception as err:  # one failing case must not cost the rest of the run
                row["error"] = f"{type(err).__name__}: {err}"[:300]
        report["rows"].append(row)
        print(row, flush=True)
        save(report, args.out)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
