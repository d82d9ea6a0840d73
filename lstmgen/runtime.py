"""The Keras-like LSTM layer: owns weights, states and dropout RNG, picks the target, runs variants."""

import numpy as np

from contextlib import nullcontext
from functools import cached_property

from lstmgen import batch_threads, blas, native
from lstmgen.blas_threads import single_threaded_blas
from lstmgen.cache import VARIANTS
from lstmgen.devices import unavailable
from lstmgen.lower.cpu import batch_axis, blocked_projection, calls_numpy_blas, cpu_entry_points
from lstmgen.lower.plan import (NOT_PROBED, VariantKey, choose_target, cuda_uncovered_reason,
                                cudnn_ineligible_reason, explain)
from lstmgen.spec import LSTMSpec


class LSTM:
    """`lstmgen.LSTM(units, **keras_kwargs, target="auto")`: a Keras 3 LSTM layer, NumPy in and out.

    Glossary: T time steps, N batch, C input features, H units, P the width of h and the output
    (proj_size, or H without a projection).
    """

    def __init__(self, units, target="auto", name="lstm", **kwargs):
        self.spec = LSTMSpec(units, **kwargs)
        self.name = name
        self._unavailable = _probe_devices(self.spec, target)
        self.target = choose_target(self.spec, target, self._unavailable).target
        self._cudnn = None  # lstmgen.cudnn.forward.CudnnRunner, made by the first call on cuDNN
        self._cuda = None  # lstmgen.cuda_runtime.CudaRunner, made by the first call on cuda
        self._requested_target = target
        self._weights = None
        self._states = None
        self._rng = np.random.default_rng(self.spec.seed)
        # Cached dropout masks ("input", "recurrent"), as tf.keras's DropoutRNNCellMixin keeps them.
        self._dropout_masks = {}
        self._activity_losses = []
        # Scratch of the last call's shape (zx [N*T, 4H], zh [N, 4H]), reused while it repeats.
        self._scratch_shape = None
        self._scratch = ()
        # Looked up once per spec: (unrolled length, masked, training, stepwise) -> _entry's;
        # "panels" -> _projects_in_panels'; "units" -> _units_entry's.
        self._entries = {}

    @property
    def built(self) -> bool:
        return self._weights is not None

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.spec.dtype)

    def build(self, input_shape) -> None:
        """Create weights for inputs of `input_shape` ([N, T, C], or [T, N, C] when time_major)."""
        shape = tuple(input_shape)
        if len(shape) != 3:
            raise ValueError(f"input_shape={shape!r} for layer {self.name!r}: must have 3 entries "
                             f"({'[T, N, C]' if self.spec.time_major else '[N, T, C]'})")
        n_in = shape[-1]
        if self.spec.input_dim not in (None, n_in):
            raise ValueError(f"input_shape={shape!r} for layer {self.name!r}: the spec has "
                             f"input_dim={self.spec.input_dim}, inputs have {n_in} features")
        batch = shape[1] if self.spec.time_major else shape[0]
        changes = {"input_dim": n_in}
        if self.spec.stateful and self.spec.batch_size is None and batch is not None:
            changes["batch_size"] = batch
        self._set_spec(self.spec.replace(**changes))
        spec, units = self.spec, self.spec.units
        bias = None
        if spec.use_bias:
            if spec.unit_forget_bias:
                # Keras: the forget slice is exactly ones; the others come from bias_initializer.
                bias = np.concatenate([
                    spec.bias_initializer((units,), self.dtype, self._rng),
                    np.ones(units, self.dtype),
                    spec.bias_initializer((2 * units,), self.dtype, self._rng)])
            else:
                bias = spec.bias_initializer((4 * units,), self.dtype, self._rng)
        # The cell options' weights: recurrent_bias and peephole from bias_initializer (no forget
        # ones: they are in `bias`), projection [H, P] from kernel_initializer.
        initializers = {"kernel": spec.kernel_initializer, "recurrent_kernel": spec.recurrent_initializer,
                        "recurrent_bias": spec.bias_initializer, "peephole": spec.bias_initializer,
                        "projection": spec.kernel_initializer}
        self._weights = [bias if name == "bias" else initializers[name](shape, self.dtype, self._rng)
                         for name, shape in zip(spec.weight_names, spec.weight_shapes(n_in))]
        self._weights = [np.ascontiguousarray(w, dtype=self.dtype) for w in self._weights]
        if spec.stateful and spec.batch_size is not None:
            self._states = self._zero_states(spec.batch_size)

    def get_weights(self) -> list:
        """[kernel [C, 4H], recurrent_kernel [P, 4H], bias [4H]] (no bias when use_bias=False), then
        recurrent_bias [4H], peephole [3H], projection [H, P] where the spec has them
        (`spec.weight_names`)."""
        return [w.copy() for w in self._weights] if self.built else []

    def set_weights(self, weights) -> None:
        weights = list(weights)
        if not self.built:
            if not weights:
                raise ValueError(f"weights=[] for layer {self.name!r}: expected "
                                 + ", ".join(self.spec.weight_names))
            kernel = np.asarray(weights[0])
            self.build((None, None, kernel.shape[0]) if kernel.ndim == 2 else kernel.shape)
        self._weights = checked_weights(self.name, weights,
                                        self.spec.weight_shapes(self.spec.input_dim), self.dtype)

    @property
    def weights(self) -> list:
        return self.get_weights()

    def _state_shapes(self, batch: int) -> list:
        """[h, c]: [N, P] and [N, H]."""
        return [(batch, self.spec.output_size), (batch, self.spec.units)]

    def _zero_states(self, batch: int) -> list:
        return [np.zeros(shape, self.dtype) for shape in self._state_shapes(batch)]

    @property
    def states(self) -> list:
        """[h, c] of a stateful layer ([None, None] before its batch size is known or when not stateful)."""
        return [_host_copy(s) for s in self._states] if self._states is not None else [None, None]

    def reset_states(self, states=None) -> None:
        """Zeros, or the given arrays (one or a list of two: h [N, P] and c [N, H]), as tf.keras does."""
        if not self.spec.stateful:
            raise AttributeError(f"Layer {self.name!r} must be stateful to reset its states.")
        batch = self.spec.batch_size
        if batch is None:
            raise ValueError(f"Layer {self.name!r} is stateful but does not know its batch size: "
                             "pass batch_size=..., or build or call it once.")
        if states is None:
            self._states = self._zero_states(batch)
            return
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        if len(states) != 2:
            raise ValueError(f"Layer {self.name!r} expects 2 states, but it received "
                             f"{len(states)} state values.")
        new = []
        for index, (value, expected) in enumerate(zip(states, self._state_shapes(batch))):
            array = np.asarray(value)
            if array.shape != expected:
                raise ValueError(f"State {index} is incompatible with layer {self.name!r}: expected "
                                 f"shape={expected} but found shape={array.shape}")
            if array.dtype != self.dtype:
                raise ValueError(f"State {index} is incompatible with layer {self.name!r}: expected "
                                 f"dtype={self.dtype} but found dtype={array.dtype}")
            new.append(array.copy())
        self._states = new

    def __call__(self, inputs, mask=None, training=False, initial_state=None):
        """Run the layer. Returns `output`, or `[output, h, c]` with return_state."""
        target = self._call_target(inputs, mask)
        if target != "cpu":
            return self._device_runner(target)(inputs, mask, training, initial_state)
        x = self._check_inputs(inputs)
        if not self.built:
            self.build(x.shape)
        spec = self.spec
        if x.shape[2] != spec.input_dim:
            raise ValueError(f"inputs for layer {self.name!r}: {x.shape[2]} features, "
                             f"the layer was built for {spec.input_dim}")
        n_batch, n_time = (x.shape[1], x.shape[0]) if spec.time_major else x.shape[:2]
        mask = self._check_mask(mask, n_batch, n_time)
        # A stateful layer's states are on the device after a call on cuDNN.
        h0, c0 = (s.copy_to_host() if hasattr(s, "copy_to_host") else s
                  for s in self._initial_state(initial_state, n_batch))
        if spec.unroll and spec.timesteps not in (None, n_time):
            raise ValueError(f"inputs for layer {self.name!r}: {n_time} time steps, but the unrolled "
                             f"layer was made for timesteps={spec.timesteps}")
        input_masks, recurrent_masks = self._call_dropout_masks(n_batch, training)
        output, h, c = self._run_cpu(x, mask, h0, c0, input_masks, recurrent_masks)
        if spec.stateful:
            self._states = [h.copy(), c.copy()]
        result = [output, h, c] if spec.return_state else output
        self._record_activity_loss(result)
        return result

    def _call_target(self, inputs, mask) -> str:
        """This call's target: the layer's, except that a call whose mask cuDNN cannot run goes
        (use_cudnn="auto") to the CUDA target when its inputs are on the device, else to cpu."""
        if self.target != "cudnn":
            return self.target
        from lstmgen.cuda_runtime import host_array, is_device_array

        why_not = cudnn_ineligible_reason(self.spec, None if mask is None else host_array(mask))
        if why_not is None:
            return "cudnn"
        if self.spec.use_cudnn is True:
            raise ValueError(f"use_cudnn=True for layer {self.name!r}, but cuDNN cannot run this "
                             f"call: {why_not}; pass use_cudnn='auto' to run it on another target")
        cuda_runs = self._unavailable["cuda"] is None and cuda_uncovered_reason(self.spec) is None
        return "cuda" if cuda_runs and is_device_array(inputs) else "cpu"

    def _device_runner(self, target: str):
        """The layer's runner for "cuda" or "cudnn", made at its first call."""
        if target == "cuda":
            if self._cuda is None:
                from lstmgen.cuda_runtime import CudaRunner

                self._cuda = CudaRunner(self)
            return self._cuda
        if self._cudnn is None:
            from lstmgen.cudnn.forward import CudnnRunner

            self._cudnn = CudnnRunner(self)
        return self._cudnn

    def _run_cpu(self, x, mask, h0, c0, input_masks, recurrent_masks) -> tuple:
        spec = self.spec
        n_batch, n_time = (x.shape[1], x.shape[0]) if spec.time_major else x.shape[:2]
        training_variant = input_masks is not None or recurrent_masks is not None
        multiply_adds = n_batch * n_time * spec.units * (4 * (spec.input_dim + spec.output_size)
                                                         + spec.proj_size)
        parts = batch_threads.parts(n_batch, multiply_adds)
        inference = mask is None and not training_variant and not spec.unroll
        # A batch too small to split may have its units split instead (lower.cpu.unit_split).
        units = (self._units_entry() if inference and n_time > 0 and parts == 1
                 and batch_threads.worth_splitting_units(multiply_adds) else None)
        stepwise = (inference and units is None
                    and _projects_by_step(n_batch // parts, n_time, spec.units,
                                          self.dtype.itemsize, self._projects_in_panels()))
        entry = self._entry(n_time if spec.unroll else None, mask is not None, training_variant,
                            stepwise)
        values = {"x": x, "h0": h0, "c0": c0, "mask": mask,
                  **self._buffers(n_batch, n_time, stepwise, aligned=units is not None),
                  "input_masks": input_masks, "recurrent_masks": recurrent_masks,
                  **dict(zip(spec.weight_names, self._weights))}
        # MKL runs sequential (set by the generated module); NumPy's BLAS must be told.
        args = [values[p] for p in entry.params]
        with single_threaded_blas() if entry.calls_numpy_blas else nullcontext():
            if units is None or not batch_threads.run_units(units, args):
                batch_threads.run(entry.function, args, entry.axes, n_batch, n_time, multiply_adds)
        return values["output"], values["h"], values["c"]

    def _call_dropout_masks(self, n_batch: int, training) -> tuple:
        """Fresh masks for one call, shared by its steps: ([K, N, C] or None, [K, N, H] or None).

        Drawn through the public getters, so that they return afterwards exactly what the call used.
        """
        self.reset_dropout_mask()
        self.reset_recurrent_dropout_mask()
        if not training:
            return None, None
        count = self.spec.dropout_mask_count
        # Only the shapes count (the inputs may have no time step, or live on a GPU).
        step = np.empty((n_batch, self.spec.input_dim), self.dtype)
        state = np.empty((n_batch, self.spec.output_size), self.dtype)
        return (_stacked(self.get_dropout_mask_for_cell(step, True, count), count),
                _stacked(self.get_recurrent_dropout_mask_for_cell(state, True, count), count))

    def get_dropout_mask_for_cell(self, inputs, training, count=1):
        """The input dropout mask for a step input `inputs` ([N, C]), as tf.keras's cells get it.

        None when dropout is 0; else one array shaped like `inputs` (count 1) or a list of `count`,
        in the layer's dtype: in training 0 or 1 / (1 - dropout) (inverted dropout), else ones.
        Cached, and returned again whatever the arguments, until reset_dropout_mask(); every call
        of the layer resets it first and then draws the masks it uses here.
        """
        return self._cached_mask("input", self.spec.dropout, inputs, training, count)

    def get_recurrent_dropout_mask_for_cell(self, inputs, training, count=1):
        """The same for the recurrent state `inputs` ([N, H], e.g. h) and recurrent_dropout."""
        return self._cached_mask("recurrent", self.spec.recurrent_dropout, inputs, training, count)

    def reset_dropout_mask(self) -> None:
        """Forget the cached input dropout mask: the next get_dropout_mask_for_cell draws anew."""
        self._dropout_masks.pop("input", None)

    def reset_recurrent_dropout_mask(self) -> None:
        """Forget the cached recurrent dropout mask."""
        self._dropout_masks.pop("recurrent", None)

    def _cached_mask(self, kind: str, rate: float, inputs, training, count: int):
        if rate == 0:
            return None
        if count < 1:
            raise ValueError(f"count={count!r} for layer {self.name!r}: expected a positive number "
                             "of dropout masks")
        if kind not in self._dropout_masks:
            shape, keep = np.shape(inputs), 1.0 - rate
            masks = []
            for _ in range(count):
                mask = (np.where(self._rng.random(shape) < keep, 1.0 / keep, 0.0) if training
                        else np.ones(shape))
                mask = mask.astype(self.dtype)
                mask.flags.writeable = False  # the record of what a call used
                masks.append(mask)
            self._dropout_masks[kind] = masks if count > 1 else masks[0]
        cached = self._dropout_masks[kind]
        return list(cached) if isinstance(cached, list) else cached

    def _set_spec(self, spec: LSTMSpec) -> None:
        self.spec = spec
        self._entries.clear()  # looked up for the old spec

    def _entry(self, unrolled_steps, masked: bool, training: bool, stepwise: bool) -> "_CpuEntry":
        """The generated `_into` entry for this call's variant; looked up once per layer."""
        found = self._entries.get((unrolled_steps, masked, training, stepwise))
        if found is None:
            spec = self.spec if unrolled_steps is None else self.spec.replace(timesteps=unrolled_steps)
            # cpu is the only target with generated code.
            key = self._cpu_key(spec)
            found = _CpuEntry(key, next(e for e in cpu_entry_points(key) if e.masked == masked
                                        and e.training == training and e.stepwise == stepwise))
            self._entries[(unrolled_steps, masked, training, stepwise)] = found
        return found

    @staticmethod
    def _cpu_key(spec: LSTMSpec) -> VariantKey:
        """The cpu variant of `spec` for this process: its BLAS, and its CPU's products."""
        return VariantKey.from_spec(spec, "cpu", blas.choice(), blas.blocked_any_size())

    def _projects_in_panels(self) -> bool:
        """Whether the layer's variant projects in its blocked product (then also step by step:
        see STEPWISE_FROM); looked up once per layer."""
        if "panels" not in self._entries:
            key = self._cpu_key(self.spec)
            self._entries["panels"] = blocked_projection(key)
        return self._entries["panels"]

    def _units_entry(self):
        """The native library of forward_into split by units (native.units_function) for the
        layer's variant, or None where it has none; looked up once per layer."""
        if "units" not in self._entries:
            key = self._cpu_key(self.spec)
            self._entries["units"] = (
                native.units_function(key, VARIANTS.directory, lambda: VARIANTS.get(key))
                if native.supported(key, "forward_units") else None)
        return self._entries["units"]

    def _buffers(self, n_batch: int, n_time: int, stepwise: bool, aligned: bool) -> dict:
        """Reused scratch (zx [N*T, 4H], or zx_step [N, 4H]; zh [N, 4H]) and fresh result arrays,
        these on cache lines of their own where `aligned` (see the scratch)."""
        units, gates = self.spec.output_size, 4 * self.spec.units
        if self._scratch_shape != (n_batch, n_time, stepwise):
            # Arrays start on a cache line: threads that split the units write halves of each
            # row (native_forward_units_into), which then share none.
            self._scratch = (native.aligned_empty((n_batch * (1 if stepwise else n_time), gates),
                                                  self.dtype),
                             native.aligned_empty((n_batch, gates), self.dtype))
            self._scratch_shape = (n_batch, n_time, stepwise)
        if not self.spec.return_sequences:
            output = (n_batch, units)
        elif self.spec.time_major:
            output = (n_time, n_batch, units)
        else:
            output = (n_batch, n_time, units)
        empty = native.aligned_empty if aligned else np.empty  # aligned: ~1 us more each
        return {"zx_step" if stepwise else "zx": self._scratch[0], "zh": self._scratch[1],
                "output": empty(output, self.dtype), "h": empty((n_batch, units), self.dtype),
                "c": empty((n_batch, self.spec.units), self.dtype)}

    def _check_inputs(self, inputs) -> np.ndarray:
        x = np.asarray(inputs)
        if x.ndim != 3:
            layout = "[T, N, C]" if self.spec.time_major else "[N, T, C]"
            raise ValueError(f"inputs for layer {self.name!r}: shape {x.shape}, expected 3 "
                             f"dimensions {layout}")
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"inputs for layer {self.name!r}: dtype {x.dtype}, expected a "
                            "floating-point array (it is cast to the layer's dtype)")
        return np.ascontiguousarray(x, dtype=self.dtype)

    def _check_mask(self, mask, n_batch: int, n_time: int):
        if mask is None:
            return None
        array = np.asarray(mask)
        if array.shape != (n_batch, n_time):
            raise ValueError(f"mask for layer {self.name!r}: shape {array.shape}, expected "
                             f"[N, T] = {(n_batch, n_time)}")
        if array.dtype != np.bool_ and not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"mask for layer {self.name!r}: dtype {array.dtype}, expected bool "
                            "(True = use the step)")
        return np.ascontiguousarray(array, dtype=np.bool_)

    def _initial_state(self, initial_state, n_batch: int) -> tuple:
        shapes = self._state_shapes(n_batch)
        if initial_state is not None:
            states = list(initial_state) if isinstance(initial_state, (list, tuple)) else None
            if states is None or len(states) != 2:
                sizes = (f"two [N, H] = {shapes[0]}" if shapes[0] == shapes[1] else
                         f"[N, P] = {shapes[0]} and [N, H] = {shapes[1]}")
                raise ValueError(f"initial_state for layer {self.name!r}: expected a list [h, c] "
                                 f"of {sizes} arrays")
            out = []
            for index, (value, shape) in enumerate(zip(states, shapes)):
                array = np.asarray(value)
                if array.shape != shape or not np.issubdtype(array.dtype, np.floating):
                    raise ValueError(f"initial_state[{index}] for layer {self.name!r}: shape "
                                     f"{array.shape} dtype {array.dtype}, expected a float "
                                     f"array of shape {shape}")
                out.append(np.ascontiguousarray(array, dtype=self.dtype))
            return tuple(out)
        if self.spec.stateful:
            if self._states is None:
                self._set_spec(self.spec.replace(batch_size=n_batch))
                self._states = self._zero_states(n_batch)
            if self._states[0].shape[0] != n_batch:
                raise ValueError(f"inputs for stateful layer {self.name!r}: batch size {n_batch}, "
                                 f"the layer's states are for batch size {self._states[0].shape[0]}")
            return tuple(self._states)
        zeros = self._zero_states(n_batch)
        return zeros[0], zeros[1]

    def _record_activity_loss(self, result) -> None:
        # Keras 3 adds the activity penalty of every output tensor, divided by its first dimension.
        regularizer = self.spec.activity_regularizer
        outputs = result if isinstance(result, list) else [result]
        self._activity_losses = ([] if regularizer is None else
                                 [regularizer(o) / o.shape[0] for o in outputs])

    @property
    def losses(self) -> list:
        """Keras's order: the last call's activity penalties, then kernel, recurrent, bias penalties."""
        regularizers = self._per_weight("regularizer")
        weight_losses = [float(r(w)) for r, w in zip(regularizers, self._weights or [])
                         if r is not None]
        return [float(v) for v in self._activity_losses] + weight_losses

    def apply_constraints(self) -> None:
        """Project the weights through their constraints, as Keras's optimizer does after an update."""
        constraints = self._per_weight("constraint")
        self._weights = [w if k is None else np.ascontiguousarray(k(w), dtype=self.dtype)
                         for k, w in zip(constraints, self._weights or [])]

    def _per_weight(self, kind: str) -> list:
        """Keras's kernel_, recurrent_ and bias_ `kind` for each weight; the cell options' weights
        (recurrent_bias, peephole, projection) have none."""
        prefixes = {"kernel": "kernel", "recurrent_kernel": "recurrent", "bias": "bias"}
        return [getattr(self.spec, f"{prefixes[name]}_{kind}") if name in prefixes else None
                for name in self.spec.weight_names]

    def explain(self) -> str:
        """Which target runs this layer, and why."""
        return explain(self.spec, self._requested_target, self._unavailable)

    def get_initial_state(self, inputs) -> list:
        """The zero [h [N, P], c [N, H]] in the layer's dtype, for a batch like `inputs`."""
        shape = np.shape(inputs)
        if len(shape) != 3:
            raise ValueError(f"inputs for layer {self.name!r}: shape {shape}, expected 3 dimensions")
        return self._zero_states(shape[1] if self.spec.time_major else shape[0])

    def get_config(self) -> dict:
        """A Keras-style config: the layer's name and every spec argument (Keras objects as configs)."""
        return {"name": self.name, **self.spec.to_dict()}

    @classmethod
    def from_config(cls, config: dict, target: str = "auto") -> "LSTM":
        """A layer from `get_config()`, or from a Keras 3 or tf.keras LSTM config."""
        spec = LSTMSpec.from_config(config)
        return cls(target=target, name=config.get("name", "lstm"), **spec.to_dict())


