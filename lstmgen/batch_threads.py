"""Run a generated sequence function on parts of the batch at once, one part per thread.

Batch rows never interact, so parts need no synchronisation between time steps. The threads
are Python threads around the generated functions, which release the GIL (nogil). Numba's own
parallel target was measured and rejected: once its OpenMP layer had run, torch's CPU LSTM in
the same process ran 40x slower, and its parallel wrapper added 1.5 s to every cold compile.
Each part calls BLAS, so the caller holds BLAS at one thread meanwhile (blas_threads).

Workers spin between jobs rather than sleep (_Worker: waking a thread cost up to a tenth of a
small call). Threads that hand work back and forth look to Linux like a pair that should share a
CPU: after an idle spell it put the caller and the worker on one core, and parts ran one after
the other (small case 1.1 ms instead of 0.65, measured). So each worker keeps to its own CPU, and
the calling thread keeps off the workers' CPUs while a call runs (its own setting comes back).
"""

import functools
import os
import threading
import time

import numpy as np

from lstmgen import native
from lstmgen.blas_threads import single_threaded_blas
from lstmgen.cache import default_directory
from lstmgen.lower.cpu import ZX_ROWS

# Fewer rows per part measured slower: the recurrent product of one row costs nearly what two do.
MIN_ROWS_PER_PART = 2
# Splitting a call costs time (the parts' arguments, handing them over and back), and a part of
# fewer rows saves less than its share. Measured through a small float32 layer on a native
# library (C = 32, H = 64; one part / two): 2 M multiply-adds in all 87 / 102 us, 3.9 M 123 /
# 124 us, 7.9 M 184 / 157 us: a part must be worth about 2 M.
MIN_MULTIPLY_ADDS_PER_PART = 2 ** 21
# Pinning needs Linux's per-thread affinity; elsewhere threads float.
_PINNING = hasattr(os, "sched_setaffinity")
_CPUS = sorted(os.sched_getaffinity(0)) if _PINNING else list(range(os.cpu_count() or 1))

_threads = None
_workers = []
_workers_lock = threading.Lock()
# The thread that runs the second job of run_pair (not a part worker: its job may need those).
_pair_worker = None
_pair_lock = threading.Lock()


def _forget_workers_after_fork() -> None:
    """A forked child has none of the parent's threads: it starts its own when it needs them."""
    global _workers, _workers_lock, _pair_worker, _pair_lock
    _workers, _workers_lock = [], threading.Lock()
    _pair_worker, _pair_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_workers_after_fork)


def get_num_threads() -> int:
    """Threads lstmgen's CPU target uses: set_num_threads, else $LSTMGEN_NUM_THREADS, else every
    core this process may run on."""
    global _threads
    if _threads is None:
        setting = os.environ.get("LSTMGEN_NUM_THREADS")
        _threads = _checked(setting, "LSTMGEN_NUM_THREADS") if setting else len(_CPUS)
    return _threads


def set_num_threads(threads: int) -> None:
    global _threads
    _threads = _checked(threads, "threads")


def _checked(threads, name: str) -> int:
    value = int(threads) if isinstance(threads, str) and threads.strip().isdigit() else threads
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}={threads!r}: expected a positive int")
    return value


