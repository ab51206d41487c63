"""A module built with AddressSanitizer (XLSTM_CPU_SANITIZE=1 for _C, XLSTM_SIM_SANITIZE=1 for _sim)
loads only where the ASan runtime was loaded first: say so, instead of the runtime ending the process."""
import importlib.util
import mmap
from pathlib import Path

PRELOAD = ("LD_PRELOAD=\"$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)\" "
           "ASAN_OPTIONS=detect_leaks=0")


def check_sanitizer_runtime(module: str, build_variable: str) -> None:
    """Raises ImportError if `module` (e.g. "xlstm_cuda._C") links libasan but this process did not
    preload it. A missing module passes: importing it says so."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None or "libasan" in Path("/proc/self/maps").read_text():
        return
    with open(spec.origin, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as image:
        needs_asan = image.find(b"libasan.so") >= 0
    if needs_asan:
        raise ImportError(f"{module} was built with AddressSanitizer ({build_variable}=1): run Python with "
                          f"{PRELOAD} (libstdc++ too, so that ASan can intercept C++ throws)")
