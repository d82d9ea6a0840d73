"""`torch.nn.LSTM` modules and state_dicts into lstmgen: `from_torch`, `TorchLSTM`.

Any num_layers, bidirectional or not, no projection (proj_size > 0 is refused). A state_dict with
its constructor arguments needs no torch. PyTorch's gate order i, f, g, o is Keras's i, f, c, o;
its two biases are summed (lstmgen.interop.gates.torch_to_keras). Layer k runs as an lstmgen.LSTM,
or a Bidirectional of two (concat: forward then reverse, the reverse direction in input time
order, as PyTorch's), in an lstmgen.Stack with PyTorch's dropout between layers (training only).
Shapes (L layers, D = 2 if bidirectional else 1): input [N, T, C] (batch_first) or [T, N, C], or
unbatched [T, C]; h_0, c_0, h_n, c_n [L*D, N, H] ([L*D, H] unbatched), rows layer by layer, the
forward direction first; output [N, T, D*H] or [T, N, D*H] ([T, D*H] unbatched).
"""

import sys

import numpy as np

from lstmgen.bidirectional import Bidirectional
from lstmgen.errors import ModelImportError
from lstmgen.interop.gates import torch_to_keras
from lstmgen.runtime import LSTM
from lstmgen.stack import Stack

# nn.LSTM's constructor arguments and defaults (input_size and hidden_size come from the weights).
ARGUMENTS = {"input_size": None, "hidden_size": None, "num_layers": 1, "bias": True,
             "batch_first": False, "dropout": 0.0, "bidirectional": False, "proj_size": 0,
             "device": None, "dtype": None}
_DTYPES = {"float32": "float32", "float64": "float64"}
_PARAMETERS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class TorchLSTM:
    """nn.LSTM's call, `(output, (h_n, c_n)) = lstm(input, hx=None)`, run by an `lstmgen.Stack`
    (`self.stack`). NumPy in and out (CPU tensors are accepted as inputs). It starts in eval mode:
    `train()` turns the dropout between layers on, `eval()` off, as on a torch module.

    `state`: nn.LSTM's parameters by state_dict key, as checked by `from_torch`.
    """

    def __init__(self, state: dict, num_layers=1, bidirectional=False, bias=True, batch_first=False,
                 dropout=0.0, dtype="float32", target="auto", name="lstm"):
        self.num_layers, self.bidirectional, self.bias = num_layers, bool(bidirectional), bool(bias)
        self.batch_first, self.dropout, self.training = bool(batch_first), dropout, False
        self.input_size = np.shape(state["weight_ih_l0"])[1]
        self.hidden_size = np.shape(state["weight_hh_l0"])[1]
        layers = []
        for k in range(num_layers):
            weights = [w for suffix in self._suffixes for w in self._keras_weights(state, k, suffix)]
            lstm = LSTM(self.hidden_size, target=target, name=f"{name}_l{k}", use_bias=self.bias,
                        return_sequences=True, return_state=True, time_major=not self.batch_first,
                        dtype=dtype)
            if self.bidirectional:
                layers.append(Bidirectional(lstm, weights=weights, name=f"{name}_l{k}", dtype=dtype))
            else:
                lstm.set_weights(weights)
                layers.append(lstm)
        self.stack = Stack(layers, dropout=dropout)
        self.name = name

    proj_size = 0

    @property
    def _suffixes(self) -> tuple:
        return ("", "_reverse") if self.bidirectional else ("",)

    def _keras_weights(self, state: dict, k: int, suffix: str) -> list:
        names = [f"{p}_l{k}{suffix}" for p in _PARAMETERS]
        one = {"weight_ih_l0": state[names[0]], "weight_hh_l0": state[names[1]],
               "bias_ih_l0": state[names[2]] if self.bias else np.zeros(4 * self.hidden_size),
               "bias_hh_l0": state[names[3]] if self.bias else np.zeros(4 * self.hidden_size)}
        kernel, recurrent_kernel, bias = torch_to_keras(one)
        return [kernel, recurrent_kernel] + ([bias] if self.bias else [])

    @property
    def dtype(self) -> np.dtype:
        return self.stack.layers[0].dtype

    def train(self, mode: bool = True) -> "TorchLSTM":
        self.training = bool(mode)
        return self

    def eval(self) -> "TorchLSTM":
        return self.train(False)

    def __call__(self, input, hx=None):
        x = np.asarray(input)
        if x.ndim not in (2, 3):
            raise ValueError(f"input for {self.name!r}: shape {x.shape}, expected "
                             f"{'[N, T, C]' if self.batch_first else '[T, N, C]'} or unbatched [T, C]")
        unbatched = x.ndim == 2
        if unbatched:
            x = x[None] if self.batch_first else x[:, None]
        n_batch = x.shape[0] if self.batch_first else x.shape[1]
        initial_state = None if hx is None else self._initial_state(hx, n_batch, unbatched)
        output, states = self.stack(x, training=self.training, initial_state=initial_state)
        h_n, c_n = (np.stack([s[k] for s in states for k in range(start, len(s), 2)])
                    for start in (0, 1))
        if unbatched:
            return (output[0] if self.batch_first else output[:, 0]), (h_n[:, 0], c_n[:, 0])
        return output, (h_n, c_n)

    def _initial_state(self, hx, n_batch: int, unbatched: bool) -> list:
        """Per layer [h, c] (or [h_f, c_f, h_b, c_b]) from h_0, c_0 [L*D, N, H]."""
        rows = self.num_layers * len(self._suffixes)
        shape = (rows, self.hidden_size) if unbatched else (rows, n_batch, self.hidden_size)
        states = list(hx) if isinstance(hx, (list, tuple)) else []
        arrays = [np.asarray(s) for s in states]
        if len(arrays) != 2 or any(a.shape != shape for a in arrays):
            raise ValueError(f"hx for {self.name!r}: expected (h_0, c_0), each of shape "
                             f"{shape}; got {[a.shape for a in arrays] or type(hx).__name__}")
        h0, c0 = (a.reshape(rows, -1, self.hidden_size) for a in arrays)
        directions = len(self._suffixes)
        return [[s[k * directions + d] for d in range(directions) for s in (h0, c0)]
                for k in range(self.num_layers)]