def parts(n_batch: int, multiply_adds: int) -> int:
    """How many parts a call with `n_batch` rows and `multiply_adds` in all is split into."""
    return max(1, min(get_num_threads(), n_batch // MIN_ROWS_PER_PART,
                      multiply_adds // MIN_MULTIPLY_ADDS_PER_PART))


def worth_a_thread(n_batch: int, multiply_adds: int) -> bool:
    """Whether a call runs on one thread (its batch is not split) yet is worth handing to another
    while the caller runs a second one (run_pair): from 1.5 times a part's minimum (measured:
    even at 2.6 M multiply-adds each, 1.1-1.2x faster at 3.3-3.9 M, slower below 2 M)."""
    return (get_num_threads() > 1 and parts(n_batch, multiply_adds) == 1
            and multiply_adds >= 3 * MIN_MULTIPLY_ADDS_PER_PART // 2)


def run_pair(first, second, concurrent: bool) -> tuple:
    """(first(), second()); with `concurrent`, second runs on a thread of its own meanwhile
    (callers on several threads at once take turns for it)."""
    global _pair_worker
    if not concurrent:
        return first(), second()
    results = []
    # BLAS stays single-threaded for both jobs: a worker thread's own toggling of OpenBLAS's
    # thread count made its job 30-60x slower (measured: 5-13 ms instead of 0.2).
    with _pair_lock, single_threaded_blas():
        if _pair_worker is None:
            _pair_worker = _Worker(None)
        _pair_worker.start(lambda: results.append(second()))
        try:
            result = first()
        finally:
            _pair_worker.join()  # never return while the second job still runs
    return result, results[0]


# A worker spins this long for its next job before it sleeps on a lock, and a caller this long
# for the end of a job before it polls; a spinning thread keeps its core busy meanwhile, as
# OpenMP's workers do by default.
SPIN_S = 0.002
POLL_S = 50e-6
# Having seen a new Python job, a worker spins this much longer before it takes the GIL: the
# caller holds the GIL until its own part starts (3-5 us through Numba's dispatcher), and a
# thread that waits for the GIL sleeps. Measured on the small case (interleaved, five runs): at
# 10 us parts ran 5-10% slower than at 15-20. (A native library's part needs no GIL: spin.serve.)
GIL_HANDOFF_S = 20e-6
# A worker's flags (lstmgen.spin.serve's layout): jobs posted, the posted job's native function
# (0: a Python job) and its arguments' address on one cache line; jobs finished on the next.
JOB, FUNCTION, ARGUMENTS, DONE = 0, 1, 2, 8


@functools.lru_cache(maxsize=1)
def _spin():
    """The spin functions (lstmgen.spin's), found when the first worker starts: from a native
    library where there is one (no Numba import), else lstmgen.spin (it imports Numba)."""
    functions = native.spin_functions(default_directory())
    if functions is None:
        from lstmgen import spin as functions
    return functions


def flags(count: int) -> np.ndarray:
    """Zeroed int64 flags at indices 0, 8, 16, ...: `count` of them, each on a cache line of its own."""
    return np.zeros(8 * count, np.int64)


def turns_per_second(spin) -> float:
    """How many turns of `spin`'s loop (wait_while) this CPU makes in a second (a `pause` is
    10-140 cycles)."""
    still = flags(1)  # stays 0: every turn is spent
    spin.wait_while(still, 0, 0, 1, 0)  # compile or load outside the timing
    count = 20000
    start = time.perf_counter()
    spin.wait_while(still, 0, 0, count, 0)
    return count / max(time.perf_counter() - start, 1e-9)


@functools.lru_cache(maxsize=1)
def _turns_per_second() -> float:
    return turns_per_second(_spin())


def _turns(seconds: float) -> int:
    """Turns of lstmgen.spin's loop that take about `seconds`."""
    return int(seconds * _turns_per_second())


class _Worker:
    """One thread that runs one job at a time: a Python callable, or a native library's entry
    on its arguments (start_native), which it runs without taking the GIL.

    Handing a job over and back costs no wake-up while the worker is busy or recently was: it
    spins between jobs (lstmgen.spin, without the GIL) and signals the end of a job from there.
    Idle for SPIN_S, it sleeps on a lock, and a start wakes it.
    """

    def __init__(self, cpu):
        self.cpu = cpu  # the CPU it keeps to, or None
        self._flags = flags(2)  # JOB, FUNCTION, ARGUMENTS, DONE
        self._jobs = 0
        self._job = self._error = self._arguments = None
        self._mutex = threading.Lock()  # orders _sleeping against a start: no lost wake-up
        self._sleeping = False
        self._wake = threading.Lock()
        self._wake.acquire()
        threading.Thread(target=self._loop, name="lstmgen", daemon=True).start()

    def _loop(self):
        if self.cpu is not None:
            os.sched_setaffinity(0, {self.cpu})  # this thread only
        spins, handoff = _turns(SPIN_S), _turns(GIL_HANDOFF_S)
        done = 0
        while True:
            job = _spin().serve(self._flags, JOB, DONE, done, spins, handoff)  # runs native jobs
            done = int(self._flags[DONE])
            if job == done:  # no job for SPIN_S
                with self._mutex:
                    sleep = self._sleeping = self._flags[JOB] == done
                if sleep:
                    self._wake.acquire()
                continue
            try:
                self._job()
            except BaseException as err:  # handed to the caller by join()
                self._error = err
            done = job

    def start(self, job) -> None:
        """Run job() on the worker's thread."""
        self._post(job, 0, None)

    def start_native(self, address: int, arguments: np.ndarray) -> None:
        """Run the native function at `address` on `arguments` (int64, kept alive until the
        next start) on the worker's thread, without the GIL."""
        self._post(None, address, arguments)

    def _post(self, job, address: int, arguments) -> None:
        self._job, self._arguments = job, arguments
        self._flags[FUNCTION] = address
        self._flags[ARGUMENTS] = 0 if arguments is None else arguments.ctypes.data
        self._jobs += 1
        self._flags[JOB] = self._jobs  # last: the worker reads the rest after seeing it
        with self._mutex:
            if self._sleeping:
                self._sleeping = False
                self._wake.release()

    def join(self) -> None:
        """Wait for the job posted last; raise what it raised."""
        started, functions = self._jobs, _spin()
        if functions.wait_while(self._flags, DONE, started - 1, _turns(SPIN_S), 0) != started:
            while functions.wait_while(self._flags, DONE, started - 1, 0, 0) != started:
                time.sleep(POLL_S)
        error, self._error = self._error, None
        if error is not None:
            raise error


def _rows(value, axis, lo: int, hi: int, n_time: int):
    if axis is None:
        return value
    if axis == ZX_ROWS:
        return value[lo * n_time:hi * n_time]
    return value[:, lo:hi] if axis == 1 else value[lo:hi]


def run(function, args: list, axes: list, n_batch: int, n_time: int, multiply_adds: int) -> None:
    """function(*args) with the batch split into parts(...) parts run concurrently.

    axes[i] says where args[i] keeps its batch rows (lower.cpu.batch_axis). Callers on several
    threads at once take turns for the worker threads.
    """
    count = parts(n_batch, multiply_adds)
    if count == 1:
        function(*args)
        return
    bounds = [(k * n_batch // count, (k + 1) * n_batch // count) for k in range(count)]

    def jobs():
        # A native library's parts run in the workers' spin loops (no GIL needed) on arguments
        # made without slicing; other parts are calls on slices, and the caller's own part
        # starts right after the last worker's (see GIL_HANDOFF_S).
        native = (function.part_arguments(args, axes, bounds)
                  if hasattr(function, "part_arguments") else None)  # native.NativeForward
        if native is not None:
            return _native_jobs(function, native)
        calls = [[_rows(a, axis, lo, hi, n_time) for a, axis in zip(args, axes)]
                 for lo, hi in bounds]
        return ((lambda call=call: function(*call)) for call in calls[1:]), lambda: function(*calls[0])

    _run_jobs(count, jobs)


def worth_splitting_units(multiply_adds: int) -> bool:
    """Whether a call whose batch is not split (parts(...) == 1) runs on two threads, each on
    its part of the units (native.NativeForward.unit_arguments), where the variant can.
    Measured, one thread / two (H = 128, one row): 0.8 M multiply-adds 72 / 78 us, 1.6 M 101 /
    96, 4.1 M 188 / 147; the stream case (98 M) 3.45 / 2.0 ms."""
    # Its threads wait for each other at every step: never more of them than CPUs.
    return (min(get_num_threads(), len(_CPUS)) > 1
            and multiply_adds >= MIN_MULTIPLY_ADDS_PER_PART)


def run_units(function, args: list) -> bool:
    """function (a forward_units library) on args: both halves at once, the caller's and a
    worker's (they wait for each other at every step: never one after the other). False, having
    run nothing, where the library cannot take these arrays."""
    ran = []

    def jobs():
        halves = function.unit_arguments(args)  # its scratch is this thread's: under the lock
        if halves is None:
            return None
        ran.append(True)
        return _native_jobs(function, halves)

    _run_jobs(2, jobs)
    return bool(ran)


def _native_jobs(function, arguments: list) -> tuple:
    """(the workers' jobs, the caller's) for a native library on each part's arguments."""
    return [(function.address, part) for part in arguments[1:]], lambda: function.call(arguments[0])


def _run_jobs(count: int, jobs) -> None:
    """Run jobs() (called holding the workers' lock) = (the workers' jobs, the caller's) at once:
    a worker's job is a Python callable or (a native function's address, its arguments); none
    where jobs() returns None."""
    with _workers_lock:
        while len(_workers) < count - 1:
            # Worker k keeps to the k-th CPU from the end; the caller usually starts on the first.
            k = len(_workers) + 1
            _workers.append(_Worker(_CPUS[-k] if _PINNING and k < len(_CPUS) else None))
        workers = _workers[:count - 1]
        made = jobs()
        if made is None:
            return
        theirs, own_job = made
        own = os.sched_getaffinity(0) if _PINNING else None
        free = own - {w.cpu for w in workers} if _PINNING else None
        if free:
            os.sched_setaffinity(0, free)
        try:
            for worker, job in zip(workers, theirs):
                if callable(job):
                    worker.start(job)
                else:
                    worker.start_native(*job)
            own_job()
        finally:
            if free:
                os.sched_setaffinity(0, own)
            errors = []
            for worker in workers:  # never return while a part still writes the caller's buffers
                try:
                    worker.join()
                except BaseException as err:
                    errors.append(err)
        if errors:
            raise errors[0]
