"""The CPU target runs parts of the batch on several threads and gets the one-thread answer."""

import ctypes
import os
import signal
import threading
import time

import numpy as np
import pytest

import lstmgen
from lstmgen import batch_threads, native, reference


@pytest.fixture
def threads(monkeypatch):
    """lstmgen.set_num_threads, restored afterwards; tiny test shapes are split like large ones."""
    monkeypatch.setattr(batch_threads, "MIN_MULTIPLY_ADDS_PER_PART", 1)
    before = lstmgen.get_num_threads()
    yield lstmgen.set_num_threads
    lstmgen.set_num_threads(before)


@pytest.mark.parametrize("time_major, return_sequences, masked, training", [
    (False, True, False, False), (True, True, True, False), (False, False, True, True),
    (True, False, False, True)])
def test_every_split_of_the_batch_gives_the_reference_answer(threads, time_major, return_sequences,
                                                              masked, training):
    units, input_dim, n_batch, n_time = 4, 3, 7, 5
    rng = np.random.default_rng(3)
    layer = lstmgen.LSTM(units, dtype="float64", time_major=time_major, return_state=True,
                         return_sequences=return_sequences, dropout=0.3 if training else 0.0,
                         recurrent_dropout=0.2 if training else 0.0, seed=5)
    x = rng.normal(size=(n_time, n_batch, input_dim) if time_major else (n_batch, n_time, input_dim))
    mask = rng.random((n_batch, n_time)) < 0.6 if masked else None
    if masked:
        mask[1] = False  # a fully masked row
    initial = [rng.normal(size=(n_batch, units)) for _ in range(2)]
    layer.build(x.shape)
    for count in (1, 2, 3, 4, 16):
        threads(count)
        result = layer(x, mask=mask, training=training, initial_state=initial)
        dropout = {}
        if training:
            step = np.empty((n_batch, input_dim))
            dropout = {"input_masks": layer.get_dropout_mask_for_cell(step, True, 4),
                       "recurrent_masks": layer.get_recurrent_dropout_mask_for_cell(initial[0], True, 4)}
        expected = reference.forward(layer.spec, *layer.get_weights(), x, mask=mask,
                                     initial_state=initial, **dropout)
        for got, want in zip(result, expected):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f"{count} threads")


def test_parts_keep_at_least_two_rows_and_enough_work_each(threads):
    threads(4)
    plenty = 2 ** 30
    assert [batch_threads.parts(n, plenty) for n in (1, 2, 3, 4, 5, 8, 100)] == [1, 1, 1, 2, 2, 4, 4]
    least = batch_threads.MIN_MULTIPLY_ADDS_PER_PART
    assert [batch_threads.parts(100, w) for w in (0, least - 1, 2 * least, 3 * least - 1)] == [1, 1, 2, 2]
    threads(1)
    assert batch_threads.parts(100, plenty) == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, None])
def test_set_num_threads_rejects_what_is_not_a_positive_int(bad):
    with pytest.raises(ValueError, match="threads="):
        lstmgen.set_num_threads(bad)


@pytest.mark.parametrize("setting, expected", [("3", 3), ("0", None), ("two", None)])
def test_the_environment_variable_is_read_and_checked(monkeypatch, threads, setting, expected):
    monkeypatch.setattr(batch_threads, "_threads", None)
    monkeypatch.setenv("LSTMGEN_NUM_THREADS", setting)
    if expected is None:
        with pytest.raises(ValueError, match=f"LSTMGEN_NUM_THREADS='{setting}'"):
            lstmgen.get_num_threads()
    else:
        assert lstmgen.get_num_threads() == expected


def test_a_forked_child_runs_parts_on_threads_of_its_own(threads):
    threads(2)
    layer = lstmgen.LSTM(3, dtype="float64", return_sequences=True)
    x = np.random.default_rng(8).normal(size=(4, 5, 2))
    expected = layer(x)  # starts the parent's worker thread
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: without its own workers this call would wait forever
        ok = np.allclose(layer(x), expected, rtol=0, atol=0)
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 120
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            pytest.fail("the forked child's call did not return")
        time.sleep(0.05)
    assert os.read(read, 1) == b"1"


def test_an_error_in_any_part_reaches_the_caller_after_every_part_ended(threads):
    threads(3)
    finished = []

    def function(rows):
        if rows[0] == 2:  # the second part, run by a worker thread
            raise RuntimeError("part failed")
        finished.append(rows[0])

    with pytest.raises(RuntimeError, match="part failed"):
        batch_threads.run(function, [np.arange(6)], [0], n_batch=6, n_time=1, multiply_adds=2 ** 30)
    assert sorted(finished) == [0, 4]
    batch_threads.run(function, [np.arange(1)], [0], n_batch=1, n_time=1, multiply_adds=2 ** 30)
    assert finished[-1] == 0


@pytest.fixture
def short_spins(monkeypatch):
    """Workers and callers spin 0.1 ms before they sleep or poll, so tests reach those paths."""
    monkeypatch.setattr(batch_threads, "SPIN_S", 1e-4)


