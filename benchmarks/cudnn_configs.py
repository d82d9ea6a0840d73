"""Which cuDNN RNN configuration runs a forward fastest: cudnnRNNForward timed alone (no lstmgen
layer around it) for each algorithm, data layout and math type, at the benchmark shapes and small batches,
every sample at full length, float32, padded I/O, inference. Needs a GPU:

    PYTHONPATH=. python3 benchmarks/cudnn_configs.py --out DIR

Writes DIR/cudnn_configs.md (median ms per call, or cuDNN's refusal). lstmgen.cudnn.forward's
choice of configuration rests on this table (BENCHMARKS.md).
"""

import argparse
import ctypes
import sys
from pathlib import Path

import numpy as np

from lstmgen.bench import time_call
from lstmgen.cudnn import bindings as b
from lstmgen.cudnn.bindings import api
from lstmgen.cudnn.descriptors import (DropoutDescriptor, Handle, RNNDataDescriptor, RNNDescriptor,
                                       TensorDescriptor)

SHAPES = {"batch": (64, 100, 128, 256), "stream": (1, 1000, 64, 128), "small": (32, 50, 32, 64),
          "large": (128, 100, 512, 512),
          **{f"N={n} H={h}": (n, 100, h, h) for h in (128, 256, 512, 1024) for n in (1, 4, 8, 16)}}
# cudnnRNNAlgo_t; PyTorch 2.11 takes PERSIST_STATIC_SMALL_H for small H (its cuDNN API log).
ALGOS = {"standard": 0, "persist_static": 1, "persist_static_small_h": 3}
# cuDNN's layouts and its padded-I/O flag made at most 1.4x difference (first run, BENCHMARKS.md);
# lstmgen's own (batch-major, padded I/O) against PyTorch's (sequence-major packed).
LAYOUTS = {"seq_major_packed": 1, "batch_major_unpacked": 2}
PADDED_IO = 1
# Default math lets cuDNN round float32 to TF32 on tensor cores: measured to see what it buys.
MATHS = {"fma": b.FMA_MATH, "default": b.DEFAULT_MATH}
CALLS = 20


def time_config(handle, shape, algo, layout, math) -> float:
    """Median ms of one cudnnRNNForward with this configuration (raises CudnnError if refused)."""
    from numba import cuda

    n_batch, n_time, input_dim, units = shape
    dropout = DropoutDescriptor()
    dropout.set_none(handle)
    rnn = RNNDescriptor()
    api.cudnnSetRNNDescriptor_v8(rnn.value, algo, b.LSTM, b.RNN_DOUBLE_BIAS, b.UNIDIRECTIONAL,
                                 b.LINEAR_INPUT, b.DATA_FLOAT, b.DATA_FLOAT, math, input_dim,
                                 units, units, 1, dropout.value, PADDED_IO)
    size = ctypes.c_size_t()
    api.cudnnGetRNNWeightSpaceSize(handle.value, rnn.value, ctypes.byref(size))
    rng = np.random.default_rng(0)
    weights = cuda.to_device(rng.normal(0, 0.05, size.value // 4).astype(np.float32))
    lengths = np.full(n_batch, n_time, np.int32)
    x_desc, y_desc, state = RNNDataDescriptor(), RNNDataDescriptor(), TensorDescriptor()
    for desc, width in ((x_desc, input_dim), (y_desc, units)):
        api.cudnnSetRNNDataDescriptor(desc.value, b.DATA_FLOAT, layout, n_time, n_batch, width,
                                      b.int_array(lengths), None)
    state.set(b.DATA_FLOAT, (1, n_batch, units))
    work, reserve = ctypes.c_size_t(), ctypes.c_size_t()
    api.cudnnGetRNNTempSpaceSizes(handle.value, rnn.value, b.FWD_MODE_INFERENCE, x_desc.value,
                                  ctypes.byref(work), ctypes.byref(reserve))
    buffers = [cuda.to_device(rng.normal(size=n_batch * n_time * input_dim).astype(np.float32)),
               cuda.device_array(n_batch * n_time * units, np.float32),
               cuda.device_array(max(work.value, 1), np.uint8),
               cuda.device_array(max(reserve.value, 1), np.uint8)]
    d_lengths = cuda.to_device(lengths)
    x, y, work_space, reserve_space = (a.device_ctypes_pointer.value for a in buffers)

    def call():
        api.cudnnRNNForward(handle.value, rnn.value, b.FWD_MODE_INFERENCE,
                            d_lengths.device_ctypes_pointer.value, x_desc.value, x, y_desc.value,
                            y, state.value, None, None, state.value, None, None, size.value,
                            weights.device_ctypes_pointer.value, work.value, work_space,
                            reserve.value, reserve_space)
        cuda.synchronize()

    times = time_call(call, CALLS)
    for resource in (x_desc, y_desc, state, rnn, dropout):
        resource.close()
    return 1e3 * float(np.median(times))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    handle = Handle()
    columns = [(a, l, m) for a in ALGOS for l in LAYOUTS for m in MATHS]
    lines = ["| shape | " + " | ".join(f"{a} {l} {m}" for a, l, m in columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for name, shape in SHAPES.items():
        cells = []
        for a, l, m in columns:
            try:
                cells.append(f"{time_config(handle, shape, ALGOS[a], LAYOUTS[l], MATHS[m]):.3f}")
            except Exception as err:  # cuDNN refuses some combinations: say which and why
                cells.append(f"refused ({str(err)[:60]})")
        lines.append(f"| {name} {shape} | " + " | ".join(cells) + " |")
        (args.out / "cudnn_configs.md").write_text("\n".join(lines) + "\n")
        print(lines[-1], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