def from_torch(module_or_state_dict, target="auto", name="lstm", **ctor_kwargs) -> TorchLSTM:
    """A `TorchLSTM` computing what `torch.nn.LSTM` computes.

    `module_or_state_dict`: an `nn.LSTM`, or its `state_dict()` (tensors or NumPy arrays) with the
    constructor arguments it was made with (`num_layers`, `bidirectional`, `batch_first`, `bias`,
    ...; sizes come from the weights).
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
    if args["proj_size"] != 0:
        raise ModelImportError(source, None, f"proj_size={args['proj_size']!r} is not supported "
                               "yet (lstmgen runs LSTMs without projection: proj_size=0)")
    num_layers = args["num_layers"]
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ModelImportError(source, None, f"num_layers={num_layers!r}: expected a positive int")
    state = _checked_state(source, state, args)
    return TorchLSTM(state, num_layers=num_layers, bidirectional=args["bidirectional"],
                     bias=args["bias"], batch_first=args["batch_first"], dropout=args["dropout"],
                     dtype=_dtype(source, args["dtype"], state["weight_ih_l0"]), target=target,
                     name=name)


def _checked_state(source: str, state: dict, args: dict) -> dict:
    """The state_dict's parameters after checking the keys and shapes."""
    directions = ("", "_reverse") if args["bidirectional"] else ("",)
    parameters = _PARAMETERS if args["bias"] else _PARAMETERS[:2]
    names = [f"{p}_l{k}{d}" for k in range(args["num_layers"]) for d in directions for p in parameters]
    extra = [k for k in state if k not in names]
    if extra:
        raise ModelImportError(source, None, f"unexpected state_dict key {extra[0]!r} "
                               f"({_meaning(extra[0], args)}); expected {names}")
    missing = [k for k in names if k not in state]
    if missing:
        raise ModelImportError(source, None, f"state_dict lacks {missing} (num_layers="
                               f"{args['num_layers']!r}, bidirectional={args['bidirectional']!r}, "
                               f"bias={args['bias']!r})")
    hidden = args["hidden_size"] if args["hidden_size"] is not None else np.shape(state["weight_hh_l0"])[-1]
    n_in = args["input_size"] if args["input_size"] is not None else np.shape(state["weight_ih_l0"])[-1]
    for key in names:
        expected = {"weight_ih": (4 * hidden, n_in if _layer(key) == 0 else len(directions) * hidden),
                    "weight_hh": (4 * hidden, hidden)}.get(key[:9], (4 * hidden,))
        if tuple(np.shape(state[key])) != expected:
            raise ModelImportError(source, None, f"{key} has shape {tuple(np.shape(state[key]))}, "
                                   f"expected {expected} (input_size={n_in}, hidden_size={hidden}, "
                                   f"bidirectional={args['bidirectional']!r})")
    return {k: state[k] for k in names}


def _meaning(key: str, args: dict) -> str:
    if key.startswith("weight_hr"):
        return "a projection's: proj_size > 0 is not supported yet"
    if key.endswith("_reverse") and not args["bidirectional"]:
        return "a reverse direction's, but bidirectional=False"
    if _layer(key) is not None and _layer(key) >= args["num_layers"]:
        return f"a deeper layer's, but num_layers={args['num_layers']!r}"
    if _layer(key) is not None and key.startswith("bias") and not args["bias"]:
        return "a bias, but bias=False"
    return "not an nn.LSTM weight"


def _layer(key: str):
    """k of a key like `weight_ih_l<k>[_reverse]`, else None."""
    index = key.rsplit("_l", 1)[-1].split("_")[0] if "_l" in key else ""
    return int(index) if index.isdigit() else None


def _dtype(source: str, requested, weight) -> str:
    """float64 weights (or dtype=torch.float64) give a float64 layer; float32 a float32 one."""
    value = requested if requested is not None else getattr(weight, "dtype", np.float32)
    name = str(value).replace("torch.", "")
    name = {"double": "float64", "float": "float32"}.get(name, name)
    if name not in _DTYPES:
        raise ModelImportError(source, None, f"dtype {name} is not supported (float32 or float64; "
                               "convert with .float() or .double())")
    return _DTYPES[name]
