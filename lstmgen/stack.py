"""`lstmgen.Stack`: layers run one after the other, with PyTorch's dropout between them.

What `torch.nn.LSTM(num_layers=L, dropout=p)` does with its layers: each layer reads the previous
layer's output sequence; in training, that output (every layer's but the last) goes through
inverted dropout (each element kept with probability 1 - p, scaled by 1 / (1 - p)). The mask
`[N, T]`, if any, goes to every layer, as Keras propagates it through sequence outputs.
Glossary: T time steps, N batch, C input features, H units.
"""

import numpy as np

from lstmgen.bidirectional import Bidirectional
from lstmgen.errors import SpecError
from lstmgen.runtime import LSTM
from lstmgen.spec import checked_rate


class Stack:
    """`lstmgen.Stack(layers, dropout=0.0, seed=None)`: `lstmgen.LSTM` / `lstmgen.Bidirectional`
    layers, each but the last returning sequences (merged, for a Bidirectional) in the same time
    layout, all with return_state or none.

    `stack(inputs, mask=None, training=False, initial_state=None)` → the last layer's output, or,
    when the layers return states, `[output, states]` with `states[k]` the list of layer k's
    final states. `initial_state`: None, or one entry per layer (None or that layer's states).
    """

    def __init__(self, layers, dropout=0.0, seed=None):
        self.layers = list(layers)
        if not self.layers:
            raise ValueError("layers=[] for Stack: expected at least one layer")
        for index, layer in enumerate(self.layers):
            if not isinstance(layer, (LSTM, Bidirectional)):
                raise TypeError(f"layers[{index}]={layer!r} for Stack: expected an lstmgen.LSTM "
                                "or lstmgen.Bidirectional")
            if index < len(self.layers) - 1 and (not layer.return_sequences
                                                 or getattr(layer, "merge_mode", "") is None):
                raise ValueError(f"layers[{index}] ({layer.name!r}) for Stack: every layer but the "
                                 "last must return one sequence (return_sequences=True, and a "
                                 "merge_mode for a Bidirectional) for the next layer to read")
            for attribute in ("return_state", "time_major"):
                if getattr(layer, attribute) != getattr(self.layers[0], attribute):
                    raise ValueError(f"layers[{index}] ({layer.name!r}) for Stack: {attribute}="
                                     f"{getattr(layer, attribute)}, layers[0] has "
                                     f"{getattr(self.layers[0], attribute)}; it must be the same "
                                     "for every layer")
        try:
            self.dropout = checked_rate("dropout", dropout)
        except SpecError as err:
            raise err.within("Stack") from None
        self._rng = np.random.default_rng(seed)

    @property
    def return_state(self) -> bool:
        return self.layers[0].return_state

    def __call__(self, inputs, mask=None, training=False, initial_state=None):
        if initial_state is None:
            initial_state = [None] * len(self.layers)
        elif not isinstance(initial_state, (list, tuple)) or len(initial_state) != len(self.layers):
            raise ValueError(f"initial_state for Stack: expected a list with one entry per layer "
                             f"({len(self.layers)}), each None or that layer's states")
        x, states = inputs, []
        for index, (layer, initial) in enumerate(zip(self.layers, initial_state)):
            result = layer(x, mask=mask, training=training, initial_state=initial)
            if self.return_state:
                width = 4 if isinstance(layer, Bidirectional) else 2
                states.append(list(result[-width:]))
                result = result[0] if len(result) == width + 1 else result[:-width]
            x = result
            if training and self.dropout > 0 and index < len(self.layers) - 1:
                keep = 1.0 - self.dropout
                x = x * (self._rng.random(x.shape) < keep).astype(x.dtype) / x.dtype.type(keep)
        return [x, states] if self.return_state else x
