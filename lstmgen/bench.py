"""`lstmgen bench`: lstmgen's CPU target side by side with ONNX Runtime and torch.nn.LSTM.

Every case runs all implementations in one process on the same weights and inputs, checks that
their outputs agree, then times each (median and spread of repeated runs, input projection
included) and reports the best peer's median over lstmgen's. Peers that are not installed are
skipped with a note. Compile latency is measured in fresh processes, cold and with a warm cache,
for a call without a mask and one with a mask.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lstmgen import blas
from lstmgen.interop.gates import keras_to_onnx, keras_to_torch
from lstmgen.batch_threads import set_num_threads
from lstmgen.runtime import LSTM


@dataclass(frozen=True)
class Case:
    name: str
    batch: int
    steps: int
    features: int
    units: int
    dtype: str = "float32"
    masked: bool = False  # right-padded random lengths (what every peer can express)
    go_backwards: bool = False


CASES = (
    Case("batch", 64, 100, 128, 256),
    Case("stream", 1, 1000, 64, 128),
    Case("small", 32, 50, 32, 64),
    Case("large", 128, 100, 512, 512),
    Case("batch-f64", 64, 100, 128, 256, dtype="float64"),
    Case("batch-masked", 64, 100, 128, 256, masked=True),
    Case("batch-backwards", 64, 100, 128, 256, go_backwards=True),
)


# Thread pools (OpenBLAS's, ONNX Runtime's, OpenMP's) keep spinning for a while after their last
# job; timing one implementation while another's threads spin measured up to 6x slower here.
SETTLE_S = 0.5


def flops(case: Case) -> float:
    """Multiply-adds of the input projection and the recurrence, counted as 2 flops each."""
    return 2.0 * case.batch * case.steps * (case.features + case.units) * 4 * case.units


def time_call(fn, repeats: int, budget_s: float = 0.0) -> list:
    """Seconds of each timed call: at least `repeats` calls, and more until `budget_s` is spent
    (a 0.6 ms case gets hundreds of samples, a 200 ms one its `repeats`)."""
    fn()  # warm up: compile, allocate, fill caches
    times = []
    while len(times) < repeats or sum(times) < budget_s:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


class Problem:
    """Weights and inputs of one case, and the reference answer every implementation must give."""

    def __init__(self, case: Case, rng: np.random.Generator):
        self.case = case
        dtype = np.dtype(case.dtype)
        c, h = case.features, case.units
        self.weights = [rng.normal(0, 1 / np.sqrt(c), (c, 4 * h)).astype(dtype),
                        rng.normal(0, 1 / np.sqrt(h), (h, 4 * h)).astype(dtype),
                        rng.normal(0, 0.1, 4 * h).astype(dtype)]
        self.x = rng.normal(size=(case.batch, case.steps, c)).astype(dtype)
        lengths = (rng.integers(case.steps // 2, case.steps + 1, case.batch) if case.masked
                   else np.full(case.batch, case.steps))
        self.lengths = lengths.astype(np.int32)
        self.mask = np.arange(case.steps)[None, :] < self.lengths[:, None]

    def valid(self, y: np.ndarray) -> np.ndarray:
        """[N, T, H] outputs with steps past each length zeroed, in input time order."""
        return np.where(self.mask[:, :, None], y, 0)


def run_lstmgen(problem: Problem, threads: int):
    set_num_threads(threads)
    case = problem.case
    layer = LSTM(case.units, return_sequences=True, return_state=True, dtype=case.dtype,
                 go_backwards=case.go_backwards, zero_output_for_mask=True)
    layer.set_weights(problem.weights)
    mask = problem.mask if case.masked else None

    def call():
        return layer(problem.x, mask=mask)

    def result():
        y, h, c = call()
        return problem.valid(y[:, ::-1] if case.go_backwards else y), h

    return call, result


class IsolatedLstmgen:
    """lstmgen timed in a child process that imports no peer, in lockstep with the peers here.

    For lstmgen on MKL: MKL and torch's own MKL call into each other in one process (torch's
    float64 LSTM measured 29x slower after lstmgen's MKL ran), which would time a crippled peer.
    """

    def __init__(self, case: Case, threads: int):
        self._output = tempfile.NamedTemporaryFile(suffix=".npz", delete=False)
        self._output.close()
        self._child = subprocess.Popen(
            [sys.executable, "-m", "lstmgen", "bench", "--serve", json.dumps(asdict(case)),
             "--threads", str(threads), "-o", self._output.name],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self._child.stdout.readline().strip() != "ready":
            raise RuntimeError(f"lstmgen's benchmark process for {case.name} failed (its stderr above)")
        with np.load(self._output.name) as saved:
            self.y, self.h = saved["y"], saved["h"]
        os.unlink(self._output.name)

    def times(self, repeats: int, budget_s: float) -> list:
        self._child.stdin.write(f"{repeats} {budget_s}\n")
        self._child.stdin.flush()
        return json.loads(self._child.stdout.readline())

    def close(self) -> None:
        self._child.stdin.close()
        self._child.wait()


def serve(case: Case, threads: int, output: str) -> None:
    """The child side of IsolatedLstmgen: saves lstmgen's answer, then times calls on request."""
    problem = Problem(case, problem_rng(case))
    call, result = run_lstmgen(problem, threads)
    y, h = result()
    np.savez(output, y=y, h=h)
    print("ready", flush=True)
    for line in sys.stdin:
        repeats, budget_s = line.split()
        print(json.dumps(time_call(call, int(repeats), float(budget_s))), flush=True)


