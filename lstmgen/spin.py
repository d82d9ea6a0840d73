"""Flags that threads spin on in compiled code, for handing work between threads without a wake-up.

A thread blocked on a lock or on the GIL sleeps, and on the machines we measured waking it took
15-45 us (a virtual CPU that went idle), a tenth of a small layer call. So lstmgen's batch workers
spin on a flag between jobs, in Numba code that holds no GIL, and signal the end of a job from there.
A job that is a call of a native library (lstmgen.native) runs right there too (serve): the worker
never waits for the GIL, which the thread that posted the job holds until its own part starts.

A spinning loop says so to the CPU (x86 `pause`, ARM `yield`), which then spares the core's
sibling thread and power (_pause).
"""

import numba
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.extending import intrinsic

from lstmgen.sources import templates_dir

# _load_acquire, _store_release, _pause and _yield: the source generated modules include. (Numba's
# disk cache of the functions below looks at this file only: after an edit of that one, clear it.)
_ATOMICS = templates_dir() / "cpu" / "_atomics.py.j2"
exec(compile(_ATOMICS.read_text(encoding="utf-8"), str(_ATOMICS), "exec"), globals())


@intrinsic
def _call(typingctx, function, arguments):
    """function(arguments): a native library's entry (void f(int64 *)) at address `function` on
    the int64 arguments at address `arguments`."""
    def codegen(context, builder, signature, args):
        word_pointer = ir.IntType(64).as_pointer()
        entry = builder.inttoptr(args[0], ir.FunctionType(ir.VoidType(), [word_pointer]).as_pointer())
        builder.call(entry, [builder.inttoptr(args[1], word_pointer)])
        return context.get_dummy_value()

    return types.void(function, arguments), codegen


_JIT = dict(nogil=True, cache=True)


@numba.njit(**_JIT)
def wait_while(flags, index, value, turns, then_turns):
    """Spin while flags[index] == value, at most `turns` times; return its last value. After a
    change, spin `then_turns` more (batch_threads._Worker: lets the thread that made the change
    drop the GIL first)."""
    for _ in range(turns):
        seen = _load_acquire(flags, index)
        if seen != value:
            for _ in range(then_turns):
                _load_acquire(flags, index)  # an atomic load: the loop cannot be optimized away
                _pause()
            return seen
        _pause()
    return _load_acquire(flags, index)


@numba.njit(**_JIT)
def serve(flags, job_index, done_index, done, turns, then_turns):
    """A worker thread's loop between Python jobs: flags[done_index] = done, then each native job
    posted runs here, without the GIL, and is marked done there. A job is posted as
    flags[job_index + 1] (the address of a native library's entry: see _call; 0 for a Python
    job) and flags[job_index + 2] (its arguments' address), then flags[job_index] moved past done.
    Returns the number of the first Python job posted (after `then_turns` more turns: see
    wait_while), or of the last job done once `turns` turns pass without a job."""
    while True:
        _store_release(flags, done_index, done)
        job = wait_while(flags, job_index, done, turns, 0)
        if job == done:
            return done
        function = flags[job_index + 1]  # written before the job's number, read after it
        if function == 0:
            return wait_while(flags, job_index, done, 1, then_turns)
        _call(function, flags[job_index + 2])
        done = job


# The same on a pointer to `count` flags: the bodies lstmgen.native compiles (as numba.cfunc would)
# into a library that runs without Numba (not Numba functions themselves).
def native_wait_while(flags_pointer, count, index, value, turns, then_turns):
    return wait_while(numba.carray(flags_pointer, (count,)), index, value, turns, then_turns)


def native_serve(flags_pointer, count, job_index, done_index, done, turns, then_turns):
    return serve(numba.carray(flags_pointer, (count,)), job_index, done_index, done, turns,
                 then_turns)
