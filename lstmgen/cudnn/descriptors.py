"""cuDNN handles and descriptors as small objects that free themselves deterministically.

Each is destroyed by `close()`, at the end of a `with` block, or when it is garbage-collected,
whichever comes first, and only once.
"""

import ctypes
import weakref

from lstmgen.cudnn import bindings as b
from lstmgen.cudnn.bindings import api, int_array


class _Resource:
    _create = _destroy = ""  # the cuDNN functions that make and free this kind of object

    def __init__(self):
        value = ctypes.c_void_p()
        getattr(api, self._create)(ctypes.byref(value))
        self.value = value
        self._finalizer = weakref.finalize(self, getattr(api, self._destroy), value)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class Handle(_Resource):
    """A cuDNN context (cudnnCreate needs a GPU). Work runs on the default CUDA stream."""

    _create, _destroy = "cudnnCreate", "cudnnDestroy"


class TensorDescriptor(_Resource):
    _create, _destroy = "cudnnCreateTensorDescriptor", "cudnnDestroyTensorDescriptor"

    def set(self, data_type: int, dims) -> None:
        """A packed row-major tensor of shape `dims`."""
        strides = [1]
        for size in reversed(dims[1:]):
            strides.insert(0, strides[0] * size)
        api.cudnnSetTensorNdDescriptor(self.value, data_type, len(dims), int_array(dims),
                                       int_array(strides))

    def dims(self, max_dims: int = 8) -> tuple:
        data_type, count = ctypes.c_int(), ctypes.c_int()
        dims, strides = int_array([0] * max_dims), int_array([0] * max_dims)
        api.cudnnGetTensorNdDescriptor(self.value, max_dims, ctypes.byref(data_type),
                                       ctypes.byref(count), dims, strides)
        return tuple(dims[:count.value])


class DropoutDescriptor(_Resource):
    _create, _destroy = "cudnnCreateDropoutDescriptor", "cudnnDestroyDropoutDescriptor"

    def set_none(self, handle: Handle) -> None:
        """No dropout: lstmgen applies Keras's input dropout itself, and one layer has no other."""
        api.cudnnSetDropoutDescriptor(self.value, handle.value, 0.0, None, 0, 0)


class RNNDescriptor(_Resource):
    _create, _destroy = "cudnnCreateRNNDescriptor", "cudnnDestroyRNNDescriptor"

    def set_lstm(self, data_type: int, input_size: int, units: int, dropout=None) -> None:
        """One unidirectional LSTM layer with two biases per gate and padded I/O.

        float32 uses FMA math only, so no TF32 tensor-core rounding makes it differ from the
        CPU target beyond float32 rounding. The standard algorithm, not a persistent one: on an
        H200 the persistent ones (PyTorch takes PERSIST_STATIC_SMALL_H for small H) ran batches
        of 1-8 up to ten times faster, but their float32 outputs were up to 5e-5 relative off
        the float64 reference, beyond the 2e-5 every target is held to (BENCHMARKS.md).
        """
        math = b.FMA_MATH if data_type == b.DATA_FLOAT else b.DEFAULT_MATH
        api.cudnnSetRNNDescriptor_v8(
            self.value, b.RNN_ALGO_STANDARD, b.LSTM, b.RNN_DOUBLE_BIAS, b.UNIDIRECTIONAL,
            b.LINEAR_INPUT, data_type, data_type, math, input_size, units, units, 1,
            None if dropout is None else dropout.value, b.RNN_PADDED_IO_ENABLED)


class RNNDataDescriptor(_Resource):
    _create, _destroy = "cudnnCreateRNNDataDescriptor", "cudnnDestroyRNNDataDescriptor"

    def set_batch_major(self, data_type: int, lengths, max_length: int, vector_size: int) -> None:
        """Padded [N, T, vector_size] data; steps past a sample's length are filled with zeros."""
        fill = (ctypes.c_float if data_type == b.DATA_FLOAT else ctypes.c_double)(0.0)
        api.cudnnSetRNNDataDescriptor(self.value, data_type, b.RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED,
                                      max_length, len(lengths), vector_size, int_array(lengths),
                                      ctypes.byref(fill))
