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


class CudnnForward:
    """cuDNN state for one built layer: handle, RNN descriptor and weight space, made once;
    data descriptors set per call; work and reserve space grown when a call needs more."""

    def __init__(self, spec):
        from numba import cuda

        self._cuda = cuda
        self.spec = spec
        self._dtype = np.dtype(spec.dtype)
        self._data_type = b.DATA_FLOAT if spec.dtype == "float32" else b.DATA_DOUBLE
        self._handle = Handle()
        self._dropout = DropoutDescriptor()
        self._dropout.set_none(self._handle)
        self._rnn = RNNDescriptor()
        self._rnn.set_lstm(self._data_type, spec.input_dim, spec.units, self._dropout)
        size = ctypes.c_size_t()
        api.cudnnGetRNNWeightSpaceSize(self._handle.value, self._rnn.value, ctypes.byref(size))
        self._weight_space = cuda.device_array(size.value, np.uint8)
        self._layout = layout_from_cudnn(self._handle, self._rnn, size.value,
                                         _pointer(self._weight_space), self._dtype.itemsize)
        self._packed = None  # the layer's weight list last packed; repacked when it changes
        self._x_desc, self._y_desc = RNNDataDescriptor(), RNNDataDescriptor()
        self._state_desc = TensorDescriptor()  # [1, N, H], for h and c alike
        self._work = self._reserve = None

    def __call__(self, weights, x, lengths, h0, c0, input_mask=None):
        """The layer's device (output, h, c) for device x in the layer's layout.

        weights: the layer's host [kernel [C, 4H], recurrent_kernel [H, 4H], bias [4H]].
        lengths: host [N] int32 valid steps per sample (a right-padded mask's row sums).
        h0, c0: device [N, H]. input_mask: device [N, C] dropout multipliers shared by every
        step, or None; with one, cuDNN runs in training mode (as Keras's dropout does).
        """
        spec, cuda = self.spec, self._cuda
        if weights is not self._packed:
            bias = weights[2]
            flat = pack(self._layout, weights[0], weights[1], bias, np.zeros_like(bias), self._dtype)
            self._weight_space.copy_to_device(flat.view(np.uint8))
            self._packed = weights
        n_batch, n_time = len(lengths), (x.shape[0] if spec.time_major else x.shape[1])
        d_lengths = cuda.to_device(lengths)
        d_x = to_cudnn(spec, x, d_lengths, input_mask)
        mode = b.FWD_MODE_INFERENCE if input_mask is None else b.FWD_MODE_TRAINING
        self._x_desc.set_batch_major(self._data_type, lengths, n_time, spec.input_dim)
        self._y_desc.set_batch_major(self._data_type, lengths, n_time, spec.units)
        self._state_desc.set(self._data_type, (1, n_batch, spec.units))
        self._size_temp_space(mode)
        d_y = cuda.device_array((n_batch, n_time, spec.units), self._dtype)
        d_h, d_c = (cuda.device_array((n_batch, spec.units), self._dtype) for _ in range(2))
        api.cudnnRNNForward(
            self._handle.value, self._rnn.value, mode, _pointer(d_lengths),
            self._x_desc.value, _pointer(d_x), self._y_desc.value, _pointer(d_y),
            self._state_desc.value, _pointer(h0), _pointer(d_h),
            self._state_desc.value, _pointer(c0), _pointer(d_c),
            self._weight_space.size, _pointer(self._weight_space),
            self._work.size, _pointer(self._work), self._reserve.size, _pointer(self._reserve))
        return from_cudnn(spec, d_y, d_h, lengths, d_lengths), d_h, d_c

    def _size_temp_space(self, mode: int) -> None:
        """Work and reserve space for the data descriptors as set now. cuDNN's sizes may depend on
        the lengths too, so they are asked every call (a host call); buffers only ever grow."""
        work, reserve = ctypes.c_size_t(), ctypes.c_size_t()
        api.cudnnGetRNNTempSpaceSizes(self._handle.value, self._rnn.value, mode, self._x_desc.value,
                                      ctypes.byref(work), ctypes.byref(reserve))
        if self._work is None or self._work.size < work.value:
            self._work = self._cuda.device_array(work.value, np.uint8)
        if self._reserve is None or self._reserve.size < reserve.value:
            self._reserve = self._cuda.device_array(reserve.value, np.uint8)

    def close(self) -> None:
        """Free the descriptors and the handle now (device memory goes with its arrays)."""
        for resource in (self._x_desc, self._y_desc, self._state_desc, self._rnn, self._dropout,
                         self._handle):
            resource.close()


def _pointer(array):
    """The device address of a Numba device array, or None for an empty one."""
    return array.device_ctypes_pointer.value if array.size else None
