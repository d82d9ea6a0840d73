"""Keras layers, models and model files into lstmgen layers: `from_keras`.

Accepted: a live Keras 3 LSTM or Bidirectional layer, or a model; a Keras 3 `.keras` archive
(config.json and model.weights.h5, read with zipfile and h5py); a legacy HDF5 model file
(`model_config` attribute and `model_weights` groups) from Keras 3 or tf.keras, whose LSTM and
CuDNNLSTM layers are taken with tf.keras's meaning (lstmgen.spec reads tf.keras configs;
CuDNNLSTM keeps its stored weights).
Bidirectional(LSTM) and tf.keras Bidirectional(CuDNNLSTM) wrappers become lstmgen.Bidirectional.
Files are read without importing Keras.
Weights: kernel [C, 4H], recurrent_kernel [H, 4H], bias [4H] (CuDNNLSTM: [8H]); a Bidirectional's
are its forward layer's, then its backward layer's.
"""

import dataclasses
import io
import json
import os
import re
import sys
import zipfile

import numpy as np

from lstmgen.bidirectional import Bidirectional
from lstmgen.errors import ModelImportError
from lstmgen.cudnnlstm import CuDNNLSTM
from lstmgen.runtime import LSTM

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_WEIGHT_NAMES = ("kernel", "recurrent_kernel", "bias")
# The Keras classes imported, by the lstmgen class that runs them.
_CLASSES = {"LSTM": LSTM, "CuDNNLSTM": CuDNNLSTM, "Bidirectional": Bidirectional}


@dataclasses.dataclass(frozen=True)
class FoundLayer:
    """One LSTM-like layer of a model (or a Bidirectional of them): its key ("outer/inner" inside
    nested models), its Keras class name, its layer config, and a function returning its weights
    (a list of arrays)."""

    key: str
    class_name: str
    config: dict
    weights: object


def from_keras(obj, name=None):
    """An lstmgen layer for a Keras LSTM or Bidirectional(LSTM) layer; for a model or a model
    file, a dict key -> layer of every such layer in it, or the one layer called `name`.

    `obj`: a live Keras 3 `LSTM` or `Bidirectional` layer or `Model`, or a path to a `.keras` or
    legacy `.h5` file. LSTM layers become `lstmgen.LSTM`, Bidirectional(LSTM) wrappers
    `lstmgen.Bidirectional`, tf.keras CuDNNLSTM layers `lstmgen.CuDNNLSTM` (inside a
    Bidirectional too).
    """
    if isinstance(obj, (str, bytes, os.PathLike)):
        source = os.fsdecode(obj)
        return _select(source, read_model_file(source), name, single=False)
    source, found, single = _live_layers(obj)
    return _select(source, found, name, single)


def read_model_file(path: str) -> list:
    """[FoundLayer] of a `.keras` or legacy `.h5` file."""
    if not os.path.exists(path):
        raise FileNotFoundError(2, "no such Keras model file", path)
    with open(path, "rb") as handle:
        head = handle.read(len(_HDF5_SIGNATURE))
    if zipfile.is_zipfile(path):
        return _read_keras_archive(path)
    if head == _HDF5_SIGNATURE:
        return _read_legacy_h5(path)
    raise ModelImportError(path, None, "neither a .keras archive (zip) nor an HDF5 (.h5) model "
                           "file; a truncated archive also looks like this")


def _select(source: str, found: list, name, single: bool):
    if name is not None:
        matches = [f for f in found if f.key == name or f.key.rsplit("/", 1)[-1] == name]
        if len(matches) != 1:
            problem = ("no LSTM layer of that name" if not matches else
                       f"several LSTM layers of that name: {', '.join(f.key for f in matches)}")
            raise ModelImportError(source, name, f"{problem}; LSTM layers: "
                                   f"{', '.join(f.key for f in found) or 'none'}")
        return _build(source, matches[0])
    if not found:
        raise ModelImportError(source, None, "no LSTM layer found")
    if single:
        return _build(source, found[0])
    return {f.key: _build(source, f) for f in found}


def _build(source: str, found: FoundLayer):
    try:
        weights = found.weights()
        layer = _CLASSES[found.class_name].from_config(found.config)
        if weights:
            layer.set_weights(weights)
    except ModelImportError:
        raise
    except (ValueError, TypeError, KeyError) as err:
        raise ModelImportError(source, found.key, str(err)) from err
    return layer


