"""The CUDA kernels run on CPU tensors by the host emulation (csrc/sim), for tests.

Built only on request (XLSTM_BUILD_SIM=1, see setup.py); `ops` has the signatures of `xlstm_cuda.ops`.
A sanitized build (XLSTM_SIM_SANITIZE=1) needs the AddressSanitizer runtime loaded first:
    LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)" \
        ASAN_OPTIONS=detect_leaks=0 python ...
"""
import importlib.util

from ._sanitizer import check_sanitizer_runtime

if importlib.util.find_spec("xlstm_cuda._sim") is None:
    raise ImportError("xlstm_cuda._sim is not built; rebuild with XLSTM_BUILD_SIM=1 (see README.md)")
check_sanitizer_runtime("xlstm_cuda._sim", "XLSTM_SIM_SANITIZE")

from . import _sim  # noqa: E402,F401  (registers the xlstm_cuda_sim ops)
from .ops import KernelOps  # noqa: E402

ops = KernelOps("xlstm_cuda_sim")
