"""Keras's masked-LSTM answer from cuDNN's padded one (host side, plain NumPy).

cuDNN runs sample n over its first lengths[n] steps, zero-fills y after them, and returns the
states after the last valid step. Keras's generic semantics, which every lstmgen target gives,
differ only in what stands at masked steps, so the conversion is exact for a strictly
right-padded mask:
- forward: a masked step outputs the previous output (the final h), or zeros with
  zero_output_for_mask, which also zeroes the return_sequences=False output of a sample whose
  last step is masked;
- go_backwards: Keras sees the masked tail first, so the sequence starts with T - L zero outputs
  and then cuDNN's outputs over the valid steps reversed (input reversed within its length).
Glossary: T time steps, N batch, C input features, H units, L = lengths[n].
"""

import numpy as np


def lengths_from_mask(mask, n_batch: int, n_time: int) -> np.ndarray:
    """[N] int32 valid steps per sample; every step when there is no mask."""
    if mask is None:
        return np.full(n_batch, n_time, np.int32)
    return np.asarray(mask, dtype=bool).sum(axis=1).astype(np.int32)


def to_cudnn(spec, x, lengths) -> np.ndarray:
    """Padded batch-major input [N, T, C] from the layer's x ([T, N, C] when time_major)."""
    x = x.transpose(1, 0, 2) if spec.time_major else x
    if not spec.go_backwards:
        return np.ascontiguousarray(x)
    return np.ascontiguousarray(_reverse_within(x, lengths))


def from_cudnn(spec, y, hy, lengths):
    """The layer's output from cuDNN's y [N, T, H] and final h [N, H]."""
    n_time = y.shape[1]
    steps = np.arange(n_time)
    if not spec.return_sequences:
        if spec.go_backwards or not spec.zero_output_for_mask:
            return hy.copy()  # backwards, the last processed step (time 0) is always valid
        return np.where((lengths == n_time)[:, None], hy, 0).astype(hy.dtype)
    if spec.go_backwards:
        # Processing step k shows cuDNN's step k - (T - L); before that, zeros.
        source = steps[None, :] - (n_time - lengths)[:, None]
        out = np.take_along_axis(y, np.clip(source, 0, None)[..., None], axis=1)
        out = np.where((source >= 0)[..., None], out, 0).astype(y.dtype)
    else:
        fill = 0 if spec.zero_output_for_mask else hy[:, None, :]
        out = np.where((steps[None, :] < lengths[:, None])[..., None], y, fill).astype(y.dtype)
    return out.transpose(1, 0, 2).copy() if spec.time_major else out


def _reverse_within(x, lengths):
    """x[n, L-1-j] at step j < L; steps past L (padding cuDNN ignores) keep x[n, 0]."""
    steps = np.arange(x.shape[1])
    source = np.clip(lengths[:, None] - 1 - steps[None, :], 0, None)
    return np.take_along_axis(x, source[..., None], axis=1)