def _live_layers(obj) -> tuple:
    keras = sys.modules.get("keras")
    if keras is None or not isinstance(obj, keras.layers.Layer):
        raise TypeError(f"from_keras: expected a Keras 3 LSTM layer or model, or a path to a "
                        f".keras or .h5 file; got {type(obj).__name__}")
    source = f"Keras {type(obj).__name__} {obj.name!r}"
    if _live_class(keras, obj) is not None:
        return source, [_live_found(keras, obj, obj.name)], True
    if not isinstance(obj, keras.Model):
        raise ModelImportError(source, obj.name, f"a {type(obj).__name__} layer is not an LSTM")
    found = []
    _walk_live(keras, obj, "", found)
    return source, found, False


def _walk_live(keras, model, prefix: str, found: list) -> None:
    for layer in model.layers:
        key = prefix + layer.name
        if _live_class(keras, layer) is not None:
            found.append(_live_found(keras, layer, key))
        elif isinstance(layer, keras.Model):
            _walk_live(keras, layer, key + "/", found)


def _live_class(keras, layer):
    """The class name lstmgen imports a layer as (LSTM, or Bidirectional of LSTM layers), or None."""
    if isinstance(layer, keras.layers.LSTM):
        return "LSTM"
    if isinstance(layer, keras.layers.Bidirectional) and isinstance(layer.forward_layer,
                                                                    keras.layers.LSTM):
        return "Bidirectional"
    return None


def _live_found(keras, layer, key: str) -> FoundLayer:
    return FoundLayer(key, _live_class(keras, layer), layer.get_config(),
                      lambda: [np.asarray(w) for w in layer.get_weights()])


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("reading .keras and .h5 files needs h5py: pip install "
                          "'lstmgen[import]' (or pip install h5py)") from None
    return h5py


def _read_keras_archive(path: str) -> list:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names:
                raise ModelImportError(path, None, "zip archive without config.json: not a "
                                       "Keras model archive")
            config = json.loads(archive.read("config.json"))
            if "model.weights.h5" not in names:
                raise ModelImportError(path, None, "archive without model.weights.h5 (only "
                                       "HDF5 weight stores are read)")
            weights = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, EOFError, OSError, json.JSONDecodeError) as err:
        raise ModelImportError(path, None, f"unreadable .keras archive ({err})") from err
    found = []
    with _open_h5(path, io.BytesIO(weights)) as store:
        _walk_keras3(path, config, store, "", "", found)
        return [_read_now(f) for f in found]


def _open_h5(path: str, file):
    h5py = _h5py()
    try:
        return h5py.File(file, "r")
    except OSError as err:
        raise ModelImportError(path, None, f"unreadable HDF5 data, truncated or corrupt ({err})") from err


def _layer_configs(path: str, model_config, key: str) -> list:
    """The layer entries of a model config (Functional/Sequential dict, or Keras 2's plain list)."""
    config = model_config.get("config") if isinstance(model_config, dict) else None
    layers = config.get("layers") if isinstance(config, dict) else config
    if not isinstance(layers, list):
        raise ModelImportError(path, key or None, "the model config has no list of layers (not a "
                               "model, or a subclassed model, whose layers are not in its config)")
    return layers


def _walk_keras3(path, model_config, store, h5_path, prefix, found) -> None:
    """Keras 3 stores a model's layers under `layers/<snake_case class name>[_<k>]` in the order
    of `model.layers`, each layer's variables in `vars` (named there) and its cell's in `cell/vars`."""
    used = {}
    for entry in _layer_configs(path, model_config, prefix.rstrip("/")):
        class_name = entry.get("class_name")
        config = entry.get("config") or {}
        key = prefix + str(config.get("name", entry.get("name")))
        snake = _snake_case(str(class_name))
        used[snake] = used.get(snake, -1) + 1
        child = f"{h5_path}layers/{snake}" + (f"_{used[snake]}" if used[snake] else "")
        if class_name == "LSTM":
            found.append(FoundLayer(key, "LSTM", _without_shared_ids(config),
                                    lambda child=child, key=key: _keras3_weights(path, store, child, key)))
        elif class_name == "Bidirectional" and _wrapped(config) == "LSTM":
            # Keras 3 saves the wrapper's two layers as its attributes forward_layer, backward_layer.
            found.append(FoundLayer(key, "Bidirectional", _without_shared_ids(config),
                                    lambda child=child, key=key: [
                                        w for side in ("forward_layer", "backward_layer")
                                        for w in _keras3_weights(path, store, f"{child}/{side}", key)]))
        elif isinstance(config.get("layers"), list):
            _walk_keras3(path, entry, store, child + "/", key + "/", found)


def _without_shared_ids(value):
    """A config without the `shared_object_id` keys .keras archives add to shared objects."""
    if isinstance(value, dict):
        return {k: _without_shared_ids(v) for k, v in value.items() if k != "shared_object_id"}
    return [_without_shared_ids(v) for v in value] if isinstance(value, list) else value


