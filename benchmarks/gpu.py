"""The CUDA target on a GPU: run the GPU test tier, then time it against torch.nn.LSTM (cuDNN).

    .venv/bin/python benchmarks/gpu.py          # needs a CUDA GPU, numba-cuda and torch with CUDA

Prints Markdown tables for BENCHMARKS.md: the four benchmark shapes of the CPU issue, then batch
N = 1..8 at H = 128..1024 (C = H, T = 100), float32 inference with return_sequences=True, input
projection included. Times are medians of CUDA-event timings in ms; ratio = torch / lstmgen
(> 1 means lstmgen is faster). Not run yet: no GPU was lent when it was written.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np

SHAPES = {"batch": (64, 100, 128, 256), "stream": (1, 1000, 64, 128), "small": (32, 50, 32, 64),
          "large": (128, 100, 512, 512)}
REPEATS = 20


def _median_ms(run, sync) -> float:
    from numba import cuda

    run()
    sync()
    times = []
    for _ in range(REPEATS):
        start, stop = cuda.event(), cuda.event()
        start.record()
        run()
        stop.record()
        stop.synchronize()
        times.append(cuda.event_elapsed_time(start, stop))
    return float(np.median(times))


def time_case(n_batch, n_time, input_dim, units):
    import torch
    from numba import cuda

    import lstmgen

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_batch, n_time, input_dim)).astype(np.float32)
    layer = lstmgen.LSTM(units, target="cuda", return_sequences=True)
    layer.build(x.shape)
    x_device = cuda.to_device(x)
    ours = _median_ms(lambda: layer(x_device), cuda.synchronize)
    strategy = layer._cuda.strategy.name
    peer = torch.nn.LSTM(input_dim, units, batch_first=True).cuda()
    x_torch = torch.from_numpy(x).cuda()
    with torch.no_grad():
        theirs = _median_ms(lambda: peer(x_torch), torch.cuda.synchronize)
    return ours, theirs, strategy


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    tier = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/test_cuda_gpu.py"], cwd=root)
    if tier.returncode != 0:
        print("the GPU test tier failed: no timings", file=sys.stderr)
        return tier.returncode
    from numba import cuda

    print(f"Device: {cuda.get_current_device().name.decode()}\n")
    print("| case (N, T, C, H) | lstmgen (strategy) | torch.nn.LSTM | ratio |")
    print("|---|---|---|---|")
    cases = [(f"{name} {shape}", shape) for name, shape in SHAPES.items()]
    cases += [(f"N={n} H={h}", (n, 100, h, h)) for h in (128, 256, 512, 1024) for n in range(1, 9)]
    for label, shape in cases:
        ours, theirs, strategy = time_case(*shape)
        print(f"| {label} | {ours:.3f} ({strategy}) | {theirs:.3f} | {theirs / ours:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
