"""The CUDA kernels' machine code (SASS, read with cuobjdump, which triton bundles) keeps the
float32 math exact enough for the spec's bounds: no tanh.approx (MUFU.TANH, relative error about
5e-4), which --use_fast_math put into the sLSTM. The emulation computes with libm and would pass
either way, so only the compiled code can show this. (.FTZ instructions remain, in the compiler's
own integer-division sequences, F2I.FTZ and the like: they are not float math of ours.) Without
CUDA kernels in the build (a CPU-only install) there is no device code to read, which the test
checks too."""
import pytest

import sass_tools
import xlstm_cuda

FORBIDDEN = {"MUFU.TANH": "tanh.approx"}


@pytest.fixture(scope="module")
def kernels_sass():
    return sass_tools.kernels_sass()


def test_no_approximate_math_in_any_kernel(kernels_sass):
    if not xlstm_cuda.build_info()["cuda"]:
        assert kernels_sass == {}, "a CPU-only build carries device code"
        return
    assert len(kernels_sass) >= 20, f"expected every op's kernels in the module, found {sorted(kernels_sass)}"
    offenders = {name: [what for pattern, what in FORBIDDEN.items() if pattern in sass]
                 for name, sass in kernels_sass.items()}
    offenders = {name: found for name, found in offenders.items() if found}
    assert not offenders, f"approximate float32 math in {offenders}"
