"""Keep BLAS single-threaded while a generated kernel runs.

The layer runs parts of the batch on several threads (batch_threads), each calling BLAS; BLAS
threads on top of those oversubscribe the cores (measured 8-16x slower on 2 cores).
"""

import threading
from contextlib import contextmanager
from functools import lru_cache


@lru_cache(maxsize=1)
def _blas_libraries() -> tuple:
    # Numba's np.dot calls the BLAS behind scipy.linalg.cython_blas: load it before looking.
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import ThreadpoolController

    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


# Calls on several threads at once share one limit: the first in saves the settings, the last
# out restores them (each restoring its own view would leave BLAS at one thread for good).
_lock = threading.Lock()
_active = 0
_saved = []


@contextmanager
def single_threaded_blas():
    """Limit every loaded BLAS to one thread; restore each one's setting when the last call ends."""
    global _active, _saved
    libraries = _blas_libraries()
    with _lock:
        if _active == 0:
            _saved = [lib.get_num_threads() for lib in libraries]
            for lib in libraries:
                lib.set_num_threads(1)
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                for lib, threads in zip(libraries, _saved):
                    lib.set_num_threads(threads)