# The constructor arguments users of Keras's LSTM read back as layer properties (read-only).
_SPEC_PROPERTIES = (
    "units", "activation", "recurrent_activation", "use_bias", "kernel_initializer",
    "recurrent_initializer", "bias_initializer", "unit_forget_bias", "kernel_regularizer",
    "recurrent_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
    "recurrent_constraint", "bias_constraint", "dropout", "recurrent_dropout", "implementation",
    "return_sequences", "return_state", "go_backwards", "stateful", "time_major", "unroll",
    "zero_output_for_mask", "output_activation", "use_recurrent_bias", "use_peepholes", "clip",
    "input_forget", "proj_size")


def checked_weights(name: str, weights: list, shapes: list, dtype) -> list:
    """Copies of `weights`, contiguous arrays of `dtype`, after checking their count, shapes and
    kinds. Copies, as Keras's set_weights assigns values: changing the arrays afterwards changes
    no layer (and native libraries lay a layer's weights out once per array: native.to_panels)."""
    if len(weights) != len(shapes):
        raise ValueError(f"weights for layer {name!r}: got {len(weights)} arrays, expected "
                         f"{len(shapes)} with shapes {shapes}")
    converted = []
    for index, (value, shape) in enumerate(zip(weights, shapes)):
        array = np.asarray(value)
        if array.shape != shape:
            raise ValueError(f"weights[{index}] for layer {name!r}: shape {array.shape}, "
                             f"expected {shape}")
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"weights[{index}] for layer {name!r}: dtype {array.dtype}, "
                             "expected a floating-point array")
        converted.append(np.array(array, dtype=dtype, order="C"))
    return converted


