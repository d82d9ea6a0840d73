"""benchmarks/gpu.py's CUDA side in the simulator: device arrays in and out, the strategy it
reports, and agreement with the float64 reference through the script's own comparison."""

from cuda_helpers import load_gpu_bench
from lstmgen import reference
from lstmgen.spec import LSTMSpec

SHAPE = (2, 3, 2, 3)  # N, T, C, H: one block, as the simulator runs cooperative kernels


def test_cuda_side_with_holes_agrees_with_the_reference():
    gpu_bench = load_gpu_bench()
    weights, x, holes = gpu_bench.problem(SHAPE)
    holes[0, 1] = False  # a hole, whatever the draw
    spec = LSTMSpec(SHAPE[3], input_dim=SHAPE[2], return_sequences=True)
    expected = reference.forward(spec, *weights, x, mask=holes)
    row = gpu_bench.compare("tiny", gpu_bench.lstmgen_side(weights, x, "cuda", mask=holes),
                            gpu_bench.Side(lambda: None, lambda: expected, gpu_bench._no_sync),
                            gpu_bench.flops(SHAPE))
    assert row["max_difference"] < 1e-5 and row["note"] == "cuda, persistent", row
