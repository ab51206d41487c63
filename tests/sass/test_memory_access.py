"""The memory access patterns the kernels were written for, as the compiler emitted them (SASS): the
mLSTM step's forward issues a whole sweep of 16-byte loads of C before its first store of C' (the
compiler would not reorder them itself, C and C' being possibly aliased pointers), and the kernels
that keep arrays in registers (the step's sweep, the conv's sliding window) never fall back to
local memory, which a dynamically indexed register array would cause. Only compiled code shows
either; without CUDA kernels in the build there is none, which the test checks too."""
import re

import xlstm_cuda
from test_float32_math import kernels_sass  # noqa: F401  (the fixture)

STEP_FORWARD_VECTOR = r"mlstm_step_fwd_kernel.*Li4E"
REGISTER_ARRAYS = (r"mlstm_step_fwd_kernel", r"mlstm_step_bwd_kernel", r"causal_conv1d_silu_(fwd|bwd)_kernel",
                   r"headwise_linear_\w+_kernel")


def matching(kernels_sass, pattern):
    found = {name: sass for name, sass in kernels_sass.items() if re.search(pattern, name)}
    assert found, f"no kernel matches {pattern!r} in {sorted(kernels_sass)}"
    return found


def test_step_forward_loads_a_sweep_before_storing(kernels_sass):
    if not xlstm_cuda.build_info()["cuda"]:
        assert kernels_sass == {}, "a CPU-only build carries device code"
        return
    for name, sass in matching(kernels_sass, STEP_FORWARD_VECTOR).items():
        accesses = re.findall(r"\b(LDG\.E\.128|STG\.E\.128)\b", sass)
        first_store = accesses.index("STG.E.128")
        assert accesses[:first_store].count("LDG.E.128") >= 8, f"{name}: {accesses}"


def test_register_arrays_stay_in_registers(kernels_sass):
    if not xlstm_cuda.build_info()["cuda"]:
        assert kernels_sass == {}, "a CPU-only build carries device code"
        return
    for pattern in REGISTER_ARRAYS:
        for name, sass in matching(kernels_sass, pattern).items():
            assert not re.search(r"\b(LDL|STL)\b", sass), f"{name} uses local memory"
