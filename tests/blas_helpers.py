"""Tests of the MKL variant skip, with the reason, where the mkl wheel is not installed."""

import pytest

from lstmgen import blas


def skip_without(name: str) -> None:
    if name == "mkl" and blas.mkl_runtime() is None:
        pytest.skip("the mkl wheel is not installed (pip install 'lstmgen[mkl]')")