def _snake_case(name: str) -> str:
    """Keras's `naming.to_snake_case`."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras3_weights(path: str, store, group_path: str, key: str) -> list:
    group = store.get(f"{group_path}/cell/vars")
    if group is None:
        raise ModelImportError(path, key, f"no weights in model.weights.h5 (expected "
                               f"{group_path}/cell/vars)")
    return [np.asarray(group[k]) for k in sorted(group, key=int)]


def _read_legacy_h5(path: str) -> list:
    with _open_h5(path, path) as store:
        return [_read_now(f) for f in _legacy_layers(path, store)]


def _read_now(found: FoundLayer) -> FoundLayer:
    """The layer with its weights read while the file is open; a problem with them is raised
    only if this layer is imported."""
    try:
        weights = found.weights()
    except ModelImportError as err:
        def weights(err=err):
            raise err
        return dataclasses.replace(found, weights=weights)
    return dataclasses.replace(found, weights=lambda: weights)


def _legacy_layers(path: str, store) -> list:
    if "model_config" not in store.attrs:
        problem = ("an HDF5 file of weights only (save_weights); a model file has a "
                   "model_config attribute" if "layer_names" in store.attrs or "model_weights" in store
                   else "HDF5 file without a model_config attribute: not a Keras model file")
        raise ModelImportError(path, None, problem)
    try:
        config = json.loads(_text(store.attrs["model_config"]))
    except (ValueError, TypeError) as err:
        raise ModelImportError(path, None, f"model_config is not valid JSON ({err})") from err
    weights = store["model_weights"] if "model_weights" in store else store
    found = []
    _walk_legacy(path, config, weights, None, "", found)
    return found


def _walk_legacy(path, model_config, weights, top, prefix, found) -> None:
    """Legacy files keep one group per top-level layer, `model_weights/<layer name>`, whose
    `weight_names` attribute lists its weights (a nested model's group holds all of its layers')."""
    for entry in _layer_configs(path, model_config, prefix.rstrip("/")):
        class_name = entry.get("class_name")
        config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
        name = str(config.get("name", entry.get("name")))
        key, group_name = prefix + name, top or name
        if class_name in ("LSTM", "CuDNNLSTM"):
            found.append(FoundLayer(key, class_name, config, lambda name=name, key=key, g=group_name:
                                    _legacy_weights(path, weights, g, name, key)))
        elif class_name == "Bidirectional" and _wrapped(config) in ("LSTM", "CuDNNLSTM"):
            found.append(FoundLayer(key, class_name, config, lambda name=name, key=key, g=group_name:
                                    _legacy_weights(path, weights, g, name, key, halves=2)))
        elif isinstance(config.get("layers"), list) or isinstance(entry.get("config"), list):
            _walk_legacy(path, entry, weights, group_name, key + "/", found)


def _wrapped(config: dict):
    """The class name of the layer a Bidirectional config wraps."""
    layer = config.get("layer")
    return layer.get("class_name") if isinstance(layer, dict) else None


def _legacy_weights(path: str, weights, group_name: str, name: str, key: str, halves=1) -> list:
    """The layer's kernel, recurrent kernel and bias; with halves=2 (a Bidirectional) those of
    the first half of its weight names (the forward layer's) then of the second, as Keras loads
    them (by position)."""
    if group_name not in weights:
        raise ModelImportError(path, key, f"no weight group model_weights/{group_name}")
    group = weights[group_name]
    names = [_text(n) for n in group.attrs.get("weight_names", [])]
    if group_name != name:  # inside a nested model: the weights whose path names this layer
        names = [n for n in names if f"/{name}/" in "/" + n]
    size = len(names) // halves
    return [w for k in range(halves)
            for w in _weights_by_kind(path, group, group_name, names[k * size:(k + 1) * size], key)]


def _weights_by_kind(path: str, group, group_name: str, names: list, key: str) -> list:
    by_kind = {}
    for weight_name in names:
        kind = weight_name.rsplit("/", 1)[-1].split(":")[0]
        if kind in _WEIGHT_NAMES:
            by_kind[kind] = weight_name
    missing = [k for k in _WEIGHT_NAMES[:2] if k not in by_kind]
    if missing:
        raise ModelImportError(path, key, f"no {' or '.join(missing)} among the stored weights "
                               f"{names}")
    absent = [by_kind[k] for k in _WEIGHT_NAMES if k in by_kind and by_kind[k] not in group]
    if absent:
        raise ModelImportError(path, key, f"weight {absent[0]!r} is listed in weight_names but "
                               f"missing from model_weights/{group_name}")
    return [np.asarray(group[by_kind[k]]) for k in _WEIGHT_NAMES if k in by_kind]


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)
