"""Native libraries: a variant's inference entry points (forward_into, forward_masked_into,
forward_stepwise_into) and the worker threads' spin loops compiled ahead of time into shared
libraries that run without Numba's JIT.

A process that finds them starts in a fraction of the time: no Numba import, no set-up of its
CPU target (which imports scipy), nothing loaded from Numba's cache (measured: 0.47 s from
process start to a small layer's first result with Numba's cache warm, 0.12 s with the library).
Loading one takes ctypes only.

Built from the generated module's `native_<entry>_into` (the `_into` body on pointers, scratch
from the caller: lower.cpu.native_shapes): Numba compiles it as numba.cfunc would, but ahead of
time (numba.pycc's codegen), every function but the entry is made internal and what only Numba's
wrappers used is dropped, so that what remains undefined is exactly what the code calls. Code
that needs Numba's runtime (allocation, exceptions, NumPy's BLAS through Numba) shows there, and
the build is refused unless MKL and the C maths library provide every symbol. The system's C
compiler (`cc`) links the object, with libmkl_rt as a dependency in MKL variants (NumPy-BLAS
variants have a library only where their code calls no BLAS: lower.cpu.calls_numpy_blas). The
file name carries everything the machine code depends on: the generated module's name (its
spec), the entry, the generator, Numba's and llvmlite's versions, MKL's path and the CPU.
"""

import ctypes
import ctypes.util
import functools
import hashlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np

from lstmgen import blas
from lstmgen.lower.cpu import PADDING_SCRATCH, PANEL_COLUMNS, ZX_ROWS, native_scratch, native_shapes
from lstmgen.lower.plan import VariantKey
from lstmgen.sources import generator_digest

ENV = "LSTMGEN_NATIVE"
SPIN_SYMBOLS = {"wait_while": "lstmgen_wait_while", "serve": "lstmgen_serve"}
_CBLAS_B_MATRIX = 162  # CblasBMatrix: which operand cblas_?gemm_pack_get_size sizes
_ALIGNMENT = 64


class NativeUnavailable(Exception):
    """This variant gets no native library here; the message says why."""


def enabled() -> bool:
    """Whether native libraries are built and used: on Linux, unless $LSTMGEN_NATIVE is 0."""
    return sys.platform.startswith("linux") and os.environ.get(ENV, "1").strip() != "0"


def supported(key: VariantKey, entry_name: str) -> bool:
    return enabled() and bool(native_shapes(key, entry_name))


def _symbol(entry_name: str) -> str:
    return f"lstmgen_native_{entry_name}_into"


@functools.lru_cache(maxsize=1)
def _machine_id() -> str:
    """What the machine code depends on besides the variant, hashed (cheap: no Numba import)."""
    cpu = blas.cpu_fields()
    parts = [generator_digest(), metadata.version("numba"), metadata.version("llvmlite"),
             str(blas.mkl_runtime()), cpu.get("model name", ""), cpu.get("flags", "")]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def library_path(key: VariantKey, entry_name: str, directory: Path) -> Path:
    return Path(directory) / f"{key.module_name}.{entry_name}.native-{_machine_id()}.so"


def why_not_path(library: Path) -> Path:
    """Where a refused build leaves its reason, so that later processes do not build again (and
    someone wondering why a call imports Numba can read it)."""
    return library.with_suffix(".why-not")


def build(key: VariantKey, entry_name: str, module, path: Path) -> None:
    """Compile `module`'s native_<entry_name>_into (`module`: the generated module of `key`) into
    the library at `path`, written whole or not at all. NativeUnavailable if it cannot run
    without Numba."""
    from numba import types

    signature = types.void(types.CPointer(types.int64))  # native_arguments, in a row
    _build_library({_symbol(entry_name): (getattr(module, f"native_{entry_name}_into"), signature)},
                   module.CODEGEN_OPTIONS, [blas.mkl_runtime()] if key.blas == "mkl" else [], path)


