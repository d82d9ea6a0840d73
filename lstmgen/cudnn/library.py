"""Finding and loading cuDNN 9 (libcudnn.so.9), lazily: importing lstmgen never needs it.

Where lstmgen looks, in order: $CUDNN_PATH alone when it is set (its lib/, lib64/ or itself);
otherwise the lib/ folders of the nvidia-cudnn-cu12 / -cu13 wheels (found through their
metadata, then through the `nvidia` namespace package), then the system loader.
"""

import ctypes
import functools
import os
from importlib import metadata
from pathlib import Path

SONAME = "libcudnn.so.9"
WHEELS = ("nvidia-cudnn-cu12", "nvidia-cudnn-cu13")
INSTALL_HINT = ('install it with `pip install "lstmgen[cudnn]"` (or `pip install nvidia-cudnn-cu12`), '
                "or set CUDNN_PATH to a cuDNN 9 installation")


class CudnnUnavailable(RuntimeError):
    """cuDNN 9 cannot be used here; the message says where lstmgen looked and how to install it."""


def candidates() -> tuple:
    """Files to try for libcudnn.so.9, best first; the bare soname last means the system loader."""
    root = os.environ.get("CUDNN_PATH")
    if root:
        return tuple(str(Path(root, sub, SONAME)) for sub in ("lib", "lib64", ""))
    found = []
    for wheel in WHEELS:
        try:
            dist = metadata.distribution(wheel)
        except metadata.PackageNotFoundError:
            continue
        found += [str(dist.locate_file(f)) for f in dist.files or [] if f.name == SONAME]
    try:
        import nvidia  # the namespace package of NVIDIA's wheels, should their metadata be missing
        found += sorted(str(p) for folder in nvidia.__path__ for p in Path(folder).glob(f"*/lib/{SONAME}"))
    except ImportError:
        pass
    return tuple(dict.fromkeys(found)) + (SONAME,)


def load() -> ctypes.CDLL:
    """The loaded library, checked to be cuDNN 9.x; raises CudnnUnavailable saying why not."""
    return _load(candidates())


@functools.lru_cache(maxsize=None)
def _load(paths: tuple) -> ctypes.CDLL:
    tried = []
    for path in paths:
        folder = os.path.dirname(path)
        if folder and not os.path.isfile(path):
            tried.append(f"{path} (no such file)")
            continue
        try:
            library = ctypes.CDLL(path)  # it finds its sub-libraries beside it (RPATH $ORIGIN)
        except OSError as err:
            tried.append(f"{path} ({err})")
            continue
        library.cudnnGetVersion.restype = ctypes.c_size_t
        number = library.cudnnGetVersion()
        if not 90000 <= number < 100000:
            raise CudnnUnavailable(f"{path} is cuDNN version {number}; lstmgen needs cuDNN 9.x: "
                                   f"{INSTALL_HINT}")
        return library
    raise CudnnUnavailable(f"cuDNN 9 ({SONAME}) was not found; looked in: {'; '.join(tried)}. "
                           f"To use the cudnn target, {INSTALL_HINT}.")


def version() -> tuple:
    """(major, minor, patch) of the loaded cuDNN."""
    number = load().cudnnGetVersion()
    return number // 10000, number // 100 % 100, number % 100


@functools.lru_cache(maxsize=None)
def unavailable_reason():
    """Why the cuDNN target cannot run in this process (no GPU, no library), or None when it can.

    Looked up once per process; the GPU first, as that is the cheap answer on a CPU machine.
    """
    from lstmgen.devices import cuda_unusable

    why_not = cuda_unusable()
    if why_not:
        return why_not
    try:
        from numba import cuda
    except ImportError as err:
        return f"numba's CUDA target cannot be imported ({err})"
    if not cuda.is_available():
        return "no CUDA GPU is available (numba.cuda.is_available() is False)"
    try:
        load()
    except CudnnUnavailable as err:
        return str(err)
    return None
