"""The cuDNN path's elementwise kernels, one thread per output element (lstmgen.cudnn.sequences
says what they compute and why). A module of its own so that numba.cuda is imported only when a
call runs on cuDNN."""

from numba import cuda


@cuda.jit(cache=True)
def to_cudnn(x, lengths, input_mask, go_backwards, time_major, out):
    """x [N, T, C] ([T, N, C] when time_major) in; lengths [N] int32 in; input_mask [N, C] in, or
    [0, 0] for none; out [N, T, C] out: cuDNN's padded batch-major input."""
    i = cuda.grid(1)
    n_batch, n_time, n_in = out.shape
    if i >= n_batch * n_time * n_in:
        return
    n, t, c = i // (n_time * n_in), (i // n_in) % n_time, i % n_in
    source = t
    if go_backwards:
        # x[n, L-1-t] at step t < L; steps past L are padding cuDNN ignores (x[n, 0] there).
        source = max(lengths[n] - 1 - t, 0)
    value = x[source, n, c] if time_major else x[n, source, c]
    if input_mask.shape[0] > 0:
        value *= input_mask[n, c]
    out[n, t, c] = value


@cuda.jit(cache=True)
def keras_sequence(y, hy, lengths, go_backwards, zero_output, time_major, out):
    """y [N, T, H] and hy [N, H] in (cuDNN's); lengths [N] int32 in; out [N, T, H] ([T, N, H] when
    time_major) out: the layer's return_sequences output."""
    i = cuda.grid(1)
    n_batch, n_time, units = y.shape
    if i >= n_batch * n_time * units:
        return
    n, k, h = i // (n_time * units), (i // units) % n_time, i % units
    length = lengths[n]
    value = 0.0  # stored as y's type; exact for every float32 value
    if go_backwards:
        # Processing step k shows cuDNN's step k - (T - L); before that, zeros.
        source = k - (n_time - length)
        if source >= 0:
            value = y[n, source, h]
    elif k < length:
        value = y[n, k, h]
    elif not zero_output:
        value = hy[n, h]
    if time_major:
        out[k, n, h] = value
    else:
        out[n, k, h] = value


@cuda.jit(cache=True)
def last_output(hy, lengths, n_time, out):
    """hy [N, H] in; lengths [N] int32 in; out [N, H] out: hy, zeros where a sample's last step
    is masked (forward with zero_output_for_mask)."""
    i = cuda.grid(1)
    n_batch, units = out.shape
    if i >= n_batch * units:
        return
    n, h = i // units, i % units
    out[n, h] = hy[n, h] if lengths[n] == n_time else 0.0