def run_onnxruntime(problem: Problem, threads: int):
    import onnx
    import onnxruntime as ort

    case = problem.case
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(case.dtype))
    w, r, b = keras_to_onnx(*problem.weights)
    node = onnx.helper.make_node(
        "LSTM", ["X", "W", "R", "B", "sequence_lens"], ["Y", "Y_h"], hidden_size=case.units,
        direction="reverse" if case.go_backwards else "forward")
    graph = onnx.helper.make_graph(
        [node], "lstm",
        [onnx.helper.make_tensor_value_info("X", elem, [case.steps, case.batch, case.features]),
         onnx.helper.make_tensor_value_info("sequence_lens", onnx.TensorProto.INT32, [case.batch])],
        [onnx.helper.make_tensor_value_info("Y", elem, None),
         onnx.helper.make_tensor_value_info("Y_h", elem, None)],
        [onnx.numpy_helper.from_array(a, n) for a, n in ((w, "W"), (r, "R"), (b, "B"))])
    # IR version 10 goes with opset 22 and is what current ONNX Runtime releases read.
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 22)], ir_version=10)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # A case it cannot run (float64) raises, and the note says why: no error log on stderr too.
    options.log_severity_level = 4
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    # ORT wants time-major input: transposed once, outside the timed region.
    feed = {"X": np.ascontiguousarray(problem.x.transpose(1, 0, 2)), "sequence_lens": problem.lengths}

    def call():
        return session.run(None, feed)

    def result():
        y, y_h = call()
        return problem.valid(y[:, 0].transpose(1, 0, 2)), y_h[0]

    return call, result


def run_torch(problem: Problem, threads: int):
    import torch

    torch.set_num_threads(threads)
    case = problem.case
    dtype = {"float32": torch.float32, "float64": torch.float64}[case.dtype]
    module = torch.nn.LSTM(case.features, case.units, batch_first=True).to(dtype)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in keras_to_torch(*problem.weights).items()})
    module.eval()
    x = problem.x
    if case.go_backwards:  # torch has no reverse direction: prepare reversed sequences up front
        x = np.stack([np.concatenate([row[:n][::-1], row[n:]]) for row, n in zip(x, problem.lengths)])
    x = torch.from_numpy(np.ascontiguousarray(x))
    lengths = torch.from_numpy(problem.lengths.astype(np.int64))

    def call():
        with torch.inference_mode():
            if not case.masked:
                return module(x)
            packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            y, state = module(packed)
            return torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=case.steps)[0], state

    def result():
        y, (h, _) = call()
        y = y.numpy()
        if case.go_backwards:
            y = np.stack([np.concatenate([row[:n][::-1], row[n:]]) for row, n in zip(y, problem.lengths)])
        return problem.valid(y), h[0].numpy()

    return call, result


