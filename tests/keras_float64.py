"""Keras 3.15's torch `ops.matmul` computes float64 operands in float32 (type promotion off
TensorFlow), and LSTMCell uses it on its masked, unrolled and dropout paths. Test modules that
hold float64 Keras layers to 1e-12 import `exact_float64_matmul` (an autouse fixture) from here.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from keras.src import backend as keras_backend  # noqa: E402

KERAS_MATMUL = keras_backend.numpy.matmul


@pytest.fixture(autouse=True)
def exact_float64_matmul(monkeypatch):
    """Use torch's float64 matmul where Keras would round float64 operands to float32."""
    def matmul(x1, x2):
        x1, x2 = keras.ops.convert_to_tensor(x1), keras.ops.convert_to_tensor(x2)
        if x1.dtype == x2.dtype == torch.float64:
            return torch.matmul(x1, x2)
        return KERAS_MATMUL(x1, x2)
    monkeypatch.setattr(keras_backend.numpy, "matmul", matmul)


def test_keras_matmul_rounds_float64_to_float32():
    # The reason for exact_float64_matmul: drop it once Keras keeps float64 here.
    a = np.random.default_rng(0).normal(size=(3, 3))
    assert KERAS_MATMUL(a, a).dtype == torch.float32
