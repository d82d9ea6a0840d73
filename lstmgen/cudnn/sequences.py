"""Keras's masked-LSTM answer from cuDNN's padded one, on the device.

cuDNN runs sample n over its first lengths[n] steps of a padded batch-major input, zero-fills y
after them, and returns the states after the last valid step. Keras's generic semantics, which
every lstmgen target gives, differ only in what stands at masked steps, so the conversion is
exact for a strictly right-padded mask:
- forward: a masked step outputs the previous output (the final h), or zeros with
  zero_output_for_mask, which also zeroes the return_sequences=False output of a sample whose
  last step is masked;
- go_backwards: Keras sees the masked tail first, so the sequence starts with T - L zero outputs
  and then cuDNN's outputs over the valid steps reversed (input reversed within its length).
Input dropout (one [N, C] mask for every step) is applied on the way in. Where nothing changes
(batch-major, forward, no dropout; every sample full length) the arrays pass through untouched.
The kernels (sequence_kernels) are elementwise, compiled by numba.cuda at their first use.
Glossary: T time steps, N batch, C input features, H units, L = lengths[n].
"""

import numpy as np

THREADS_PER_BLOCK = 256


def lengths_from_mask(mask, n_batch: int, n_time: int) -> np.ndarray:
    """[N] int32 valid steps per sample; every step when there is no mask."""
    if mask is None:
        return np.full(n_batch, n_time, np.int32)
    return np.asarray(mask, dtype=bool).sum(axis=1).astype(np.int32)


def to_cudnn(spec, x, d_lengths, input_mask=None):
    """cuDNN's padded batch-major input [N, T, C] from the layer's device x ([T, N, C] when
    time_major), reversed within each length (device int32 [N]) for go_backwards, times the input
    dropout mask ([N, C] on the device, or None)."""
    if not (spec.time_major or spec.go_backwards or input_mask is not None):
        return x
    from numba import cuda

    n_time, n_batch = (x.shape[0], x.shape[1]) if spec.time_major else (x.shape[1], x.shape[0])
    out = cuda.device_array((n_batch, n_time, x.shape[2]), x.dtype)
    mask = input_mask if input_mask is not None else cuda.device_array((0, 0), x.dtype)
    _launch(_kernels().to_cudnn, out.size, x, d_lengths, mask, spec.go_backwards, spec.time_major, out)
    return out


def from_cudnn(spec, y, hy, lengths, d_lengths):
    """The layer's device output from cuDNN's y [N, T, H] and final h [N, H] (device arrays);
    the lengths both on the host (which kernel, if any) and on the device (for the kernel)."""
    from numba import cuda

    n_batch, n_time, units = y.shape
    full = bool((lengths == n_time).all())
    if not spec.return_sequences:
        if full or spec.go_backwards or not spec.zero_output_for_mask:
            return hy  # backwards, the last processed step (time 0) is always valid
        out = cuda.device_array((n_batch, units), hy.dtype)
        _launch(_kernels().last_output, out.size, hy, d_lengths, n_time, out)
        return out
    if full and not (spec.go_backwards or spec.time_major):
        return y
    out = cuda.device_array((n_time, n_batch, units) if spec.time_major else y.shape, y.dtype)
    _launch(_kernels().keras_sequence, out.size, y, hy, d_lengths, spec.go_backwards,
            spec.zero_output_for_mask, spec.time_major, out)
    return out


def _kernels():
    """lstmgen.cudnn.sequence_kernels, imported at first use (it imports numba.cuda)."""
    from lstmgen.cudnn import sequence_kernels

    return sequence_kernels


def _launch(kernel, size: int, *args) -> None:
    if size:
        kernel[(size + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK, THREADS_PER_BLOCK](*args)
