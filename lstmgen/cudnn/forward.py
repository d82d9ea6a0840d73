"""A layer's calls on cuDNN: descriptors and buffers made once, cudnnRNNForward per call, on the
device from input to output.

Without a GPU nothing here can execute (cudnnCreate fails); tests/test_cudnn_gpu.py runs it on one.
Glossary: T time steps, N batch, C input features, H units.
"""

import ctypes

import numpy as np

from lstmgen.cuda_runtime import DeviceRunner, host_array
from lstmgen.cudnn import bindings as b
from lstmgen.cudnn.bindings import api
from lstmgen.cudnn.descriptors import (DropoutDescriptor, Handle, RNNDataDescriptor, RNNDescriptor,
                                       TensorDescriptor)
from lstmgen.cudnn.sequences import from_cudnn, lengths_from_mask, to_cudnn
from lstmgen.cudnn.weights import layout_from_cudnn, pack


class CudnnRunner(DeviceRunner):
    """A layer's calls on cuDNN: what DeviceRunner does with inputs, states and results, and
    cudnnRNNForward in between. The layer sends here only calls cuDNN can run."""

    def __init__(self, layer):
        super().__init__(layer)
        self._forward = None  # made for the layer's spec once it is built, remade if it changes

    def _run(self, x, mask, h0, c0, input_masks, recurrent_masks) -> tuple:
        spec = self._layer.spec
        if self._forward is None or self._forward.spec is not spec:
            self._forward = CudnnForward(spec)
        n_batch, n_time = (x.shape[1], x.shape[0]) if spec.time_major else x.shape[:2]
        # A right-padded mask is all cuDNN needs: each sample's length.
        lengths = lengths_from_mask(None if mask is None else host_array(mask), n_batch, n_time)
        return self._forward(self._layer._weights, x, lengths, h0, c0,
                             None if input_masks is None else input_masks[0])


# cudnnRNNForward alone on an H200 (benchmarks/cudnn_configs.py, BENCHMARKS.md): the persistent
# algorithm ran batch 1 at H = 128 ten times faster than the standard one and 8 rows at H = 512
# 1.3x faster; at 32 rows or more, or H = 1024, the standard one won by 1.3-3x. Only for float32
# inference over whole sequences: variable lengths and double precision were not measured.
PERSISTENT_MAX_BATCH = 8
PERSISTENT_MAX_UNITS = 512


def choose_algo(spec, lengths, training: bool) -> int:
    """cuDNN's algorithm for one call: persistent for small float32 inference batches whose
    samples all run every step, else standard."""
    n_time = int(lengths.max(initial=0))
    persistent = (spec.dtype == "float32" and not training and len(lengths) <= PERSISTENT_MAX_BATCH
                  and spec.units <= PERSISTENT_MAX_UNITS and bool((lengths == n_time).all()))
    return b.RNN_ALGO_PERSIST_STATIC if persistent else b.RNN_ALGO_STANDARD


class _Algorithm:
    """An RNN descriptor for one cudnnRNNAlgo_t and its weight space, which it lays out."""

    def __init__(self, handle, spec, data_type: int, dropout, algo: int, itemsize: int):
        from numba import cuda

        self.rnn = RNNDescriptor()
        self.rnn.set_lstm(data_type, spec.input_dim, spec.units, dropout, algo)
        size = ctypes.c_size_t()
        api.cudnnGetRNNWeightSpaceSize(handle.value, self.rnn.value, ctypes.byref(size))
        self.weight_space = cuda.device_array(size.value, np.uint8)
        self.layout = layout_from_cudnn(handle, self.rnn, size.value, _pointer(self.weight_space),
                                        itemsize)
        self.packed = None  # the layer's weight list last packed; repacked when it changes


