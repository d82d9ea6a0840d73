"""lstmgen: compile Keras LSTM layers into specialized Numba code."""

from lstmgen.batch_threads import get_num_threads, set_num_threads
from lstmgen.cudnnlstm import CuDNNLSTM
from lstmgen.errors import SpecError
from lstmgen.runtime import LSTM
from lstmgen.spec import LSTMSpec
from lstmgen.version import GENERATOR_VERSION as __version__

__all__ = ["CuDNNLSTM", "LSTM", "LSTMSpec", "SpecError", "__version__", "get_num_threads",
           "set_num_threads"]
