"""cuDNN discovery, lazy failure, the prototype table and descriptors, without a GPU.

The tests that load the real library need the nvidia-cudnn-cu12 wheel (in the `test` extra) and
skip with a reason where it is absent; cudnnCreate is expected to fail cleanly with no GPU.
"""

import os
import re
import subprocess
import sys

import pytest

from lstmgen.cudnn import bindings as b
from lstmgen.cudnn import library
from lstmgen.cudnn.bindings import CudnnError, api
from lstmgen.cudnn.descriptors import (Handle, RNNDataDescriptor, RNNDescriptor, TensorDescriptor)
from lstmgen.cudnn.library import CudnnUnavailable


def _cudnn_reason():
    try:
        library.load()
    except CudnnUnavailable as err:
        return str(err)
    return None


NO_CUDNN = _cudnn_reason()
needs_cudnn = pytest.mark.skipif(NO_CUDNN is not None, reason=f"cuDNN 9 is not installed "
                                 f"(pip install nvidia-cudnn-cu12): {NO_CUDNN}")


def test_cudnn_path_to_an_empty_folder_fails_when_used_and_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDNN_PATH", str(tmp_path))
    assert library.candidates() == tuple(str(tmp_path / sub / library.SONAME)
                                         for sub in ("lib", "lib64", ""))
    with pytest.raises(CudnnUnavailable, match=r"pip install \"lstmgen\[cudnn\]\"") as caught:
        library.load()
    assert str(tmp_path) in str(caught.value) and "not found" in str(caught.value)


def test_a_missing_library_fails_only_when_a_function_is_called(tmp_path):
    env = {**os.environ, "CUDNN_PATH": str(tmp_path)}
    script = ("import numpy as np, lstmgen\n"
              "from lstmgen.cudnn.bindings import api\n"
              "from lstmgen.cudnn.library import CudnnUnavailable\n"
              "layer = lstmgen.LSTM(3, return_sequences=True)\n"
              "assert layer(np.ones((2, 4, 5), 'float32')).shape == (2, 4, 3)\n"
              "try:\n    api.cudnnCreateRNNDescriptor\nexcept CudnnUnavailable as err:\n"
              "    print('unavailable:', err)\n")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "unavailable: cuDNN 9 (libcudnn.so.9) was not found" in result.stdout


def test_a_name_outside_the_prototype_table_is_an_attribute_error():
    with pytest.raises(AttributeError, match="prototype table"):
        api.cudnnFindRNNForwardInferenceAlgorithmEx


def test_every_prototype_has_its_c_declaration_above_it():
    source = open(b.__file__, encoding="utf-8").read()
    for name in b.PROTOTYPES:
        assert re.search(rf"^    # .*\b{name}\(", source, re.M), f"no C prototype comment for {name}"


@needs_cudnn
def test_the_loaded_library_is_cudnn_9():
    major, minor, patch = library.version()
    assert major == 9 and minor >= 0 and patch >= 0


@needs_cudnn
@pytest.mark.parametrize("name", sorted(b.PROTOTYPES))
def test_every_declared_symbol_resolves(name):
    function = getattr(api, name)
    assert function.argtypes is not None and function.restype is b.PROTOTYPES[name][0]


@needs_cudnn
def test_a_bad_status_becomes_an_error_carrying_cudnns_message():
    with RNNDescriptor() as rnn, pytest.raises(CudnnError, match="CUDNN_STATUS_BAD_PARAM") as caught:
        rnn.set_lstm(b.DATA_FLOAT, input_size=3, units=0)
    assert caught.value.function == "cudnnSetRNNDescriptor_v8" and caught.value.status != 0


@needs_cudnn
def test_descriptors_are_created_set_and_freed_once():
    with TensorDescriptor() as tensor, RNNDescriptor() as rnn, RNNDataDescriptor() as data:
        tensor.set(b.DATA_FLOAT, (1, 4, 5))
        assert tensor.dims() == (1, 4, 5)
        rnn.set_lstm(b.DATA_FLOAT, input_size=3, units=5)
        rnn.set_lstm(b.DATA_DOUBLE, input_size=3, units=5)
        data.set_batch_major(b.DATA_FLOAT, [4, 2, 1], max_length=4, vector_size=3)
        data.set_batch_major(b.DATA_DOUBLE, [4, 2, 1], max_length=4, vector_size=3)
    assert tensor.closed and rnn.closed and data.closed
    tensor.close()  # a second close does nothing


@needs_cudnn
def test_cudnn_create_fails_cleanly_without_a_gpu_and_works_with_one():
    from lstmgen.cudnn.library import unavailable_reason

    if unavailable_reason() is None:  # a GPU and cuDNN: the handle is made and freed
        handle = Handle()
        handle.close()
        assert handle.closed
        return
    with pytest.raises(CudnnError, match="cudnnCreate failed with CUDNN_STATUS_"):
        Handle()