def _build_library(entries: dict, options: dict, libraries: list, path: Path) -> None:
    """Compile each Python function of `entries` (symbol -> (function, Numba signature)) as
    numba.cfunc(signature, **options) would, into one shared library at `path`, linked to
    `libraries`."""
    import llvmlite.binding as ll

    compiler = shutil.which("cc")
    if compiler is None:
        raise NativeUnavailable("no C compiler (cc) on the PATH to link a native library")
    llvm_module = ll.parse_assembly(_compiled_ahead(entries, options))
    for defined in llvm_module.functions:
        if not defined.is_declaration and defined.name not in entries:
            defined.linkage = "internal"
    for variable in llvm_module.global_variables:
        if not variable.is_declaration:
            variable.linkage = "internal"
    machine = ll.Target.from_default_triple().create_target_machine(
        cpu=ll.get_host_cpu_name(), features=ll.get_host_cpu_features().flatten(), opt=3,
        reloc="pic", codemodel="default")
    # Numba has optimized the code (O3); with everything internal, what only served its wrappers
    # goes: the entry's status is constant (nothing raises), so its error branch, which calls
    # into Python, folds away, then what nothing calls. (O3 once more took 0.25 s for the same.)
    # Twice: where the first round specializes a callee (a blocked product left out of line),
    # the status it returns is known only to the second (measured: H = 8).
    builder = ll.create_pass_builder(machine, ll.create_pipeline_tuning_options(speed_level=0))
    passes = builder.getModulePassManager()
    for _ in range(2):
        passes.add_ipsccp_pass()
        passes.add_simplify_cfg_pass()
    passes.add_global_dead_code_eliminate_pass()
    passes.add_strip_dead_prototype_pass()
    passes.run(llvm_module, builder)
    needed = sorted({f.name for f in llvm_module.functions
                     if f.is_declaration and not f.name.startswith("llvm.")}
                    | {v.name for v in llvm_module.global_variables if v.is_declaration})
    foreign = [name for name in needed if not _provided_outside_numba(name)]
    if foreign:
        raise NativeUnavailable("its code needs Numba's runtime (it calls " + ", ".join(foreign)
                                + ")")
    with tempfile.TemporaryDirectory() as scratch:
        obj, linked = Path(scratch) / "library.o", Path(scratch) / "library.so"
        obj.write_bytes(machine.emit_object(llvm_module))
        # ld is given stubs that have only each library's name: it records the dependency
        # without reading the library (libmkl_rt's 15 MB took 0.1 s), and the loader binds the
        # symbols to the real one, found through the rpath, when ctypes loads ours (RTLD_NOW).
        stubs = [_link(compiler, Path(scratch) / f"stub{k}.so", ["-nostdlib",
                       f"-Wl,-soname,{Path(library).name}", "-x", "c", os.devnull])
                 for k, library in enumerate(libraries)]
        rpaths = [f"-Wl,-rpath,{Path(library).parent}" for library in libraries]
        _link(compiler, linked, [str(obj), "-Wl,--no-as-needed", *stubs, *rpaths, "-lm"])
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        shutil.copyfile(linked, temporary)
        os.replace(temporary, path)  # whole or not at all, also against a concurrent build


def _compiled_ahead(entries: dict, options: dict) -> str:
    """The optimized LLVM IR of `entries` (as in _build_library), each entry's C wrapper named by
    its symbol. Compiled the way numba.pycc compiles, for an object file: numba.cfunc would also
    have the JIT make machine code of it (0.24-0.35 s for a variant's entry), which is never run."""
    from numba.core import compiler
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target

    flags = compiler.Flags()
    cpu_target.options.parse_as_flags(flags, options)
    # What numba.cfunc compiles: the C wrapper, no Python one, and no machine code yet.
    flags.no_cpython_wrapper, flags.no_cfunc_wrapper, flags.no_compile = True, False, True
    with global_compiler_lock:
        context = cpu_target.target_context.with_aot_codegen("lstmgen_native", cpu_name="host")
        library = context.codegen().create_library("lstmgen_native")
        # Numba runs its function passes (an O3 function pipeline) on each function as it is
        # added, then the O3 module pipeline, which runs them again, on the whole library: here
        # only the second (0.15 s off a masked variant's build, 2.29-2.37 -> 2.12-2.19 s; the
        # callees, compiled by their own dispatchers, keep both). Should Numba rename the
        # method, this sets an unused attribute and the build takes as long as before.
        library._optimize_functions = functools.partial(_set_data_layout, library)
        for symbol, (function, signature) in entries.items():
            result = compiler.compile_extra(cpu_target.typing_context, context, function,
                                            signature.args, signature.return_type, flags,
                                            locals={}, library=library)
            library.get_function(result.fndesc.llvm_cfunc_wrapper_name).name = symbol
        library.finalize()
        return library.get_llvm_str()