class CudnnForward:
    """cuDNN state for one built layer: handle, and per algorithm an RNN descriptor and weight
    space, made at its first use; data descriptors set per call; work and reserve space grown
    when a call needs more."""

    def __init__(self, spec):
        from numba import cuda

        self._cuda = cuda
        self.spec = spec
        self._dtype = np.dtype(spec.dtype)
        self._data_type = b.DATA_FLOAT if spec.dtype == "float32" else b.DATA_DOUBLE
        self._handle = Handle()
        self._dropout = DropoutDescriptor()
        self._dropout.set_none(self._handle)
        self._algorithms = {}  # cudnnRNNAlgo_t -> _Algorithm
        self._x_desc, self._y_desc = RNNDataDescriptor(), RNNDataDescriptor()
        self._state_desc = TensorDescriptor()  # [1, N, H], for h and c alike
        self._work = self._reserve = None

    def _algorithm(self, algo: int, weights) -> _Algorithm:
        """The algorithm's descriptor with the layer's weights in its weight space."""
        if algo not in self._algorithms:
            self._algorithms[algo] = _Algorithm(self._handle, self.spec, self._data_type,
                                                self._dropout, algo, self._dtype.itemsize)
        chosen = self._algorithms[algo]
        if weights is not chosen.packed:
            bias = weights[2]
            flat = pack(chosen.layout, weights[0], weights[1], bias, np.zeros_like(bias), self._dtype)
            chosen.weight_space.copy_to_device(flat.view(np.uint8))
            chosen.packed = weights
        return chosen

    def __call__(self, weights, x, lengths, h0, c0, input_mask=None):
        """The layer's device (output, h, c) for device x in the layer's layout.

        weights: the layer's host [kernel [C, 4H], recurrent_kernel [H, 4H], bias [4H]].
        lengths: host [N] int32 valid steps per sample (a right-padded mask's row sums).
        h0, c0: device [N, H]. input_mask: device [N, C] dropout multipliers shared by every
        step, or None; with one, cuDNN runs in training mode (as Keras's dropout does).
        """
        spec, cuda = self.spec, self._cuda
        training = input_mask is not None
        algorithm = self._algorithm(choose_algo(spec, lengths, training), weights)
        n_batch, n_time = len(lengths), (x.shape[0] if spec.time_major else x.shape[1])
        d_lengths = cuda.to_device(lengths)
        d_x = to_cudnn(spec, x, d_lengths, input_mask)
        mode = b.FWD_MODE_TRAINING if training else b.FWD_MODE_INFERENCE
        self._x_desc.set_batch_major(self._data_type, lengths, n_time, spec.input_dim)
        self._y_desc.set_batch_major(self._data_type, lengths, n_time, spec.units)
        self._state_desc.set(self._data_type, (1, n_batch, spec.units))
        self._size_temp_space(algorithm.rnn, mode)
        d_y = cuda.device_array((n_batch, n_time, spec.units), self._dtype)
        d_h, d_c = (cuda.device_array((n_batch, spec.units), self._dtype) for _ in range(2))
        api.cudnnRNNForward(
            self._handle.value, algorithm.rnn.value, mode, _pointer(d_lengths),
            self._x_desc.value, _pointer(d_x), self._y_desc.value, _pointer(d_y),
            self._state_desc.value, _pointer(h0), _pointer(d_h),
            self._state_desc.value, _pointer(c0), _pointer(d_c),
            algorithm.weight_space.size, _pointer(algorithm.weight_space),
            self._work.size, _pointer(self._work), self._reserve.size, _pointer(self._reserve))
        return from_cudnn(spec, d_y, d_h, lengths, d_lengths), d_h, d_c

    def _size_temp_space(self, rnn, mode: int) -> None:
        """Work and reserve space for the data descriptors as set now. cuDNN's sizes may depend on
        the lengths too, so they are asked every call (a host call); buffers only ever grow."""
        work, reserve = ctypes.c_size_t(), ctypes.c_size_t()
        api.cudnnGetRNNTempSpaceSizes(self._handle.value, rnn.value, mode, self._x_desc.value,
                                      ctypes.byref(work), ctypes.byref(reserve))
        if self._work is None or self._work.size < work.value:
            self._work = self._cuda.device_array(work.value, np.uint8)
        if self._reserve is None or self._reserve.size < reserve.value:
            self._reserve = self._cuda.device_array(reserve.value, np.uint8)

    def close(self) -> None:
        """Free the descriptors and the handle now (device memory goes with its arrays)."""
        rnns = tuple(algorithm.rnn for algorithm in self._algorithms.values())
        for resource in (self._x_desc, self._y_desc, self._state_desc, *rnns, self._dropout,
                         self._handle):
            resource.close()


def _pointer(array):
    """The device address of a Numba device array, or None for an empty one."""
    return array.device_ctypes_pointer.value if array.size else None
