"""`torch.nn.LSTM` modules and state_dicts into lstmgen: `from_torch`, `TorchLSTM`.

One layer, one direction (what lstmgen's spec holds today), with or without a projection
(proj_size). A state_dict with its constructor arguments needs no torch. PyTorch's gate order i, f,
g, o is Keras's i, f, c, o; its two biases stay two (the spec's use_recurrent_bias), added as PyTorch
adds them (lstmgen.interop.gates.torch_to_lstmgen).
Shapes (P = proj_size, or H without one): input [N, T, C] (batch_first) or [T, N, C], or unbatched
[T, C]; h_0, h_n [1, N, P] and c_0, c_n [1, N, H] ([1, P] and [1, H] unbatched); output [N, T, P] or
[T, N, P] ([T, P] unbatched).
"""

import sys

import numpy as np

from lstmgen.errors import ModelImportError
from lstmgen.interop.gates import torch_to_lstmgen
from lstmgen.runtime import LSTM

# nn.LSTM's constructor arguments and defaults (input_size and hidden_size come from the weights).
ARGUMENTS = {"input_size": None, "hidden_size": None, "num_layers": 1, "bias": True,
             "batch_first": False, "dropout": 0.0, "bidirectional": False, "proj_size": 0,
             "device": None, "dtype": None}
# What lstmgen cannot run yet, with the value it can: these need spec growth (issue 6).
_ONE_LAYER_ONE_DIRECTION = {"num_layers": 1, "bidirectional": False}
_DTYPES = {"float32": "float32", "float64": "float64"}


class TorchLSTM:
    """nn.LSTM's call, `(output, (h_n, c_n)) = lstm(input, hx=None)`, run by an `lstmgen.LSTM`
    (`self.layer`). NumPy in and out (CPU tensors are accepted as inputs)."""

    def __init__(self, weight_ih, weight_hh, bias_ih=None, bias_hh=None, batch_first=False,
                 dtype="float32", target="auto", name="lstm", weight_hr=None):
        state = {"weight_ih_l0": weight_ih, "weight_hh_l0": weight_hh, "bias_ih_l0": bias_ih,
                 "bias_hh_l0": bias_hh, "weight_hr_l0": weight_hr}
        weights = torch_to_lstmgen({k: v for k, v in state.items() if v is not None})
        self.bias = bias_ih is not None
        self.batch_first = bool(batch_first)
        self.input_size, self.hidden_size = weights["kernel"].shape[0], weights["kernel"].shape[1] // 4
        self.proj_size = 0 if weight_hr is None else weights["projection"].shape[1]
        self.layer = LSTM(self.hidden_size, target=target, name=name, use_bias=self.bias,
                          use_recurrent_bias=self.bias, proj_size=self.proj_size,
                          return_sequences=True, return_state=True, time_major=not self.batch_first,
                          dtype=dtype)
        self.layer.set_weights([weights[k] for k in self.layer.spec.weight_names])

    num_layers, bidirectional = 1, False

    @property
    def dtype(self) -> np.dtype:
        return self.layer.dtype

    def __call__(self, input, hx=None):
        x = np.asarray(input)
        if x.ndim not in (2, 3):
            raise ValueError(f"input for {self.layer.name!r}: shape {x.shape}, expected "
                             f"{'[N, T, C]' if self.batch_first else '[T, N, C]'} or unbatched [T, C]")
        unbatched = x.ndim == 2
        if unbatched:
            x = x[None] if self.batch_first else x[:, None]
        n_batch = x.shape[0] if self.batch_first else x.shape[1]
        initial_state = None if hx is None else self._initial_state(hx, n_batch, unbatched)
        output, h, c = self.layer(x, initial_state=initial_state)
        if unbatched:
            return (output[0] if self.batch_first else output[:, 0]), (h, c)
        return output, (h[None], c[None])

    def _initial_state(self, hx, n_batch: int, unbatched: bool) -> list:
        sizes = (self.proj_size or self.hidden_size, self.hidden_size)
        shapes = [(1, size) if unbatched else (1, n_batch, size) for size in sizes]
        states = list(hx) if isinstance(hx, (list, tuple)) else []
        arrays = [np.asarray(s) for s in states]
        if len(arrays) != 2 or any(a.shape != shape for a, shape in zip(arrays, shapes)):
            raise ValueError(f"hx for {self.layer.name!r}: expected (h_0, c_0) of shapes "
                             f"{shapes[0]} and {shapes[1]}; got "
                             f"{[a.shape for a in arrays] or type(hx).__name__}")
        return [a if unbatched else a[0] for a in arrays]


