"""Session-wide test setup: Keras backend, one generated-code cache directory, hypothesis profiles.

Numba compiles every new variant (activation pair x flags x dtype x sizes) in seconds, so the
property tests draw structure from few values and let hypothesis vary the data instead.
"""

import os

import pytest
from hypothesis import settings

# Before any test module imports keras: the backend is fixed at keras's first import.
os.environ.setdefault("KERAS_BACKEND", "torch")

settings.register_profile("ci", deadline=None, max_examples=25, derandomize=False, print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=200, derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session", autouse=True)
def lstmgen_cache_dir(tmp_path_factory):
    """One empty LSTMGEN_CACHE_DIR for the whole session, set before any test calls a layer.

    The variant cache reads the variable on every lookup, so a session fixture is early enough
    (no test module calls a layer at import), and the user's own cache is never touched.
    """
    directory = tmp_path_factory.mktemp("lstmgen-cache")
    previous = os.environ.get("LSTMGEN_CACHE_DIR")
    os.environ["LSTMGEN_CACHE_DIR"] = str(directory)
    yield directory
    if previous is None:
        del os.environ["LSTMGEN_CACHE_DIR"]
    else:
        os.environ["LSTMGEN_CACHE_DIR"] = previous
