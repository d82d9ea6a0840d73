"""Small and odd batches (1-11 rows) side by side with ONNX Runtime and PyTorch, where the
blocked product's last 1-3 rows, the units split and the batch split decide the speed (`lstmgen
bench`'s cases have 1, 32, 64 and 128 rows).

    LSTMGEN_BLAS=mkl .venv/bin/python benchmarks/small_batches.py [--shape N,T,C,H ...]

Each shape runs as `lstmgen bench` runs its cases (lstmgen.bench.bench_case: outputs checked
against each other, implementations alternating in rounds); prints the medians in ms and the
faster peer's median over lstmgen's.
"""

import argparse
import os

from lstmgen import bench, blas

SHAPES = ["3,300,64,200", "3,300,64,128", "7,200,64,128", "11,100,128,256", "2,500,64,256"]


def shape(text: str) -> tuple:
    """N,T,C,H: four positive ints."""
    try:
        sizes = tuple(int(v) for v in text.split(","))
    except ValueError:
        sizes = ()
    if len(sizes) != 4 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not N,T,C,H (four positive integers)")
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", nargs="+", type=shape, default=[shape(s) for s in SHAPES],
                        metavar="N,T,C,H")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=0.25, help="seconds of calls per round")
    args = parser.parse_args()
    bench.import_peers()
    print(f"lstmgen's BLAS: {blas.choice()}")
    print(f"{'N,T,C,H':>16} {'lstmgen ms':>11} {'ORT ms':>9} {'torch ms':>9} {'ratio':>6}")
    for n, t, c, h in args.shape:
        name = f"{n},{t},{c},{h}"
        row = bench.bench_case(bench.Case(name, n, t, c, h), args.threads, 5, args.rounds, args.budget)
        cell = {k: f"{v['median_ms']:.2f}" for k, v in row["results"].items()}
        print(f"{name:>16} {cell.get('lstmgen', '-'):>11} {cell.get('onnxruntime', '-'):>9} "
              f"{cell.get('torch', '-'):>9} {row.get('ratio', float('nan')):>6.2f}")
        for note in row["notes"]:
            print(f"  note: {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