def import_peers() -> None:
    """Import the peers before lstmgen's first call. MKL makes its functions global when it loads:
    a torch imported after that calls lstmgen's sequential MKL for its own products (measured 2x
    slower matrix products on 2 threads); imported before, each keeps its own."""
    for name in ("torch", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            pass  # bench_case notes the missing peer


def sgemm_rate(repeats: int = 7) -> float:
    """GFLOP/s of NumPy's float32 matrix product on this machine, measured now."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((2048, 2048)).astype(np.float32) for _ in range(2))
    return 2 * 2048 ** 3 / np.median(time_call(lambda: a @ b, repeats)) / 1e9


def problem_rng(case: Case) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(case.name.encode()))


def timed_locally(make):
    """A runner's (call, result) as (timer, result); timer(repeats, budget_s) -> seconds per call."""
    call, result = make()
    return (lambda repeats, budget_s: time_call(call, repeats, budget_s)), result


def bench_case(case: Case, threads: int, repeats: int, rounds: int, budget_s: float = 0.0) -> dict:
    problem = Problem(case, problem_rng(case))
    isolated = blas.choice() == "mkl"
    runners = {"lstmgen": lambda: timed_locally(lambda: run_lstmgen(problem, threads)),
               "onnxruntime": lambda: timed_locally(lambda: run_onnxruntime(problem, threads)),
               "torch": lambda: timed_locally(lambda: run_torch(problem, threads))}
    if isolated:
        child = IsolatedLstmgen(case, threads)
        runners["lstmgen"] = lambda: (child.times, lambda: (child.y, child.h))
    row = {"case": asdict(case), "gflop": flops(case) / 1e9, "results": {}, "notes": [],
           "lstmgen_process": "its own" if isolated else "the peers'"}
    tolerance = 2e-4 if case.dtype == "float32" else 1e-10
    expected = None
    timers = {}
    for name, make in runners.items():
        try:
            timer, result = make()
            y, h = result()
        except ImportError as err:
            row["notes"].append(f"{name} skipped: not installed ({err.name})")
            continue
        except Exception as err:  # a peer that cannot run the case is reported, not fatal
            if name == "lstmgen":
                raise
            row["notes"].append(f"{name} skipped: {type(err).__name__}: {str(err).splitlines()[-1][-120:]}")
            continue
        if expected is None:
            expected = (y, h)
        error = max(float(np.max(np.abs(y - expected[0]))), float(np.max(np.abs(h - expected[1]))))
        if error > tolerance:
            raise AssertionError(f"{name} disagrees with lstmgen on {case.name}: max |diff| {error:.2e}")
        timers[name] = timer
        row["results"][name] = {"max_abs_diff": error}
    # Rounds alternate the implementations so that drift in the machine's speed hits all alike.
    times = {name: [] for name in timers}
    for _ in range(rounds):
        for name, timer in timers.items():
            time.sleep(SETTLE_S)
            times[name] += timer(repeats, budget_s)
    if isolated:
        child.close()
    for name, samples in times.items():
        row["results"][name].update(median_ms=1e3 * float(np.median(samples)),
                                    q1_ms=1e3 * float(np.percentile(samples, 25)),
                                    q3_ms=1e3 * float(np.percentile(samples, 75)))
    medians = {k: v["median_ms"] for k, v in row["results"].items()}
    peers = {k: v for k, v in medians.items() if k != "lstmgen"}
    if peers and "lstmgen" in medians:
        best = min(peers, key=peers.get)
        row["best_peer"] = best
        row["ratio"] = peers[best] / medians["lstmgen"]
    row["lstmgen_gflops"] = flops(case) / medians["lstmgen"] / 1e6
    return row


_LATENCY_SCRIPT = """
import time, sys
start = time.perf_counter()
import numpy as np, lstmgen
layer = lstmgen.LSTM(64, return_sequences=True)
layer.set_weights([np.full(s, 0.01, np.float32) for s in [(16, 256), (64, 256), (256,)]])
mask = np.arange(10) < np.array([[10], [7], [10], [3]]) if sys.argv[1] == "masked" else None
layer(np.ones((4, 10, 16), np.float32), mask=mask)
print(time.perf_counter() - start)
"""


def compile_latency() -> dict:
    """Seconds from process start (after the interpreter) to the first result, cold then warm
    (best of two), of one small layer's variant called without a mask and, as its own variant
    with a cache of its own, with a right-padded mask (its entry point compiles more code)."""
    out = {}
    for kind, suffix in (("plain", ""), ("masked", "_masked")):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, LSTMGEN_CACHE_DIR=cache)
            runs = [float(subprocess.run([sys.executable, "-c", _LATENCY_SCRIPT, kind], env=env,
                                         check=True, capture_output=True, text=True).stdout)
                    for _ in range(3)]
        out.update({f"cold{suffix}_s": runs[0], f"warm{suffix}_s": min(runs[1:])})
    return out


