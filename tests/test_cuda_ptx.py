"""The CUDA target's kernels compile to PTX for sm_80 and sm_90 without a GPU, and ptxas (from the
CUDA toolkit, when on PATH) assembles the hot ones without local-memory spills.

Structure variants cover every branch of templates/cuda/lstm.py.j2 (entry points, dropout kinds,
layouts, mask outputs, bias, dtypes, with and without the persistent kernel); activations are
checked through the exposed `step` device functions, which inline them.
"""

import re
import shutil

import pytest

from cuda_helpers import cuda_key, fresh_module
from lstmgen.activations import ACTIVATIONS
from lstmgen.lower.cuda import slice_units

pytest.importorskip("numba_cuda")

from lstmgen.ptx import module_ptx, ptxas_resources  # noqa: E402  (needs numba-cuda)

NAMES = sorted(ACTIVATIONS)
ARCHS = ((8, 0), (9, 0))
STRUCTURES = {
    "default": dict(units=64, input_dim=32),
    "f64_backwards_sequences_dropout": dict(units=48, input_dim=20, dtype="float64", go_backwards=True,
                                            return_sequences=True, zero_output_for_mask=True,
                                            use_bias=False, dropout=0.2, recurrent_dropout=0.3),
    "time_major_per_gate_input_dropout": dict(units=40, input_dim=7, time_major=True, return_sequences=True,
                                              dropout=0.5, implementation=1, activation="gelu",
                                              recurrent_activation="hard_sigmoid"),
    # The cell options the cuda template computes (proj_size runs on cpu), with both dropouts.
    "cell_options": dict(units=32, input_dim=8, use_recurrent_bias=True, use_peepholes=True, clip=2.0,
                         input_forget=True, output_activation={"name": "elu", "alpha": 0.5},
                         dropout=0.2, recurrent_dropout=0.2),
    # One unit's float64 weights exceed a block's shared memory: no persistent kernel.
    "no_persistent": dict(units=2000, input_dim=3, dtype="float64", time_major=True),
}
HOT = re.compile(r"^_(per_step|persistent|project)")


def test_the_spread_has_both_kinds_of_module():
    assert slice_units(2000, "float64") == 0 and slice_units(64, "float32") > 0


@pytest.fixture(scope="module")
def structure_ptx(tmp_path_factory):
    """(structure, arch) -> {kernel name: PTX}."""
    directory = tmp_path_factory.mktemp("cuda-ptx")
    ptx = {name: module_ptx(fresh_module(cuda_key(**kwargs), directory), ARCHS)
           for name, kwargs in STRUCTURES.items()}
    return {(name, arch): ptx[name][arch] for name in STRUCTURES for arch in ARCHS}


@pytest.mark.parametrize("name", sorted(STRUCTURES))
@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: f"sm_{a[0]}{a[1]}")
def test_every_kernel_compiles(structure_ptx, name, arch):
    ptx = structure_ptx[(name, arch)]
    key = cuda_key(**STRUCTURES[name])
    persistent = slice_units(key.units, key.dtype) > 0
    expected_entries = {"forward", "forward_masked"} | (
        {"forward_train", "forward_train_masked"} if key.input_mask_count else set())
    for entry in expected_entries:
        assert f"_per_step_{entry}" in ptx
        assert (f"_persistent_{entry}" in ptx) == persistent
    for kernel_name, text in ptx.items():
        assert f".target sm_{arch[0]}{arch[1]}" in text, kernel_name
        assert (".entry" in text) == (kernel_name not in ("step", "step_masked")), kernel_name
        # Only the persistent kernels synchronize the grid (cooperative groups, in libcudadevrt).
        assert ("cudaCGSynchronize" in text) == kernel_name.startswith("_persistent"), kernel_name


@pytest.mark.parametrize("dtype", ("float32", "float64"))
@pytest.mark.parametrize("index", range(len(NAMES)), ids=NAMES)
def test_every_activation_compiles_in_the_step_device_functions(tmp_path, dtype, index):
    key = cuda_key(activation=NAMES[index], recurrent_activation=NAMES[(index + 1) % len(NAMES)],
                   dtype=dtype)
    for arch, ptx in module_ptx(fresh_module(key, tmp_path), ARCHS, kernels=False).items():
        assert set(ptx) == {"step", "step_masked"}
        assert all(f".target sm_{arch[0]}{arch[1]}" in text for text in ptx.values())


@pytest.mark.skipif(shutil.which("ptxas") is None, reason="ptxas (CUDA toolkit) is not on PATH")
@pytest.mark.parametrize("name", sorted(STRUCTURES))
def test_hot_kernels_do_not_spill_and_fit_shared_memory(structure_ptx, name, tmp_path):
    for arch in ARCHS:
        for kernel_name, ptx in structure_ptx[(name, arch)].items():
            if not HOT.match(kernel_name):
                continue
            used = ptxas_resources(ptx, arch, tmp_path)
            assert used["spills"] == 0 and used["stack"] == 0, (kernel_name, arch, used)
            assert used["shared"] <= 48 * 1024, (kernel_name, arch, used)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", ("float32", "float64"))
def test_the_cudnn_paths_sequence_kernels_compile(arch, dtype):
    from numba import cuda, types

    from lstmgen.cudnn import sequence_kernels as k

    real = getattr(types, dtype)
    a2, a3, lengths = types.Array(real, 2, "C"), types.Array(real, 3, "C"), types.Array(types.int32, 1, "C")
    signatures = {
        k.to_cudnn: (a3, lengths, a2, types.boolean, types.boolean, a3),
        k.keras_sequence: (a3, a2, lengths, types.boolean, types.boolean, types.boolean, a3),
        k.last_output: (a2, lengths, types.int64, a2),
    }
    for kernel, signature in signatures.items():
        ptx = cuda.compile_ptx(kernel.py_func, signature, cc=arch)[0]
        assert f".target sm_{arch[0]}{arch[1]}" in ptx
