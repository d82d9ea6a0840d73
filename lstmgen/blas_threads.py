"""Keep BLAS single-threaded while a generated kernel runs.

The layer runs parts of the batch on several threads (batch_threads), each calling BLAS; BLAS
threads on top of those oversubscribe the cores (measured 8-16x slower on 2 cores).
"""

from contextlib import contextmanager
from functools import lru_cache


@lru_cache(maxsize=1)
def _blas_libraries() -> tuple:
    # Numba's np.dot calls the BLAS behind scipy.linalg.cython_blas: load it before looking.
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import ThreadpoolController

    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


@contextmanager
def single_threaded_blas():
    """Limit every loaded BLAS to one thread; restore each one's setting on exit."""
    libraries = _blas_libraries()
    before = [lib.get_num_threads() for lib in libraries]
    for lib in libraries:
        lib.set_num_threads(1)
    try:
        yield
    finally:
        for lib, threads in zip(libraries, before):
            lib.set_num_threads(threads)