def spec_property(name: str) -> property:
    return property(lambda self: getattr(self.spec, name), doc=f"`{name}` as constructed (read-only).")


for _name in _SPEC_PROPERTIES:
    setattr(LSTM, _name, spec_property(_name))


# From how many rows and bytes of zx a part of a call projects each step's input right before
# the step (forward_stepwise), by where it projects. Through BLAS, measured on one core (Intel):
# 64 rows x 100 steps, C = H = 512 (zx 52 MB), 5% faster than projecting every step first; 32
# rows x 100 x 128 -> 256 (13 MB) the same; 16 rows (small case) 3% and one row (stream case) 18%
# slower, a product per step being too small there. In the blocked product (the variant's
# lower.cpu.blocked_projection), one core of an AMD EPYC (Zen 4; BENCHMARKS.md, session 13): 32 x
# 100 x 128 -> 256 10% faster (zx no longer goes out to memory and back), 4 x 1000 x 64 -> 128
# (7.8 MB) 10-15%, 32 x 100 x 32 -> 64 (3.1 MB) 5-19%, 4 x 100 x 128 -> 256 (1.6 MB) 3%; the
# small case's part (0.8 MB) and 64 x 100 x 512 -> 512 the same; one row (2 MB) 20% and two
# (3.9 MB) 0-7% slower.
STEPWISE_FROM = {"blas": (32, 32 * 2 ** 20), "panels": (4, 2 * 2 ** 20)}


