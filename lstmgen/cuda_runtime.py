"""The GPU at run time: is there one, a layer's calls on it (the inputs, states and results that
the CUDA and cuDNN targets share: DeviceRunner), and the CUDA target's kernels (CudaRunner).

Weights, states and scratch stay on the device between calls. Inputs that are already on the
device (Numba device arrays, or anything with `__cuda_array_interface__`: CuPy arrays, PyTorch
CUDA tensors) are used without a copy and give device results; host inputs give host results.
numba.cuda is imported only here and only when asked, so CPU-only use pays nothing for it.
"""

import importlib.util
import os
from abc import ABC, abstractmethod
from functools import lru_cache
from typing import Optional

import numpy as np

from lstmgen.cache import VARIANTS
from lstmgen.devices import cuda_unusable
from lstmgen.lower.cuda import choose_strategy, cuda_entry_points
from lstmgen.lower.plan import VariantKey


@lru_cache(maxsize=None)
def unavailable_reason() -> Optional[str]:
    """Why this process cannot launch CUDA kernels, or None. The simulator counts as a GPU."""
    if importlib.util.find_spec("numba_cuda") is None:
        return "numba-cuda is not installed (pip install 'lstmgen[cuda]')"
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return None
    why_not = cuda_unusable()
    if why_not:
        return why_not
    from numba import cuda

    if not cuda.is_available():
        return "no usable CUDA GPU (numba.cuda.is_available() is False)"
    return None


def is_device_array(value) -> bool:
    return hasattr(value, "__cuda_array_interface__") or hasattr(value, "copy_to_host")


def _device(value):
    """A Numba device array viewing `value` (no copy), or a copy of a host array."""
    from numba import cuda

    if hasattr(value, "copy_to_host"):
        return value
    if hasattr(value, "__cuda_array_interface__"):
        return cuda.as_cuda_array(value)
    return cuda.to_device(np.ascontiguousarray(value))


def _copy(array):
    from numba import cuda

    out = cuda.device_array_like(array)
    out.copy_to_device(array)
    return out


def _checked_device(name: str, layer, value, shape: tuple, dtype):
    """A device argument as it is, if it has the shape, dtype and layout the kernels take."""
    array = _device(value)
    if tuple(array.shape) != tuple(shape) or array.dtype != np.dtype(dtype):
        raise ValueError(f"{name} for layer {layer.name!r}: device array of shape {tuple(array.shape)} "
                         f"dtype {array.dtype}, expected shape {tuple(shape)} dtype {np.dtype(dtype)} "
                         "(device arrays are not cast or copied)")
    if not array.is_c_contiguous():
        raise ValueError(f"{name} for layer {layer.name!r}: device array must be C-contiguous")
    return array


def host_array(value) -> np.ndarray:
    """A host copy of a device array (Numba's, or any `__cuda_array_interface__` object); a host
    array as it is."""
    return _device(value).copy_to_host() if is_device_array(value) else np.asarray(value)


class DeviceRunner(ABC):
    """One layer's calls on the GPU, computed by a subclass's `_run`.

    Device inputs are used without a copy and give device results; host inputs are copied there
    and give host results. A stateful layer's states stay on the device between calls.
    """

    def __init__(self, layer):
        self._layer = layer
        self._zeros = {}  # batch -> device zero [N, H], the h0 and c0 of a non-stateful call

    def __call__(self, inputs, mask=None, training=False, initial_state=None):
        layer = self._layer
        on_device = is_device_array(inputs)
        x = inputs if on_device else layer._check_inputs(inputs)
        if not layer.built:
            layer.build(tuple(x.shape))
        spec = layer.spec
        if len(x.shape) != 3 or x.shape[2] != spec.input_dim:
            raise ValueError(f"inputs for layer {layer.name!r}: shape {tuple(x.shape)}, the layer "
                             f"takes 3 dimensions with {spec.input_dim} features")
        x = _checked_device("inputs", layer, x, x.shape, layer.dtype)
        n_batch, n_time = (x.shape[1], x.shape[0]) if spec.time_major else (x.shape[0], x.shape[1])
        if mask is not None:
            mask = (_checked_device("mask", layer, mask, (n_batch, n_time), np.bool_)
                    if is_device_array(mask) else layer._check_mask(mask, n_batch, n_time))
        h0, c0 = self._initial_state(initial_state, n_batch)
        input_masks, recurrent_masks = layer._call_dropout_masks(n_batch, training)
        output, h, c = self._run(x, mask, h0, c0,
                                 None if input_masks is None else _device(input_masks),
                                 None if recurrent_masks is None else _device(recurrent_masks))
        if spec.stateful:
            layer._states = [_copy(h), _copy(c)]  # on the device; `layer.states` copies them to the host
        result = [output, h, c] if spec.return_state else [output]
        if not on_device:
            result = [r.copy_to_host() for r in result]
        if spec.activity_regularizer is not None:
            layer._record_activity_loss([r if isinstance(r, np.ndarray) else r.copy_to_host()
                                         for r in result])
        else:
            layer._activity_losses = []
        return result if spec.return_state else result[0]

    @abstractmethod
    def _run(self, x, mask, h0, c0, input_masks, recurrent_masks) -> tuple:
        """(output, h, c) on the device for device x, h0, c0, the mask [N, T] (on the device or
        the host, as the caller gave it) or None, and the call's dropout masks ([K, N, C] and
        [K, N, H], or None): CudaRunner's kernels, or CudnnRunner's cudnnRNNForward."""

    def _initial_state(self, initial_state, n_batch: int) -> tuple:
        layer, units = self._layer, self._layer.spec.units
        if initial_state is not None and all(is_device_array(s) for s in initial_state):
            if len(initial_state) != 2:
                raise ValueError(f"initial_state for layer {layer.name!r}: expected a list [h, c]")
            return tuple(_checked_device(f"initial_state[{i}]", layer, s, (n_batch, units), layer.dtype)
                         for i, s in enumerate(initial_state))
        if initial_state is None and not layer.spec.stateful:
            if n_batch not in self._zeros:
                self._zeros[n_batch] = _device(np.zeros((n_batch, units), layer.dtype))
            return self._zeros[n_batch], self._zeros[n_batch]
        return tuple(_device(s) for s in layer._initial_state(initial_state, n_batch))


