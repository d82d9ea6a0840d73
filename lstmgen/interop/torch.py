"""`torch.nn.LSTM` modules and state_dicts into lstmgen: `from_torch`, `TorchLSTM`.

Any num_layers, bidirectional or not, with or without a projection (proj_size). A state_dict with
its constructor arguments needs no torch. PyTorch's gate order i, f, g, o is Keras's i, f, c, o; its
two biases stay two (the spec's use_recurrent_bias), added as PyTorch adds them
(lstmgen.interop.gates.torch_to_lstmgen). Layer k runs as an lstmgen.LSTM, or a Bidirectional of
two (concat: forward then reverse, the reverse direction in input time order, as PyTorch's), in an
lstmgen.Stack with PyTorch's dropout between layers (training only).
Shapes (L layers, D = 2 if bidirectional else 1, P = proj_size or H): input [N, T, C]
(batch_first) or [T, N, C], or unbatched [T, C]; h_0, h_n [L*D, N, P] and c_0, c_n [L*D, N, H]
([L*D, P] and [L*D, H] unbatched), rows layer by layer, the forward direction first; output
[N, T, D*P] or [T, N, D*P] ([T, D*P] unbatched).
"""

import sys

import numpy as np

from lstmgen.bidirectional import Bidirectional
from lstmgen.errors import ModelImportError
from lstmgen.interop.gates import torch_to_lstmgen
from lstmgen.runtime import LSTM
from lstmgen.stack import Stack

# nn.LSTM's constructor arguments and defaults (input_size and hidden_size come from the weights).
ARGUMENTS = {"input_size": None, "hidden_size": None, "num_layers": 1, "bias": True,
             "batch_first": False, "dropout": 0.0, "bidirectional": False, "proj_size": 0,
             "device": None, "dtype": None}
_DTYPES = {"float32": "float32", "float64": "float64"}
_PARAMETERS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


class TorchLSTM:
    """nn.LSTM's call, `(output, (h_n, c_n)) = lstm(input, hx=None)`, run by an `lstmgen.Stack`
    (`self.stack`). NumPy in and out (CPU tensors are accepted as inputs). It starts in eval mode:
    `train()` turns the dropout between layers on, `eval()` off, as on a torch module.

    `state`: nn.LSTM's parameters by state_dict key, as checked by `from_torch`.
    """

    def __init__(self, state: dict, num_layers=1, bidirectional=False, bias=True, batch_first=False,
                 dropout=0.0, proj_size=0, dtype="float32", target="auto", name="lstm"):
        self.num_layers, self.bidirectional, self.bias = num_layers, bool(bidirectional), bool(bias)
        self.batch_first, self.dropout, self.training = bool(batch_first), dropout, False
        self.proj_size = proj_size
        self.input_size = np.shape(state["weight_ih_l0"])[1]
        self.hidden_size = np.shape(state["weight_hh_l0"])[0] // 4
        layers = []
        for k in range(num_layers):
            lstm = LSTM(self.hidden_size, target=target, name=f"{name}_l{k}", use_bias=self.bias,
                        use_recurrent_bias=self.bias, proj_size=proj_size, return_sequences=True,
                        return_state=True, time_major=not self.batch_first, dtype=dtype)
            weights = [w for suffix in self._suffixes
                       for w in self._lstmgen_weights(state, k, suffix, lstm.spec.weight_names)]
            if self.bidirectional:
                layers.append(Bidirectional(lstm, weights=weights, name=f"{name}_l{k}", dtype=dtype))
            else:
                lstm.set_weights(weights)
                layers.append(lstm)
        self.stack = Stack(layers, dropout=dropout)
        self.name = name

    @property
    def _suffixes(self) -> tuple:
        return ("", "_reverse") if self.bidirectional else ("",)

    @staticmethod
    def _lstmgen_weights(state: dict, k: int, suffix: str, names: tuple) -> list:
        """Layer k's weights in direction `suffix`, in the order of lstmgen's `names`."""
        one = {f"{p}_l0": state[f"{p}_l{k}{suffix}"] for p in _PARAMETERS if f"{p}_l{k}{suffix}" in state}
        weights = torch_to_lstmgen(one)
        return [weights[name] for name in names]

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
        """Per layer [h, c] (or [h_f, c_f, h_b, c_b]) from h_0 [L*D, N, P], c_0 [L*D, N, H]."""
        rows = self.num_layers * len(self._suffixes)
        sizes = (self.proj_size or self.hidden_size, self.hidden_size)
        shapes = [(rows, size) if unbatched else (rows, n_batch, size) for size in sizes]
        states = list(hx) if isinstance(hx, (list, tuple)) else []
        arrays = [np.asarray(s) for s in states]
        if len(arrays) != 2 or any(a.shape != shape for a, shape in zip(arrays, shapes)):
            raise ValueError(f"hx for {self.name!r}: expected (h_0, c_0) of shapes {shapes[0]} and "
                             f"{shapes[1]}; got {[a.shape for a in arrays] or type(hx).__name__}")
        h0, c0 = (a.reshape(rows, -1, size) for a, size in zip(arrays, sizes))
        directions = len(self._suffixes)
        return [[s[k * directions + d] for d in range(directions) for s in (h0, c0)]
                for k in range(self.num_layers)]


