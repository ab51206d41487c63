"""A module built with AddressSanitizer (XLSTM_CPU_SANITIZE=1 for _C, XLSTM_SIM_SANITIZE=1 for _sim)
loads only where the ASan runtime was loaded first: say so, instead of the runtime ending the process."""
import importlib.util
import mmap
from pathlib import Path

PRELOAD = ("LD_PRELOAD=\"$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)\" "
           "ASAN_OPTIONS=detect_leaks=0")


def links_asan(module: str) -> bool:
    """Whether the extension `module` (e.g. "xlstm_cuda._C") was built with AddressSanitizer, read
    from its file without importing it. False for a missing module."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return False
    with open(spec.origin, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as image:
        return image.find(b"libasan.so") >= 0


def check_sanitizer_runtime(module: str, build_variable: str) -> None:
    """Raises ImportError if `module` links libasan but this process did not preload it. A missing
    module passes: importing it says so."""
    if "libasan" not in Path("/proc/self/maps").read_text() and links_asan(module):
        raise ImportError(f"{module} was built with AddressSanitizer ({build_variable}=1): run Python with "
                          f"{PRELOAD} (libstdc++ too, so that ASan can intercept C++ throws)")