def from_torch(module_or_state_dict, target="auto", name="lstm", **ctor_kwargs) -> TorchLSTM:
    """A `TorchLSTM` computing what `torch.nn.LSTM` computes.

    `module_or_state_dict`: an `nn.LSTM`, or its `state_dict()` (tensors or NumPy arrays) with the
    constructor arguments it was made with (`batch_first`, `bias`, ...; sizes come from the weights).
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(module_or_state_dict, torch.nn.Module):
        module = module_or_state_dict
        if not isinstance(module, torch.nn.LSTM):
            raise TypeError(f"from_torch: expected torch.nn.LSTM, got {type(module).__name__}")
        if ctor_kwargs:
            raise TypeError(f"from_torch: constructor arguments {sorted(ctor_kwargs)} come from "
                            "the module itself; pass them only with a state_dict")
        args = {**ARGUMENTS, **{k: getattr(module, k) for k in ARGUMENTS if hasattr(module, k)}}
        state, source = module.state_dict(), f"torch.nn.LSTM {module!r}"
    elif hasattr(module_or_state_dict, "keys"):
        unknown = sorted(set(ctor_kwargs) - set(ARGUMENTS))
        if unknown:
            raise TypeError(f"from_torch: {unknown[0]}={ctor_kwargs[unknown[0]]!r} is not an "
                            f"nn.LSTM argument; known: {', '.join(ARGUMENTS)}")
        args = {**ARGUMENTS, **ctor_kwargs}
        state, source = dict(module_or_state_dict), "nn.LSTM state_dict"
        if "proj_size" not in ctor_kwargs and "weight_hr_l0" in state:  # sizes come from the weights
            args["proj_size"] = np.shape(state["weight_hr_l0"])[0]
    else:
        raise TypeError(f"from_torch: expected a torch.nn.LSTM or its state_dict, got "
                        f"{type(module_or_state_dict).__name__}")
    for option, supported in _ONE_LAYER_ONE_DIRECTION.items():
        if args.get(option, supported) != supported:
            raise ModelImportError(source, None, f"{option}={args[option]!r} is not supported yet "
                                   f"(lstmgen runs one layer, one direction, no projection: "
                                   f"{option}={supported!r})")
    weights = _checked_state(source, state, args)
    return TorchLSTM(*weights[:4], batch_first=args["batch_first"],
                     dtype=_dtype(source, args["dtype"], weights[0]), target=target, name=name,
                     weight_hr=weights[4])


def _checked_state(source: str, state: dict, args: dict) -> tuple:
    """(weight_ih, weight_hh, bias_ih, bias_hh, weight_hr) after checking the keys and shapes
    (None for those the module does not have)."""
    names = ["weight_ih_l0", "weight_hh_l0"] + (["bias_ih_l0", "bias_hh_l0"] if args["bias"] else [])
    names += ["weight_hr_l0"] if args["proj_size"] else []
    extra = [k for k in state if k not in names]
    if extra:
        raise ModelImportError(source, None, f"unexpected state_dict key {extra[0]!r} "
                               f"({_meaning(extra[0], args)}); expected {names}")
    missing = [k for k in names if k not in state]
    if missing:
        raise ModelImportError(source, None, f"state_dict lacks {missing} (bias={args['bias']!r})")
    hidden = args["hidden_size"] if args["hidden_size"] is not None else np.shape(state["weight_hh_l0"])[0] // 4
    n_in = args["input_size"] if args["input_size"] is not None else np.shape(state["weight_ih_l0"])[-1]
    proj = args["proj_size"]
    shapes = {"weight_ih_l0": (4 * hidden, n_in), "weight_hh_l0": (4 * hidden, proj or hidden),
              "bias_ih_l0": (4 * hidden,), "bias_hh_l0": (4 * hidden,), "weight_hr_l0": (proj, hidden)}
    for key in names:
        if tuple(np.shape(state[key])) != shapes[key]:
            raise ModelImportError(source, None, f"{key} has shape {tuple(np.shape(state[key]))}, "
                                   f"expected {shapes[key]} (input_size={n_in}, hidden_size={hidden}"
                                   f"{f', proj_size={proj}' if proj else ''})")
    if proj and not 0 < proj < hidden:
        raise ModelImportError(source, None, f"proj_size={proj!r} must be in [1, hidden_size) "
                               f"= [1, {hidden})")
    return tuple(state.get(k) for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                                        "weight_hr_l0"))


def _meaning(key: str, args: dict) -> str:
    if key.endswith("_reverse"):
        return "a bidirectional LSTM's: bidirectional=True is not supported yet"
    if key.startswith("weight_hr"):
        return f"a projection's, but proj_size={args['proj_size']!r}"
    if key[-1].isdigit() and not key.endswith("_l0"):
        return "a deeper layer's: num_layers > 1 is not supported yet"
    if key.startswith("bias") and not args["bias"]:
        return "a bias, but bias=False"
    return "not an nn.LSTM weight"


def _dtype(source: str, requested, weight) -> str:
    """float64 weights (or dtype=torch.float64) give a float64 layer; float32 a float32 one."""
    value = requested if requested is not None else getattr(weight, "dtype", np.float32)
    name = str(value).replace("torch.", "")
    name = {"double": "float64", "float": "float32"}.get(name, name)
    if name not in _DTYPES:
        raise ModelImportError(source, None, f"dtype {name} is not supported (float32 or float64; "
                               "convert with .float() or .double())")
    return _DTYPES[name]
