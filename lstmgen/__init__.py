"""lstmgen: compile Keras LSTM layers into specialized Numba code."""

from lstmgen.batch_threads import get_num_threads, set_num_threads
from lstmgen.bidirectional import Bidirectional
from lstmgen.cudnnlstm import CuDNNLSTM
from lstmgen.errors import ModelImportError, SpecError
from lstmgen.interop.keras import from_keras
from lstmgen.interop.torch import TorchLSTM, from_torch
from lstmgen.runtime import LSTM
from lstmgen.spec import LSTMSpec
from lstmgen.stack import Stack
from lstmgen.version import GENERATOR_VERSION as __version__

__all__ = ["Bidirectional", "CuDNNLSTM", "LSTM", "LSTMSpec", "ModelImportError", "SpecError",
           "Stack", "TorchLSTM", "__version__", "from_keras", "from_torch", "get_num_threads",
           "onnx_backend", "set_num_threads"]


def __getattr__(name):
    # onnx_backend subclasses onnx's Backend: import onnx only when it is asked for.
    if name == "onnx_backend":
        from lstmgen.interop.onnx_backend import OnnxBackend

        return OnnxBackend
    raise AttributeError(f"module 'lstmgen' has no attribute {name!r}")