def test_a_worker_runs_every_job_once_whether_it_spun_or_slept_in_between(short_spins):
    worker = batch_threads._Worker(None)
    ran = []
    gaps = np.random.default_rng(5).choice([0.0, 0.0, 5e-4, 0.01], 60)
    for k, gap in enumerate(gaps):
        time.sleep(gap)
        worker.start(lambda k=k: ran.append(k))
        worker.join()
        assert ran == list(range(k + 1))
    # Idle past SPIN_S it sleeps on its lock (and the next job wakes it): within 0.1 ms of its
    # last job where it runs, later on a loaded machine (where a fixed 20 ms wait may be too short).
    deadline = time.monotonic() + 10
    while not worker._sleeping and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker._sleeping
    worker.start(lambda: ran.append("woken"))
    worker.join()
    assert ran[-1] == "woken"


# A native job's stand-in: a C function pointer on int64 arguments (a ctypes callback takes the
# GIL itself), which writes arguments[0] = 2 * arguments[1] + 1.
_NATIVE_JOB = ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_int64))


@_NATIVE_JOB
def _double_plus_one(arguments):
    arguments[0] = 2 * arguments[1] + 1


_DOUBLE_PLUS_ONE = ctypes.cast(_double_plus_one, ctypes.c_void_p).value


def test_a_worker_runs_native_and_python_jobs_in_any_order(short_spins):
    worker = batch_threads._Worker(None)
    rng = np.random.default_rng(6)
    ran = []
    for k in range(60):
        time.sleep(rng.choice([0.0, 0.0, 5e-4, 0.01]))
        if rng.random() < 0.5:
            arguments = np.array([-1, k], np.int64)
            worker.start_native(_DOUBLE_PLUS_ONE, arguments)
            worker.join()
            ran.append(int(arguments[0]))
        else:
            worker.start(lambda k=k: ran.append(2 * k + 1))
            worker.join()
        assert ran == [2 * j + 1 for j in range(k + 1)]


def test_a_caller_waits_past_its_spin_for_a_long_job_and_gets_its_error(short_spins):
    worker = batch_threads._Worker(None)

    def slow_failure():
        time.sleep(0.02)
        raise ValueError("late")

    start = time.perf_counter()
    worker.start(slow_failure)
    with pytest.raises(ValueError, match="late"):
        worker.join()
    assert time.perf_counter() - start >= 0.02
    worker.start(lambda: None)  # still serving
    worker.join()


@pytest.fixture(params=["numba", "native"])
def spin(request, tmp_path):
    """The spin functions workers use: lstmgen.spin (Numba), and the native library of them."""
    if request.param == "numba":
        from lstmgen import spin

        return spin
    if not native.enabled():
        pytest.skip(f"native libraries {native.status()}")
    functions = native.spin_functions(tmp_path)
    assert isinstance(functions, native.NativeSpin)
    return functions


def test_spin_wait_returns_a_change_made_by_another_thread_or_the_value_after_its_budget(spin):
    flags = batch_threads.flags(2)
    assert spin.wait_while(flags, 8, 0, 1000, 0) == 0  # nothing changed: budget spent
    timer = threading.Timer(0.01, lambda: spin.serve(flags, 0, 8, 7, 0, 0))  # stores 7, returns
    timer.start()
    assert spin.wait_while(flags, 8, 0, 10 ** 9, 0) == 7  # spins until the other thread stores
    timer.join()
    assert flags.tolist() == [0] * 8 + [7] + [0] * 7


def test_serve_runs_native_jobs_until_a_python_job_or_its_budget(spin):
    """spin.serve on the flag layout of batch_threads (job at 0, its function and arguments at 1
    and 2, done at 8)."""
    flags = batch_threads.flags(2)
    flags[0] = 3  # three jobs posted
    assert spin.serve(flags, 0, 8, 3, 1000, 0) == 3  # marks 3 done; no new job: after its budget
    assert flags[8] == 3
    arguments = np.array([0, 20], np.int64)
    flags[1], flags[2], flags[0] = _DOUBLE_PLUS_ONE, arguments.ctypes.data, 4
    assert spin.serve(flags, 0, 8, 3, 1000, 0) == 4  # ran the native job 4, then no job
    assert arguments.tolist() == [41, 20] and flags[8] == 4
    flags[1], flags[0] = 0, 5
    assert spin.serve(flags, 0, 8, 4, 10 ** 9, 10) == 5  # Python's job: handed back undone
    assert flags[8] == 4


def test_spin_turns_are_calibrated_to_time_spent(spin):
    """A budget of turns_per_second() * 0.01 turns on an unchanging flag spins for about 10 ms
    (at least 2: a loop that returned early would make workers' spin budgets meaningless)."""
    turns = int(batch_threads.turns_per_second(spin) * 0.01)
    start = time.perf_counter()
    assert spin.wait_while(batch_threads.flags(1), 0, 0, turns, 0) == 0
    assert time.perf_counter() - start >= 0.002


def test_workers_take_the_native_spin_functions_where_there_are_some(monkeypatch, tmp_path):
    if not native.enabled():
        pytest.skip(f"native libraries {native.status()}")
    monkeypatch.setenv("LSTMGEN_CACHE_DIR", str(tmp_path))
    batch_threads._spin.cache_clear()
    try:
        assert isinstance(batch_threads._spin(), native.NativeSpin)
        monkeypatch.setenv(native.ENV, "0")
        batch_threads._spin.cache_clear()
        from lstmgen import spin

        assert batch_threads._spin() is spin
    finally:
        batch_threads._spin.cache_clear()