def cpu_model() -> str:
    """The CPU's model name, and on Linux its vendor, family and model numbers (an "AMD EPYC" VM
    may be any generation; MKL's speed depends on the vendor: BENCHMARKS.md, session 11)."""
    fields = blas.cpu_fields()
    if not fields:
        return platform.processor() or platform.machine()
    return (f"{fields.get('model name', platform.machine())} ({fields.get('vendor_id', '?')}, "
            f"family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})")


def chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["cases"]
    names = ["lstmgen", "onnxruntime", "torch"]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.27
    for k, name in enumerate(names):
        # Each case normalized to lstmgen's median, so different sizes share one axis.
        values = [r["results"][name]["median_ms"] / r["results"]["lstmgen"]["median_ms"]
                  if name in r["results"] else 0 for r in rows]
        ax.bar(np.arange(len(rows)) + (k - 1) * width, values, width, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(rows)), [r["case"]["name"] for r in rows])
    ax.set_ylabel("median time / lstmgen's (higher = lstmgen faster)")
    ax.set_title(f"LSTM forward, {report['machine']['threads']} threads")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="lstmgen bench", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads of every implementation: lstmgen.set_num_threads and the "
                             "peers' intra-op threads (default: every core)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per round, at least")
    parser.add_argument("--budget", type=float, default=0.25,
                        help="seconds of timed calls per round and implementation, at least")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all implementations")
    parser.add_argument("--cases", nargs="*", default=[c.name for c in CASES],
                        choices=[c.name for c in CASES])
    parser.add_argument("-o", "--output", default="benchmarks/results", help="directory for JSON and PNG")
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # a case's JSON: run as IsolatedLstmgen's child
    args = parser.parse_args(argv)
    if args.serve:
        serve(Case(**json.loads(args.serve)), args.threads, args.output)
        return 0
    if blas.ENV not in os.environ and blas.mkl_runtime():
        # auto would say numpy, torch being installed; but lstmgen's MKL runs in a process of its
        # own here (IsolatedLstmgen), so the benchmark times the fastest code lstmgen has.
        os.environ[blas.ENV] = "mkl"
    import_peers()
    report = {"machine": {"cpu": cpu_model(), "threads": args.threads,
                          "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")},
              "lstmgen_blas": blas.choice(), "sgemm_gflops": sgemm_rate(),
              "timing": {"rounds": args.rounds, "min_calls": args.repeats, "budget_s": args.budget},
              "cases": []}
    print(f"NumPy float32 sgemm: {report['sgemm_gflops']:.0f} GFLOP/s; lstmgen's BLAS: "
          f"{report['lstmgen_blas']}")
    print(f"{'case':<16} {'lstmgen ms':>11} {'ORT ms':>9} {'torch ms':>9} {'ratio':>6} {'GFLOP/s':>8} {'of sgemm':>8}")
    for case in CASES:
        if case.name not in args.cases:
            continue
        row = bench_case(case, args.threads, args.repeats, args.rounds, args.budget)
        report["cases"].append(row)
        cell = {k: f"{v['median_ms']:.2f}" for k, v in row["results"].items()}
        print(f"{case.name:<16} {cell.get('lstmgen', '-'):>11} {cell.get('onnxruntime', '-'):>9} "
              f"{cell.get('torch', '-'):>9} {row.get('ratio', float('nan')):>6.2f} "
              f"{row['lstmgen_gflops']:>8.1f} {row['lstmgen_gflops'] / report['sgemm_gflops']:>8.0%}")
        for note in row["notes"]:
            print(f"  note: {note}")
    report["compile_latency"] = compile_latency()
    print("compile latency: cold {cold_s:.2f} s, warm {warm_s:.2f} s; with a mask: cold "
          "{cold_masked_s:.2f} s, warm {warm_masked_s:.2f} s".format(**report["compile_latency"]))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cpu.json").write_text(json.dumps(report, indent=2) + "\n")
    try:
        chart(report, out / "cpu.png")
    except ImportError:
        print("  note: matplotlib not installed, no chart written")
    print(f"wrote {out / 'cpu.json'}")
    return 0
