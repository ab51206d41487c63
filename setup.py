"""Builds xlstm_cuda: the kernels extension `_C` (CPU always, CUDA when possible) and, on request,
the host emulation `_sim` that runs the CUDA kernel sources on the CPU.

Environment:
  XLSTM_FORCE_CUDA=1     fail unless the CUDA kernels can be built
  XLSTM_SKIP_CUDA=1      build the CPU kernels only
  TORCH_CUDA_ARCH_LIST   CUDA architectures, e.g. "9.0" or "8.0;9.0+PTX" (default: the visible GPUs,
                         or "8.0;9.0+PTX" when none is visible)
  CUDA_HOME              the CUDA toolkit (default: found behind the nvcc on PATH)
  XLSTM_BUILD_SIM=1      also build xlstm_cuda._sim (for tests)
  XLSTM_SIM_SANITIZE=1   build _sim with AddressSanitizer and UBSan (run it with libasan preloaded)
  XLSTM_CPU_SANITIZE=1   build the CPU kernels of _C with AddressSanitizer and UBSan (likewise)
  MAX_JOBS               parallel compile jobs (default: by cores and memory)
"""
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
CSRC = ROOT / "csrc"


def fail(message):
    sys.exit(f"\nxlstm_cuda build error: {message}\n")


def flag(name):
    return os.environ.get(name, "0").lower() in ("1", "true", "yes", "on")


