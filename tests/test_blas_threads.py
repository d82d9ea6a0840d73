"""BLAS stays single-threaded while kernels run, and gets its own setting back afterwards."""

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from lstmgen.blas_threads import single_threaded_blas


def blas_threads():
    # Sequential MKL (lstmgen's MKL code, once loaded) has one thread whatever it is asked.
    return [lib["num_threads"] for lib in threadpool_info()
            if lib["user_api"] == "blas" and lib.get("threading_layer") != "sequential"]


def test_single_threaded_inside_and_restored_after_even_on_error():
    with single_threaded_blas():
        pass  # loads the BLAS Numba uses, so it is counted below
    with threadpool_limits(2, user_api="blas"):
        assert set(blas_threads()) == {2}
        with pytest.raises(RuntimeError):
            with single_threaded_blas():
                assert set(blas_threads()) == {1}
                np.ones((4, 4)) @ np.ones((4, 4))
                raise RuntimeError("a failing kernel")
        assert set(blas_threads()) == {2}


def test_overlapping_calls_restore_the_setting_only_when_the_last_one_ends():
    with single_threaded_blas():
        pass
    with threadpool_limits(2, user_api="blas"):
        first, second = single_threaded_blas(), single_threaded_blas()
        first.__enter__()
        second.__enter__()  # another thread's call starting while the first runs
        first.__exit__(None, None, None)
        assert set(blas_threads()) == {1}, "the second call still runs"
        second.__exit__(None, None, None)
        assert set(blas_threads()) == {2}