class _CpuEntry:
    """One `_into` entry of a layer's variant: its params, their batch axes and whether it calls
    NumPy's BLAS; its function (the native library, or the generated function) is built or
    loaded at its first use: a call that splits its units runs another library instead."""

    def __init__(self, key: VariantKey, entry):
        self.params = entry.into_params
        self.axes = [batch_axis(p, key) for p in entry.into_params]
        self.calls_numpy_blas = calls_numpy_blas(key, entry.name)
        self._key, self._name = key, entry.name

    @cached_property
    def function(self):
        if native.supported(self._key, self._name):
            return native.entry_function(self._key, self._name, VARIANTS.directory,
                                         lambda: VARIANTS.get(self._key))
        return getattr(VARIANTS.get(self._key), self._name + "_into")


def _projects_by_step(rows: int, n_time: int, units: int, itemsize: int, in_panels: bool) -> bool:
    """Whether a part of `rows` rows runs forward_stepwise: its zx would be too big to stay cached."""
    min_rows, min_bytes = STEPWISE_FROM["panels" if in_panels else "blas"]
    return rows >= min_rows and rows * n_time * 4 * units * itemsize >= min_bytes


def _probe_devices(spec: LSTMSpec, target: str) -> dict:
    """Why each device target cannot run here; looked for only when the layer might use one."""
    if target == "cpu" or (target == "auto" and cuda_uncovered_reason(spec) is not None
                           and cudnn_ineligible_reason(spec) is not None):
        return NOT_PROBED
    return unavailable()


def _stacked(masks, count: int):
    """A getter's mask or list of masks as one fresh, writable [K, N, features] array for the kernel."""
    return None if masks is None else np.array(masks).reshape(count, *np.shape(masks)[-2:])


def _host_copy(array):
    return array.copy_to_host() if hasattr(array, "copy_to_host") else array.copy()
