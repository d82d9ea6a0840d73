"""`torch.nn.LSTM` modules and state_dicts into lstmgen: `from_torch`, `TorchLSTM`.

One layer, one direction, no projection (what lstmgen's spec holds today). A state_dict with its
constructor arguments needs no torch. PyTorch's gate order i, f, g, o is Keras's i, f, c, o; its two
biases are summed (lstmgen.interop.gates.torch_to_keras).
Shapes: input [N, T, C] (batch_first) or [T, N, C], or unbatched [T, C]; h_0, c_0, h_n, c_n
[1, N, H] ([1, H] unbatched); output [N, T, H] or [T, N, H] ([T, H] unbatched).
"""

import sys

import numpy as np

from lstmgen.errors import ModelImportError
from lstmgen.interop.gates import torch_to_keras
from lstmgen.runtime import LSTM

# nn.LSTM's constructor arguments and defaults (input_size and hidden_size come from the weights).
ARGUMENTS = {"input_size": None, "hidden_size": None, "num_layers": 1, "bias": True,
             "batch_first": False, "dropout": 0.0, "bidirectional": False, "proj_size": 0,
             "device": None, "dtype": None}
# What lstmgen cannot run yet, with the value it can: these need spec growth (issue 6).
_ONE_LAYER_ONE_DIRECTION = {"num_layers": 1, "bidirectional": False, "proj_size": 0}
_DTYPES = {"float32": "float32", "float64": "float64"}


class TorchLSTM:
    """nn.LSTM's call, `(output, (h_n, c_n)) = lstm(input, hx=None)`, run by an `lstmgen.LSTM`
    (`self.layer`). NumPy in and out (CPU tensors are accepted as inputs)."""

    def __init__(self, weight_ih, weight_hh, bias_ih=None, bias_hh=None, batch_first=False,
                 dtype="float32", target="auto", name="lstm"):
        state = {"weight_ih_l0": weight_ih, "weight_hh_l0": weight_hh}
        self.bias = bias_ih is not None
        if self.bias:
            state.update(bias_ih_l0=bias_ih, bias_hh_l0=bias_hh)
        else:
            units = np.shape(weight_hh)[1]
            state.update(bias_ih_l0=np.zeros(4 * units), bias_hh_l0=np.zeros(4 * units))
        kernel, recurrent_kernel, bias = torch_to_keras(state)
        self.batch_first = bool(batch_first)
        self.input_size, self.hidden_size = kernel.shape[0], recurrent_kernel.shape[0]
        self.layer = LSTM(self.hidden_size, target=target, name=name, use_bias=self.bias,
                          return_sequences=True, return_state=True, time_major=not self.batch_first,
                          dtype=dtype)
        self.layer.set_weights([kernel, recurrent_kernel] + ([bias] if self.bias else []))

    num_layers, bidirectional, proj_size = 1, False, 0

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
        shape = (1, self.hidden_size) if unbatched else (1, n_batch, self.hidden_size)
        states = list(hx) if isinstance(hx, (list, tuple)) else []
        arrays = [np.asarray(s) for s in states]
        if len(arrays) != 2 or any(a.shape != shape for a in arrays):
            raise ValueError(f"hx for {self.layer.name!r}: expected (h_0, c_0), each of shape "
                             f"{shape}; got {[a.shape for a in arrays] or type(hx).__name__}")
        return [a.reshape(1, self.hidden_size) if unbatched else a[0] for a in arrays]


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
    else:
        raise TypeError(f"from_torch: expected a torch.nn.LSTM or its state_dict, got "
                        f"{type(module_or_state_dict).__name__}")
    for option, supported in _ONE_LAYER_ONE_DIRECTION.items():
        if args.get(option, supported) != supported:
            raise ModelImportError(source, None, f"{option}={args[option]!r} is not supported yet "
                                   f"(lstmgen runs one layer, one direction, no projection: "
                                   f"{option}={supported!r})")
    weights = _checked_state(source, state, args)
    return TorchLSTM(*weights, batch_first=args["batch_first"],
                     dtype=_dtype(source, args["dtype"], weights[0]), target=target, name=name)


def _checked_state(source: str, state: dict, args: dict) -> tuple:
    """(weight_ih, weight_hh, bias_ih, bias_hh) after checking the keys and shapes."""
    names = ["weight_ih_l0", "weight_hh_l0"] + (["bias_ih_l0", "bias_hh_l0"] if args["bias"] else [])
    extra = [k for k in state if k not in names]
    if extra:
        raise ModelImportError(source, None, f"unexpected state_dict key {extra[0]!r} "
                               f"({_meaning(extra[0], args)}); expected {names}")
    missing = [k for k in names if k not in state]
    if missing:
        raise ModelImportError(source, None, f"state_dict lacks {missing} (bias={args['bias']!r})")
    hidden = args["hidden_size"] if args["hidden_size"] is not None else np.shape(state["weight_hh_l0"])[-1]
    n_in = args["input_size"] if args["input_size"] is not None else np.shape(state["weight_ih_l0"])[-1]
    shapes = {"weight_ih_l0": (4 * hidden, n_in), "weight_hh_l0": (4 * hidden, hidden),
              "bias_ih_l0": (4 * hidden,), "bias_hh_l0": (4 * hidden,)}
    for key in names:
        if tuple(np.shape(state[key])) != shapes[key]:
            raise ModelImportError(source, None, f"{key} has shape {tuple(np.shape(state[key]))}, "
                                   f"expected {shapes[key]} (input_size={n_in}, hidden_size={hidden})")
    return tuple(state[k] for k in names) + (() if args["bias"] else (None, None))


def _meaning(key: str, args: dict) -> str:
    if key.endswith("_reverse"):
        return "a bidirectional LSTM's: bidirectional=True is not supported yet"
    if key.startswith("weight_hr"):
        return "a projection's: proj_size > 0 is not supported yet"
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
