"""Compiles the fixture op from its folder, as the package's build compiles csrc/ops/<op>/: the
schema and CPU kernels into one module, the schema and CUDA kernels for the host emulation into
another. Each registers in a namespace of its own (NAMESPACES), so that the package's namespaces
hold the package's ops alone."""
from pathlib import Path

from torch.utils import cpp_extension

ROOT = Path(__file__).resolve().parents[3]
OP = Path(__file__).resolve().parent / "csrc"
INCLUDES = [str(ROOT / "csrc"), str(OP)]
FLAGS = ["-O1"]
NAMESPACES = {"kernels": "xlstm_cuda_fixture", "emulation": "xlstm_cuda_fixture_sim"}


def build(build_dir: Path, with_cuda: bool) -> None:
    """Builds and loads both modules (with_cuda: the kernels module gets the CUDA kernels too, built
    by nvcc); afterwards fixture_scale exists in both NAMESPACES. Sources unchanged since the last
    build are not compiled again."""
    op = OP / "ops" / "fixture_scale"
    kernels = build_dir / "kernels"
    emulation = build_dir / "emulation"
    kernels.mkdir(parents=True, exist_ok=True)
    emulation.mkdir(parents=True, exist_ok=True)
    checks = str(ROOT / "csrc" / "common" / "checks.cpp")  # the shared sources each module compiles
    sources = [str(op / "schema.cpp"), str(op / "cpu.cpp"), checks] + ([str(op / "cuda.cu")] if with_cuda else [])
    namespace = f"-DXLSTM_NAMESPACE={NAMESPACES['kernels']}"
    cpp_extension.load("xlstm_fixture_scale", sources, extra_cflags=FLAGS + [namespace], extra_include_paths=INCLUDES,
                       extra_cuda_cflags=["-O1", namespace], build_directory=str(kernels), is_python_module=False,
                       verbose=False)
    cuda_as_cpp = emulation / "fixture_scale_cuda.cpp"  # g++ compiles the .cu source, as setup.py's emulation does
    text = f'#include "{op / "cuda.cu"}"\n'
    if not cuda_as_cpp.exists() or cuda_as_cpp.read_text() != text:  # an unchanged file is not compiled again
        cuda_as_cpp.write_text(text)
    cpp_extension.load("xlstm_fixture_scale_sim",
                       [str(op / "schema.cpp"), str(cuda_as_cpp), checks, str(ROOT / "csrc" / "sim" / "cuda_sim.cpp")],
                       extra_cflags=FLAGS + ["-DXLSTM_SIM", f"-DXLSTM_NAMESPACE={NAMESPACES['emulation']}"],
                       extra_include_paths=INCLUDES,
                       build_directory=str(emulation), is_python_module=False, verbose=False)
