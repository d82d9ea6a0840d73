"""`lstmgen compile MODEL`: every LSTM layer of a model file (.keras, .h5, .onnx) as a generated
module plus its weights.

Each layer that runs as an lstmgen.LSTM gets the module of its variant (layers of one variant
share it) and an .npz of its weights beside it, named `<model stem>.<layer key>.npz`, which the
module's `load(path)` reads back as its weight arguments. The .npz also holds `spec` (the layer's
whole LSTMSpec as JSON, so `lstmgen.LSTM.from_config` can rebuild the layer), `layer` (its key) and
`module` (the module's name). Everything is read and rendered before the first file is written.
"""

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstmgen.bidirectional import Bidirectional
from lstmgen.cudnnlstm import CuDNNLSTM
from lstmgen.lower.plan import VariantKey, generation_key
from lstmgen.lower.cpu import weight_params
from lstmgen.render import render, write_if_changed
from lstmgen.runtime import LSTM


@dataclass(frozen=True)
class ExportedLayer:
    key: str  # the layer's key in the model ("outer/inner" inside nested models)
    module: Path
    weights: Path


def export_model(path: str, directory: Path, target: str = "auto", blas: str = "numpy") -> list:
    """Write the module and the weights of every LSTM layer in the model file at `path`."""
    runners = [(key, runner) for key, layer in _model_layers(path).items()
               for key, runner in _runners(key, layer)]
    stem, directory = Path(path).stem, Path(directory)
    exported, sources, weight_files = [], {}, {}
    for key, runner in runners:
        variant = generation_key(runner.spec, target, blas)
        module = directory / f"{variant.module_name}.py"
        if module not in sources:  # layers of one variant share its module: render it once
            sources[module] = render(variant)
        weights = directory / f"{stem}.{_file_safe(key)}.npz"
        if weights in weight_files:
            raise ValueError(f"{path}: layers {weight_files[weights][0]!r} and {key!r} would both "
                             f"save their weights as {weights.name}")
        weight_files[weights] = (key, _weights_file(key, runner, variant))
        exported.append(ExportedLayer(key, module, weights))
    for module, source in sources.items():
        write_if_changed(module, source)
    for weights, (_, data) in weight_files.items():
        write_if_changed(weights, data)
    return exported


def _model_layers(path: str) -> dict:
    """{key: layer} of a .onnx file's LSTM nodes, or of a Keras model file's LSTM layers."""
    if Path(path).suffix.lower() != ".onnx":
        from lstmgen.interop.keras import from_keras

        return from_keras(path)
    try:
        from lstmgen.interop.onnx_backend import read_model_file
    except ImportError:
        raise ImportError("reading .onnx files needs onnx: pip install 'lstmgen[onnx]'") from None
    return read_model_file(path)


def _runners(key: str, layer) -> list:
    """(key, lstmgen.LSTM) of each LSTM that runs `layer`."""
    if isinstance(layer, LSTM):
        return [(key, layer)]
    if isinstance(layer, CuDNNLSTM):
        return [(key, layer.runner)]
    if isinstance(layer, Bidirectional):  # each direction its own module; the merge is the caller's
        return (_runners(f"{key}/forward", layer.forward_layer)
                + _runners(f"{key}/backward", layer.backward_layer))
    raise TypeError(f"{key}: cannot compile a {type(layer).__name__} layer")


def _weights_file(key: str, runner: LSTM, variant: VariantKey) -> bytes:
    if not runner.built:
        raise ValueError(f"{key}: the layer has no weights to save")
    arrays = dict(zip(weight_params(variant), runner.get_weights()))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, spec_hash=np.str_(variant.hash), layer=np.str_(key),
             module=np.str_(variant.module_name),
             spec=np.str_(json.dumps({**runner.spec.to_dict(), "name": runner.name})))
    return buffer.getvalue()


def _file_safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key)
