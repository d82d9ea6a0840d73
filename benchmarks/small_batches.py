"""Small and odd batches (1-11 rows) side by side with ONNX Runtime, where the blocked product's
last 1-3 rows, the units split and the batch split decide the speed (`lstmgen bench`'s cases
have 1, 32, 64 and 128 rows).

    LSTMGEN_BLAS=mkl .venv/bin/python benchmarks/small_batches.py [--shape N,T,C,H ...]

One process, both on 2 threads; outputs checked against each other first, then the shapes in
rounds (each call timed for at least --budget seconds a round). Prints each side's median over
the rounds, in ms, with the rounds' range, and ONNX Runtime's median over lstmgen's.
"""

import argparse

import numpy as np

from lstmgen import bench

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
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=0.25, help="seconds of calls per round")
    args = parser.parse_args()
    bench.import_peers()
    cases = []
    for n, t, c, h in args.shape:
        name = f"{n},{t},{c},{h}"
        problem = bench.Problem(bench.Case(name, n, t, c, h), np.random.default_rng(n * t + h))
        ours, our_result = bench.run_lstmgen(problem, 2)
        theirs, their_result = bench.run_onnxruntime(problem, 2)
        np.testing.assert_allclose(our_result()[0], their_result()[0], rtol=1e-3, atol=1e-4)
        cases.append((name, {"lstmgen": ours, "onnxruntime": theirs}, {"lstmgen": [], "onnxruntime": []}))
    for _ in range(args.rounds):
        for _, calls, medians in cases:
            for name, call in calls.items():
                medians[name].append(1e3 * float(np.median(bench.time_call(call, 20, args.budget))))
    print(f"{'N,T,C,H':>16}  {'lstmgen ms':>20}  {'ONNX Runtime ms':>20}  ratio")
    for name, _, medians in cases:
        ours, theirs = (f"{np.median(m):.2f} ({min(m):.2f}-{max(m):.2f})" for m in medians.values())
        ratio = np.median(medians["onnxruntime"]) / np.median(medians["lstmgen"])
        print(f"{name:>16}  {ours:>20}  {theirs:>20}  {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