def _set_data_layout(library, llvm_module) -> None:
    """What Numba's CPUCodeLibrary._optimize_functions does besides optimizing."""
    llvm_module.data_layout = str(library.codegen.target_data)


def _link(compiler: str, output: Path, arguments: list) -> str:
    """`compiler -shared -o output arguments`; the output's path."""
    result = subprocess.run([compiler, "-shared", "-o", str(output), *arguments],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise NativeUnavailable(f"cc could not link it: {result.stderr.strip()[:500]}")
    return str(output)


@functools.lru_cache(maxsize=None)
def _provided_outside_numba(name: str) -> bool:
    """Whether MKL or the C maths library defines `name` (MKL: the cblas functions it links; the
    maths library's handle also finds the C library's, such as sched_yield)."""
    if name.startswith("cblas_"):
        return True
    return hasattr(_libm(), name)


@functools.lru_cache(maxsize=1)
def _libm():
    return ctypes.CDLL(ctypes.util.find_library("m"))


@functools.lru_cache(maxsize=1)
def _mkl():
    """libmkl_rt, sequential, as generated modules set it (the library links the same file)."""
    library = ctypes.CDLL(blas.mkl_runtime(), mode=ctypes.RTLD_LOCAL)
    library.MKL_Set_Threading_Layer(1)  # MKL_THREADING_SEQUENTIAL
    return library


def aligned_empty(shape: tuple, dtype) -> np.ndarray:
    """np.empty(shape, dtype) starting on a 64-byte boundary (a cache line): ~1 us."""
    size = math.prod(shape) * dtype.itemsize
    buffer = np.empty(size + _ALIGNMENT, np.uint8)
    start = -_address(buffer) % _ALIGNMENT
    return buffer[start:start + size].view(dtype).reshape(shape)


def to_panels(matrix: np.ndarray, start=None) -> np.ndarray:
    """matrix [K, 4H] in the blocked product's panels [ceil(4H / PANEL_COLUMNS), K + 1,
    PANEL_COLUMNS], 64-byte aligned: panel p holds every row's columns from p * PANEL_COLUMNS,
    then those of `start` [4H] (zeros without one), which products start from; zeros past 4H.
    The layout of the generated module's _to_panels and _start_from, which its native libraries
    take ready."""
    depth, columns = matrix.shape
    count = -(-columns // PANEL_COLUMNS)
    padded = np.zeros((depth + 1, count * PANEL_COLUMNS), matrix.dtype)
    padded[:depth, :columns] = matrix
    if start is not None:
        padded[depth, :columns] = start
    panels = aligned_empty((count, depth + 1, PANEL_COLUMNS), matrix.dtype)
    panels[:] = padded.reshape(depth + 1, count, PANEL_COLUMNS).transpose(1, 0, 2)
    return panels


class NativeForward:
    """`<entry>_into` of one variant, run by its native library: the same arguments (NumPy arrays
    in the `_into` order), for C-contiguous arrays of the variant's dtype and shapes; a call with
    any other array runs `jit()` (the generated function) instead.

    Where the library takes weights in panels (blocked_*), they are laid out once per weight
    arrays, told apart by identity: an array passed once must not change in place afterwards
    (a layer's never do: set_weights copies).

    `address` and `part_arguments(...)` let lstmgen's worker threads call the library from native
    code (batch_threads, lstmgen.spin.serve): `<address>(arguments)` does what a call would."""

    def __init__(self, key: VariantKey, entry_name: str, path: Path, jit):
        self._jit = jit
        params = [param for param, _ in native_shapes(key, entry_name)]
        self._h, self._time_axis = params.index("h"), 0 if key.time_major else 1  # of x, first
        self._scratch_names = native_scratch(key, entry_name)
        # Each blocked_* scratch name's (matrix, start or None): indices among the arrays.
        sources = {"blocked_recurrent_kernel": (params.index("recurrent_kernel"), None),
                   "blocked_kernel": (params.index("kernel"),
                                      params.index("bias") if key.use_bias else None)}
        self._panel_names = [name for name in self._scratch_names if name.startswith("blocked")]
        self._panel_sources = [sources[name] for name in self._panel_names]
        self._panel_inputs = sorted({i for source in self._panel_sources for i in source
                                     if i is not None})
        if key.blas == "mkl":
            _mkl()  # loaded and set sequential first: the library links the same file
        function = getattr(ctypes.CDLL(str(path)), _symbol(entry_name))
        function.restype = None
        function.argtypes = [ctypes.c_void_p]  # int64 arguments: lower.cpu.native_arguments
        self._function = function
        self.address = ctypes.cast(function, ctypes.c_void_p).value
        self._pack_size = None  # MKL's cblas_?gemm_pack_get_size, for packed_* scratch
        if any(name.startswith("packed") for name in self._scratch_names):
            self._pack_size = getattr(_mkl(), f"cblas_{'s' if key.dtype == 'float32' else 'd'}"
                                              "gemm_pack_get_size")
            self._pack_size.restype = ctypes.c_size_t
            self._pack_size.argtypes = [ctypes.c_int] * 4
        # The rows of the matrix a packed_* buffer holds: recurrent_kernel [H, 4H], kernel [C, 4H].
        self._matrix_rows = {"recurrent_kernel": key.units, "kernel": key.input_dim}
        self._gates = 4 * key.units
        self._dtype, self._units = np.dtype(key.dtype), key.units
        self._scratch = threading.local()  # a calling thread's, and its weights in panels
        self._parts = {}  # part -> its scratch in split calls (part_arguments)

    def __call__(self, *arrays) -> None:
        parts = self.part_arguments(arrays)
        if parts is None:
            self._jit()(*arrays)  # nothing to run, or an array the library cannot take
            return
        self.call(parts[0])

    def call(self, arguments: np.ndarray) -> None:
        """Run the library on arguments from part_arguments."""
        self._function(_address(arguments))

    def part_arguments(self, arrays, axes=None, bounds=None):
        """The library's int64 arguments for each part of the batch, rows bounds[k] = (lo, hi)
        of arrays whose batch rows lie along `axes` (lower.cpu.batch_axis; without bounds, one
        part: the whole batch). None where the library cannot run them (then slice the arrays
        and call this object): an array not C-contiguous, or parts that would be strided.

        A part's addresses are the arrays' own plus lo rows, with no NumPy view made (slicing
        and reading back 11 arrays' addresses per part cost ~10 us of a split call). Scratch is
        the calling thread's without bounds, else part k's (the caller of batch_threads.run
        holds its lock while parts run)."""
        addresses = [_address(a) for a in arrays]
        n_batch, n_time = arrays[self._h].shape[0], arrays[0].shape[self._time_axis]
        if n_batch == 0 or n_time == 0 or None in addresses:
            return None
        if bounds is not None and any(axis not in (None, 0, ZX_ROWS) for axis in axes):
            return None  # a part of a time-major array is strided
        panels = self._panel_addresses(arrays)
        if bounds is None:
            return [np.array(addresses + self._tail(self._scratch.__dict__, n_batch, n_time, panels),
                             np.int64)]
        row_bytes = [0 if axis is None else array.strides[0] * (n_time if axis == ZX_ROWS else 1)
                     for array, axis in zip(arrays, axes)]
        return [np.array([address + lo * size for address, size in zip(addresses, row_bytes)]
                         + self._tail(self._parts.setdefault(k, {}), hi - lo, n_time, panels),
                         np.int64)
                for k, (lo, hi) in enumerate(bounds)]

    def _tail(self, kept: dict, n_batch: int, n_time: int, panels: dict) -> list:
        """The arguments after the arrays' addresses for a part of `n_batch` rows whose scratch is
        `kept`: the scratch's addresses (blocked_* from `panels`), the sizes, the packed buffers'
        sizes; made anew only where its sizes or the panels change."""
        if kept.get("sizes") != (n_batch, n_time):
            kept["buffers"], kept["scratch"] = self._scratch_for(n_batch, n_time)
            kept["sizes"], kept["tail_panels"] = (n_batch, n_time), None
        if kept["tail_panels"] is not panels:
            pointers, sizes = kept["scratch"]
            kept["tail"] = [*(panels.get(name, pointer)
                              for name, pointer in zip(self._scratch_names, pointers)),
                            n_batch, n_time, *sizes]
            kept["tail_panels"] = panels
        return kept["tail"]

    def _panel_addresses(self, arrays) -> dict:
        """blocked_* name -> the address of the weights in panels (to_panels) that the library
        reads there, laid out anew (a new dict) where the weight arrays are not those of the last
        call on this thread (whose parts all read these: they run while it waits)."""
        kept = self._scratch.__dict__
        known = kept.get("panels_of")
        if known is None or any(arrays[i] is not array
                                for i, array in zip(self._panel_inputs, known)):
            panels = [to_panels(*(None if i is None else arrays[i] for i in source))
                      for source in self._panel_sources]
            kept["panels"] = panels  # kept: the addresses stay valid
            kept["panels_of"] = [arrays[i] for i in self._panel_inputs]
            kept["panel_addresses"] = {name: _address(panel)
                                       for name, panel in zip(self._panel_names, panels)}
        return kept["panel_addresses"]

    def unit_arguments(self, arrays):
        """For a forward_units library: the int64 arguments of its two halves (the same but the
        last, the half's number), to run at once on two threads (batch_threads.run_units); they
        share the calling thread's scratch, its flags zeroed. None where part_arguments would be,
        or for a call of no steps."""
        whole = self.part_arguments(arrays)
        if whole is None:
            return None
        self._scratch.buffers[self._scratch_names.index("flags")][:] = 0
        return [np.append(whole[0], part) for part in (0, 1)]

    def _scratch_for(self, n_batch: int, n_time: int) -> tuple:
        """(scratch buffers, (their addresses, the packed ones' sizes)) for a call's sizes."""
        buffers, pointers, sizes = [], [], []
        for name in self._scratch_names:
            if name.startswith("blocked"):  # weights, not scratch: _panel_addresses
                buffer = None
                pointers.append(None)
            elif name.startswith("packed"):  # 64-byte aligned bytes
                size = self._pack_size(_CBLAS_B_MATRIX, n_batch, self._gates,
                                       self._matrix_rows[name.split("_", 1)[1]])
                buffer = aligned_empty((size,), np.dtype(np.uint8))
                pointers.append(_address(buffer))
                sizes.append(size)
            else:
                rows = {"n_batch": n_batch, "n_time": n_time}
                buffer = {"index": lambda: np.empty(eval(PADDING_SCRATCH, {}, rows), np.intp),
                          "h_active": lambda: np.empty((n_batch, self._units), self._dtype),
                          "x_active": lambda: np.empty((n_batch, self._matrix_rows["kernel"]),
                                                       self._dtype),
                          "h_steps": lambda: aligned_empty((2, n_batch, self._units), self._dtype),
                          "flags": lambda: np.zeros(16, np.int64)}[name]()
                pointers.append(_address(buffer))
            buffers.append(buffer)
        return buffers, (pointers, sizes)


def _address(array: np.ndarray, _view=ctypes.c_char.from_buffer, _at=ctypes.addressof):
    """The address of a C-contiguous array's data, else None: 0.3 us through the buffer
    protocol, where `arr.ctypes.data` takes 0.9 (a call passes 11 arrays)."""
    try:
        return _at(_view(array))
    except (TypeError, ValueError):  # read-only, not C-contiguous, or empty
        return array.ctypes.data if array.flags.c_contiguous else None


def entry_function(key: VariantKey, entry_name: str, directory: Path, module):
    """A NativeForward for `key`'s `<entry_name>_into`, built into `directory` if it is not there
    yet; else (the build was refused, here or by an earlier process) the generated function.

    `module()` returns the generated module, imported only where it is needed: a process that
    finds the library imports neither it nor Numba.
    """
    jit = lambda: getattr(module(), f"{entry_name}_into")  # noqa: E731
    return _native_forward(key, entry_name, directory, module, jit) or jit()


def _native_forward(key: VariantKey, entry_name: str, directory: Path, module, jit):
    """The NativeForward of `key`'s `<entry_name>` library, built into `directory` if no process
    tried yet; None where there is none."""
    built = _built(library_path(key, entry_name, directory),
                   lambda path: build(key, entry_name, module(), path),
                   f"{key.module_name}.{entry_name}")
    return _loaded(built, lambda path: NativeForward(key, entry_name, path, jit))


def units_function(key: VariantKey, directory: Path, module):
    """A NativeForward for `key`'s forward_units library (its calls: unit_arguments), built into
    `directory` if it is not there yet; None where there is none (refused or failed here or by
    an earlier process: the call then runs forward on one thread)."""
    return _native_forward(key, "forward_units", directory, module, jit=None)


def spin_functions(directory: Path):
    """lstmgen.spin's wait_while and serve from a native library, built into `directory` if it is
    not there yet; None where there is none (then lstmgen.spin serves)."""
    if not enabled():
        return None
    source = Path(__file__).with_name("spin.py").read_bytes()
    path = Path(directory) / (f"lstmgen_spin.native-{_machine_id()}-"
                              f"{hashlib.sha256(source).hexdigest()[:12]}.so")
    return _loaded(_built(path, _build_spin, "lstmgen.spin"), NativeSpin)


def _build_spin(path: Path) -> None:
    from numba import types

    from lstmgen import spin

    flags, index, count = types.CPointer(types.int64), types.intp, types.int64
    entries = {SPIN_SYMBOLS["wait_while"]: (spin.native_wait_while, types.int64(
                   flags, index, index, count, count, count)),
               SPIN_SYMBOLS["serve"]: (spin.native_serve, types.int64(
                   flags, index, index, index, count, count, count))}
    _build_library(entries, {}, [], path)


class NativeSpin:
    """lstmgen.spin's two functions, the same arguments, run by its native library (without
    the GIL, as ctypes calls C)."""

    def __init__(self, path: Path):
        library = ctypes.CDLL(str(path))
        self._wait = getattr(library, SPIN_SYMBOLS["wait_while"])
        self._wait.argtypes = ([ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_ssize_t]
                               + [ctypes.c_int64] * 3)
        self._serve = getattr(library, SPIN_SYMBOLS["serve"])
        self._serve.argtypes = [ctypes.c_void_p] + [ctypes.c_ssize_t] * 3 + [ctypes.c_int64] * 3
        self._wait.restype = self._serve.restype = ctypes.c_int64

    def wait_while(self, flags, index, value, turns, then_turns) -> int:
        return self._wait(_address(flags), flags.size, index, value, turns, then_turns)

    def serve(self, flags, job_index, done_index, done, turns, then_turns) -> int:
        return self._serve(_address(flags), flags.size, job_index, done_index, done, turns,
                           then_turns)


def _built(path: Path, build, user: str):
    """`path` if the library there exists, built first (build(path)) if no process tried yet;
    else None: the build was refused (recorded beside it: not tried again) or failed (a warning,
    and the next process tries again)."""
    if not path.exists() and not why_not_path(path).exists():
        try:
            build(path)
        except NativeUnavailable as refused:
            _write_atomically(why_not_path(path), f"{refused}\n")
        except Exception as error:  # a faster start is not worth failing a call
            warnings.warn(f"lstmgen: {user} runs without a native library, whose build failed: "
                          f"{error!r}", RuntimeWarning, stacklevel=3)
            return None
    return path if path.exists() else None


def _loaded(path, load):
    """load(path), or None without a library or where it does not load (a warning)."""
    if path is None:
        return None
    try:
        return load(path)
    except OSError as error:
        warnings.warn(f"lstmgen: the native library {path} does not load ({error}); running "
                      "Numba's code instead", RuntimeWarning, stacklevel=3)
        return None


def status() -> str:
    """One line for `lstmgen info`: whether layers here build and load native libraries."""
    if not enabled():
        return "off (" + (f"{ENV}=0" if sys.platform.startswith("linux") else "Linux only") + ")"
    if shutil.which("cc") is None:
        return "off (no C compiler, cc, on the PATH to link them)"
    if blas.mkl_runtime() is None:
        return ("on for float32 layers whose products run in generated code (blocked products); "
                "others call NumPy's BLAS through Numba: pip install 'lstmgen[mkl]'")
    return ("on (inference calls of MKL variants, and of float32 layers whose products run in "
            "generated code, start without Numba)")


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
