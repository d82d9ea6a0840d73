"""One layer's cuDNN forward pass: descriptors and buffers made once, cudnnRNNForward per call.

Unverified until it runs on a GPU: nothing here can execute without one (cudnnCreate fails).
Glossary: T time steps, N batch, C input features, H units.
"""

import ctypes

import numpy as np

from lstmgen.cudnn import bindings as b
from lstmgen.cudnn.bindings import api
from lstmgen.cudnn.descriptors import (DropoutDescriptor, Handle, RNNDataDescriptor, RNNDescriptor,
                                       TensorDescriptor)
from lstmgen.cudnn.sequences import from_cudnn, lengths_from_mask, to_cudnn
from lstmgen.cudnn.weights import layout_from_cudnn, pack


class CudnnForward:
    """cuDNN state for one built layer: handle, RNN descriptor and weight space, made once;
    data descriptors and work/reserve space remade only when the batch shape or mode changes."""

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
        self._temp_key = None  # (N, T, mode) the work and reserve space were sized for
        self._work = self._reserve = None

    def __call__(self, weights, x, mask, h0, c0, input_mask=None, training=False):
        """The layer's (output, h, c) for x in the layer's layout and a right-padded mask.

        weights: the layer's [kernel [C, 4H], recurrent_kernel [H, 4H], bias [4H]].
        input_mask: [N, C] dropout multipliers shared by every step, or None.
        """
        spec, cuda = self.spec, self._cuda
        if weights is not self._packed:
            bias = weights[2]
            flat = pack(self._layout, weights[0], weights[1], bias, np.zeros_like(bias), self._dtype)
            self._weight_space.copy_to_device(flat.view(np.uint8))
            self._packed = weights
        n_batch, n_time = (x.shape[1], x.shape[0]) if spec.time_major else x.shape[:2]
        lengths = lengths_from_mask(mask, n_batch, n_time)
        x = to_cudnn(spec, x, lengths)
        if input_mask is not None:
            x = x * input_mask[:, None, :].astype(self._dtype)
        mode = b.FWD_MODE_TRAINING if training else b.FWD_MODE_INFERENCE
        self._x_desc.set_batch_major(self._data_type, lengths, n_time, spec.input_dim)
        self._y_desc.set_batch_major(self._data_type, lengths, n_time, spec.units)
        self._state_desc.set(self._data_type, (1, n_batch, spec.units))
        self._size_temp_space(n_batch, n_time, mode)
        d_x, d_h0, d_c0 = (cuda.to_device(np.ascontiguousarray(a, self._dtype)) for a in (x, h0, c0))
        d_lengths = cuda.to_device(lengths)
        d_y = cuda.device_array((n_batch, n_time, spec.units), self._dtype)
        d_h, d_c = (cuda.device_array((n_batch, spec.units), self._dtype) for _ in range(2))
        api.cudnnRNNForward(
            self._handle.value, self._rnn.value, mode, _pointer(d_lengths),
            self._x_desc.value, _pointer(d_x), self._y_desc.value, _pointer(d_y),
            self._state_desc.value, _pointer(d_h0), _pointer(d_h),
            self._state_desc.value, _pointer(d_c0), _pointer(d_c),
            self._weight_space.size, _pointer(self._weight_space),
            self._work.size, _pointer(self._work), self._reserve.size, _pointer(self._reserve))
        h, c = d_h.copy_to_host(), d_c.copy_to_host()
        return from_cudnn(spec, d_y.copy_to_host(), h, lengths), h, c

    def _size_temp_space(self, n_batch: int, n_time: int, mode: int) -> None:
        if self._temp_key == (n_batch, n_time, mode):
            return
        work, reserve = ctypes.c_size_t(), ctypes.c_size_t()
        api.cudnnGetRNNTempSpaceSizes(self._handle.value, self._rnn.value, mode, self._x_desc.value,
                                      ctypes.byref(work), ctypes.byref(reserve))
        self._work = self._cuda.device_array(work.value, np.uint8)
        self._reserve = self._cuda.device_array(reserve.value, np.uint8)
        self._temp_key = (n_batch, n_time, mode)

    def close(self) -> None:
        """Free the descriptors and the handle now (device memory goes with its arrays)."""
        for resource in (self._x_desc, self._y_desc, self._state_desc, self._rnn, self._dropout,
                         self._handle):
            resource.close()


def _pointer(array):
    """The device address of a Numba device array, or None for an empty one."""
    return array.device_ctypes_pointer.value if array.size else None
