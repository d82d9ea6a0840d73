"""Where a GPU call's time goes, for the cases benchmarks/gpu.py times: the kernels each side
launches (torch.profiler, which sees cuDNN's kernels whoever calls it) and the host time of
lstmgen's call (cProfile). A companion of gpu.py for a lent GPU:

    PYTHONPATH=. python3 benchmarks/gpu_profile.py --out DIR [--cases small,stream]

Writes DIR/gpu_profile.txt: per case and side, the wall time of one call (median), the kernels'
table over PROFILED_CALLS calls, and for lstmgen's sides the host functions that took longest.
"""

import argparse
import cProfile
import io
import pstats
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu  # noqa: E402  (the cases' sides, as gpu.py times them)
from lstmgen.bench import time_call  # noqa: E402

PROFILED_CALLS = 5


def _median_ms(side, calls: int = 20) -> float:
    return 1e3 * float(np.median(time_call(lambda: (side.call(), side.sync()), calls)))


def profile(side) -> str:
    import torch
    from torch.profiler import ProfilerActivity

    with torch.profiler.profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(PROFILED_CALLS):
            side.call(), side.sync()
    return prof.key_averages().table(sort_by="cuda_time_total", row_limit=15)


def host_profile(side) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(PROFILED_CALLS):
        side.call(), side.sync()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
    return text.getvalue()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cases", default="small,stream")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    report = []
    for name in args.cases.split(","):
        shape = gpu.SHAPES[name]
        weights, x, _ = gpu.problem(shape)
        sides = {"torch": lambda: gpu.torch_side(weights, x, "cuda"),
                 "lstmgen cudnn": lambda: gpu.lstmgen_side(weights, x, "cudnn"),
                 "lstmgen cuda": lambda: gpu.lstmgen_side(weights, x, "cuda")}
        for label, make in sides.items():
            try:
                side = make()
                report.append(f"## {name} {shape}: {label}: {_median_ms(side):.3f} ms per call, "
                              f"{side.note()}\n\n{profile(side)}\n")
                if label != "torch":
                    report.append(host_profile(side))
            except Exception as err:  # one failing side must not cost the others
                report.append(f"## {name} {shape}: {label}: {type(err).__name__}: {err}\n")
            (args.out / "gpu_profile.txt").write_text("\n".join(report))
            print(report[-1][:3000], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