def from_torch(module_or_state_dict, target="auto", name="lstm", **ctor_kwargs) -> TorchLSTM:
    """A `TorchLSTM` computing what `torch.nn.LSTM` computes.

    `module_or_state_dict`: an `nn.LSTM`, or its `state_dict()` (tensors or NumPy arrays) with the
    constructor arguments it was made with (`num_layers`, `bidirectional`, `batch_first`, `bias`,
    ...; sizes, proj_size too, come from the weights).
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
    num_layers = args["num_layers"]
    if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        raise ModelImportError(source, None, f"num_layers={num_layers!r}: expected a positive int")
    state = _checked_state(source, state, args)
    return TorchLSTM(state, num_layers=num_layers, bidirectional=args["bidirectional"],
                     bias=args["bias"], batch_first=args["batch_first"], dropout=args["dropout"],
                     proj_size=args["proj_size"],
                     dtype=_dtype(source, args["dtype"], state["weight_ih_l0"]), target=target,
                     name=name)


def _checked_state(source: str, state: dict, args: dict) -> dict:
    """The state_dict's parameters after checking the keys and shapes."""
    directions = ("", "_reverse") if args["bidirectional"] else ("",)
    proj = args["proj_size"]
    parameters = _PARAMETERS[:4] if args["bias"] else _PARAMETERS[:2]
    parameters += _PARAMETERS[4:] if proj else ()
    names = [f"{p}_l{k}{d}" for k in range(args["num_layers"]) for d in directions for p in parameters]
    extra = [k for k in state if k not in names]
    if extra:
        raise ModelImportError(source, None, f"unexpected state_dict key {extra[0]!r} "
                               f"({_meaning(extra[0], args)}); expected {names}")
    missing = [k for k in names if k not in state]
    if missing:
        raise ModelImportError(source, None, f"state_dict lacks {missing} (num_layers="
                               f"{args['num_layers']!r}, bidirectional={args['bidirectional']!r}, "
                               f"bias={args['bias']!r}, proj_size={proj!r})")
    hidden = args["hidden_size"] if args["hidden_size"] is not None else np.shape(state["weight_hh_l0"])[0] // 4
    n_in = args["input_size"] if args["input_size"] is not None else np.shape(state["weight_ih_l0"])[-1]
    width = proj or hidden  # features of h, per direction
    for key in names:
        expected = {"weight_ih": (4 * hidden, n_in if _layer(key) == 0 else len(directions) * width),
                    "weight_hh": (4 * hidden, width), "weight_hr": (proj, hidden)}.get(key[:9], (4 * hidden,))
        if tuple(np.shape(state[key])) != expected:
            raise ModelImportError(source, None, f"{key} has shape {tuple(np.shape(state[key]))}, "
                                   f"expected {expected} (input_size={n_in}, hidden_size={hidden}, "
                                   f"bidirectional={args['bidirectional']!r}, proj_size={proj!r})")
    if proj and not 0 < proj < hidden:
        raise ModelImportError(source, None, f"proj_size={proj!r} must be in [1, hidden_size) "
                               f"= [1, {hidden})")
    return {k: state[k] for k in names}


def _meaning(key: str, args: dict) -> str:
    if key.startswith("weight_hr"):
        return f"a projection's, but proj_size={args['proj_size']!r}"
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