class CudaRunner(DeviceRunner):
    """The CUDA target's generated kernels; made by the layer's first call on cuda."""

    def __init__(self, layer):
        super().__init__(layer)
        self._uploaded = None  # the layer's weight list that _weights copies
        self._weights = ()
        self._scratch_shape = None
        self._scratch = ()
        self._grids = {}  # entry point -> persistent blocks that fit this GPU (0: none)
        self.strategy = None  # the last call's lower.cuda.Strategy

    def _run(self, x, mask, h0, c0, input_masks, recurrent_masks) -> tuple:
        spec = self._layer.spec
        n_batch, n_time = (x.shape[1], x.shape[0]) if spec.time_major else (x.shape[0], x.shape[1])
        key = VariantKey.from_spec(spec, "cuda")
        module = VARIANTS.get(key)
        entry = next(e for e in cuda_entry_points(key) if e.masked == (mask is not None)
                     and e.training == (input_masks is not None or recurrent_masks is not None))
        values = {"x": x, "h0": h0, "c0": c0, "mask": None if mask is None else _device(mask),
                  "input_masks": input_masks, "recurrent_masks": recurrent_masks,
                  **dict(zip(spec.weight_names, self._device_weights())),
                  **self._buffers(n_batch, n_time)}
        function = getattr(module, entry.name + "_into")
        function(*(values[p] for p in entry.into_params),
                 persistent_blocks=self._persistent_blocks(key, module, entry.name, n_batch))
        return values["output"], values["h"], values["c"]

    def _persistent_blocks(self, key, module, entry_name: str, n_batch: int) -> int:
        from numba import config

        self.strategy = choose_strategy(key, n_batch)
        if self.strategy.name != "persistent":
            return 0
        if config.ENABLE_CUDASIM:
            return 1  # the simulator runs a cooperative grid only as one block (it takes every slice)
        if entry_name not in self._grids:
            self._grids[entry_name] = module.persistent_grid(entry_name)
        if not self._grids[entry_name]:
            self.strategy = type(self.strategy)(
                "per_step", f"the persistent grid of {module.SLICES} blocks does not fit this GPU")
        return self._grids[entry_name]

    def _device_weights(self) -> tuple:
        weights = self._layer._weights
        if self._uploaded is not weights:  # set_weights / apply_constraints make a new list
            self._weights = tuple(_device(w) for w in weights)
            self._uploaded = weights
        return self._weights

    def _buffers(self, n_batch: int, n_time: int) -> dict:
        """Reused scratch zx [N*T, 4H] and hbuf [2, N, H]; fresh results (they are returned)."""
        from numba import cuda

        spec, dtype = self._layer.spec, self._layer.dtype
        units = spec.units
        if self._scratch_shape != (n_batch, n_time):
            self._scratch = (cuda.device_array((n_batch * n_time, 4 * units), dtype),
                             cuda.device_array((2, n_batch, units), dtype))
            self._scratch_shape = (n_batch, n_time)
        if not spec.return_sequences:
            output_shape = (n_batch, units)
        elif spec.time_major:
            output_shape = (n_time, n_batch, units)
        else:
            output_shape = (n_batch, n_time, units)
        return {"zx": self._scratch[0], "hbuf": self._scratch[1],
                "output": cuda.device_array(output_shape, dtype),
                "h": cuda.device_array((n_batch, units), dtype),
                "c": cuda.device_array((n_batch, units), dtype)}