def find_cuda_home():
    """The toolkit behind the nvcc on PATH (which may be a wrapper script elsewhere)."""
    if os.environ.get("CUDA_HOME"):
        return os.environ["CUDA_HOME"]
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    try:
        dryrun = subprocess.run([nvcc, "--dryrun", "-x", "cu", "-c", os.devnull, "-o", os.devnull],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    here = re.search(r"^#\$ _HERE_=(.+)$", dryrun.stderr + dryrun.stdout, re.MULTILINE)
    bin_dir = Path(here.group(1).strip()) if here else Path(os.path.realpath(nvcc)).parent
    return str(bin_dir.parent)


def nvcc_version(cuda_home):
    out = subprocess.run([str(Path(cuda_home) / "bin" / "nvcc"), "--version"], capture_output=True, text=True)
    found = re.search(r"release (\d+)\.(\d+)", out.stdout)
    return (int(found.group(1)), int(found.group(2))) if found else None


def default_max_jobs():
    cores = os.cpu_count() or 1
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gb = 8
    return max(1, min(cores, int(mem_gb // 4)))  # nvcc and ATen-heavy g++ take up to ~4 GB each


os.environ.setdefault("MAX_JOBS", str(default_max_jobs()))
# torch's build runs `ninja`; pip puts it beside this Python, which need not be on PATH.
os.environ["PATH"] = sysconfig.get_path("scripts") + os.pathsep + os.environ.get("PATH", "")

try:
    import torch
except ImportError:
    fail("PyTorch is not installed. Install torch first (see README.md), then build with\n"
         "  pip install --no-build-isolation .")

want_cuda = not flag("XLSTM_SKIP_CUDA")
cuda_home = find_cuda_home() if want_cuda else None
if want_cuda and torch.version.cuda is None:
    if flag("XLSTM_FORCE_CUDA"):
        fail(f"XLSTM_FORCE_CUDA=1 but torch {torch.__version__} is a CPU-only build; install a CUDA build of torch.")
    want_cuda = False
if want_cuda and cuda_home is None:
    if flag("XLSTM_FORCE_CUDA"):
        fail("XLSTM_FORCE_CUDA=1 but no CUDA toolkit was found: put nvcc on PATH or set CUDA_HOME.")
    want_cuda = False
if want_cuda:
    found = nvcc_version(cuda_home)
    torch_major = int(torch.version.cuda.split(".")[0])
    if found is None:
        fail(f"cannot run {cuda_home}/bin/nvcc; set CUDA_HOME to a CUDA {torch.version.cuda} toolkit "
             "or XLSTM_SKIP_CUDA=1 for the CPU kernels only.")
    if found[0] != torch_major:
        fail(f"the CUDA toolkit at {cuda_home} is {found[0]}.{found[1]}, but torch {torch.__version__} was "
             f"built with CUDA {torch.version.cuda}; the major versions must match. Install a matching toolkit "
             "(CUDA_HOME=...) or torch build, or set XLSTM_SKIP_CUDA=1 for the CPU kernels only.")
    os.environ["CUDA_HOME"] = cuda_home  # read when torch.utils.cpp_extension is imported
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;9.0+PTX"

from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402

cuda_archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "native") if want_cuda else ""
cuda_version = "{}.{}".format(*nvcc_version(cuda_home)) if want_cuda else ""


def string_define(name, value):
    return f'-D{name}="{value}"'


common_defines = [string_define("XLSTM_TORCH_VERSION", torch.__version__.split("+")[0]),
                  string_define("XLSTM_CUDA_ARCHS", cuda_archs),
                  string_define("XLSTM_CUDA_VERSION", cuda_version)]
SIMD_LEVELS = {  # widest first: (CPU flags needed, compiler flags)
    "avx512": ({"avx512f", "avx512vl", "avx512dq", "avx512bw", "avx2", "fma"},
               ["-mavx512f", "-mavx512vl", "-mavx512dq", "-mavx512bw", "-mavx2", "-mfma"]),
    "avx2": ({"avx2", "fma"}, ["-mavx2", "-mfma"]),
    "none": (set(), []),
}


def host_simd_level():
    """The widest vector ISA this machine has for the CPU kernels (the extension compiles on install),
    capped by XLSTM_CPU_SIMD (avx512, avx2 or none) for a build meant for other machines."""
    cap = os.environ.get("XLSTM_CPU_SIMD", "avx512")
    if cap not in SIMD_LEVELS:
        sys.exit(f"setup.py: XLSTM_CPU_SIMD={cap!r}: use one of {', '.join(SIMD_LEVELS)}")
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    levels = list(SIMD_LEVELS)
    return next(level for level in levels[levels.index(cap):] if SIMD_LEVELS[level][0] <= flags)


cpu_simd = host_simd_level()


# AddressSanitizer and UBSan, any UB fatal: the emulation's (XLSTM_SIM_SANITIZE) and, with
# XLSTM_CPU_SANITIZE, the CPU kernels' (still -O3, so that the vectorized code is what is checked).
SANITIZE_FLAGS = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
cpu_sanitize = SANITIZE_FLAGS if flag("XLSTM_CPU_SANITIZE") else []

# No errno, no FP traps: lets loops that call exp/log1p/tanh, and selects between divisions,
# vectorize (csrc/cpu_vector_math.h). -fopenmp: at::parallel_for runs serially without it.
cxx_flags = (["-O3", "-fno-math-errno", "-fno-trapping-math", "-fopenmp", string_define("XLSTM_CPU_SIMD", cpu_simd)]
             + SIMD_LEVELS[cpu_simd][1] + common_defines + cpu_sanitize)
cpu_link_args = ["-fopenmp"] + (["-lmvec"] if sys.platform.startswith("linux") else []) + cpu_sanitize


def sources(*patterns):
    return sorted(str(p.relative_to(ROOT)) for pattern in patterns for p in CSRC.glob(pattern))


# An op is a folder csrc/ops/<op>/: schema.cpp (in both modules), cpu*.cpp (the CPU kernels, _C only)
# and *.cu (the CUDA kernels: nvcc for _C, g++ for the emulation). A new folder joins the build as it is.
GENERATED = ROOT / "build" / "generated"


def generated_source(name, lines):
    """A source file of #include lines under build/generated, rewritten only when it changes."""
    GENERATED.mkdir(parents=True, exist_ok=True)
    path, text = GENERATED / name, "".join(f'#include "{line}"\n' for line in lines)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return str(path.relative_to(ROOT))


cuda_sources = sources("ops/*/*.cu")
# Every op's schema.cpp in one translation unit: torch/library.h is parsed once, not once per op.
shared_sources = sources("module.cpp", "common/*.cpp") + [
    generated_source("op_schemas.cpp", [ROOT / s for s in sources("ops/*/schema.cpp")])]
kernel_sources = shared_sources + sources("ops/*/cpu*.cpp")
include_dirs = [str(CSRC)]

extensions = []
if want_cuda:
    extensions.append(CUDAExtension(
        "xlstm_cuda._C", kernel_sources + cuda_sources, include_dirs=include_dirs,
        extra_compile_args={"cxx": cxx_flags + ["-DXLSTM_WITH_CUDA"],
                            # No --use_fast_math: its tanh.approx, ex2.approx, approximate division and
                            # flushed subnormals miss the float32 bounds of the spec (tests/sass).
                            "nvcc": ["-O3", "-lineinfo",
                                     "-DXLSTM_WITH_CUDA"] + common_defines},
        extra_link_args=cpu_link_args))
else:
    extensions.append(CppExtension("xlstm_cuda._C", kernel_sources, include_dirs=include_dirs,
                                   extra_compile_args={"cxx": cxx_flags},
                                   extra_link_args=cpu_link_args))


def sim_sources():
    """The emulation module: the shared sources and the CUDA kernels, which g++ compiles as C++
    through one-line wrappers, build/generated/sim_*.cpp (setuptools sends .cu files to nvcc; and the
    shared sources need object files apart from _C's, which compiles them with other flags)."""
    wrappers = [generated_source("sim_" + Path(source).as_posix().replace("/", "_").replace(".", "_") + ".cpp",
                                 [ROOT / source]) for source in shared_sources + cuda_sources]
    return sources("sim/cuda_sim.cpp") + wrappers


if flag("XLSTM_BUILD_SIM"):
    sanitize = SANITIZE_FLAGS if flag("XLSTM_SIM_SANITIZE") else []
    extensions.append(CppExtension(
        "xlstm_cuda._sim", sim_sources(), include_dirs=include_dirs,
        extra_compile_args={"cxx": ["-O1", "-g", "-DXLSTM_SIM",
                                    f"-DXLSTM_SIM_SANITIZED={int(bool(sanitize))}"] + common_defines + sanitize},
        extra_link_args=sanitize))

setup(
    ext_modules=extensions,
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
