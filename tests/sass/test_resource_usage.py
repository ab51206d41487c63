"""The SASS resource table in csrc/README.md is the built module's (tests/sass/resource_usage.py
makes it: registers, static shared memory, stack, local memory and LDL / STL per kernel for sm_90),
and no kernel touches local memory (a register spill, or a local array) unless the table's "why"
column says why. When this fails after a kernel change, check the new figures, then
`python3 -m tests.sass.resource_usage --write` rewrites the table (it keeps the "why" cells)."""
import os
import shutil
import subprocess

import pytest

import xlstm_cuda
from tests.sass import resource_usage


@pytest.fixture(scope="module")
def module_rows():
    if not xlstm_cuda.build_info()["cuda"]:
        return {}
    return resource_usage.table_rows(xlstm_cuda._C.__file__)


def unexplained_local_memory(rows, why):
    return sorted(kernel for kernel, cells in rows.items() if resource_usage.spills(cells) and not why.get(kernel))


def test_readme_table_is_the_modules(module_rows):
    table, why = resource_usage.readme_table()
    assert table, "csrc/README.md has no SASS resource table between its markers"
    if not xlstm_cuda.build_info()["cuda"]:
        # A CPU-only build has no kernels to read (the CI build has them: XLSTM_FORCE_CUDA=1).
        assert subprocess.run([resource_usage.cuda_tool("cuobjdump"), "-res-usage", xlstm_cuda._C.__file__],
                              capture_output=True, text=True).stdout.count("Function") == 0
        return
    assert len(module_rows) >= 20, f"expected every op's kernels, found {sorted(module_rows)}"
    current = resource_usage.render(module_rows, why)
    assert current == table, f"csrc/README.md's SASS table is stale; the module's:\n{current}\n" \
                             "(python3 -m tests.sass.resource_usage --write rewrites it)"


def test_no_kernel_spills_without_a_reason(module_rows):
    assert not unexplained_local_memory(module_rows, resource_usage.readme_table()[1])


def test_a_kernel_that_spills_is_caught(tmp_path):
    """The check bites: a kernel held to fewer registers than it needs spills, and fails the check
    until the table says why."""
    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    source = tmp_path / "spill.cu"
    source.write_text("__global__ void spilling_kernel(float* x, int n) {\n"
                      "  float a[24];\n"
                      "  for (int i = 0; i < 24; ++i) a[i] = x[i * n + threadIdx.x];\n"
                      "  float s = 0;\n"
                      "  for (int j = 0; j < 24; ++j)\n"
                      "    for (int i = 0; i < 24; ++i) s += a[i] * a[(i + j) % 24];\n"
                      "  x[threadIdx.x] = s;\n"
                      "}\n")
    cubin = tmp_path / "spill.cubin"
    without_sanitizer = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}  # nvcc crashes under libasan
    subprocess.run([nvcc, "-arch=sm_90", "-cubin", "-maxrregcount=16", str(source), "-o", str(cubin)], check=True,
                   env=without_sanitizer)
    rows = resource_usage.table_rows(str(cubin))
    assert resource_usage.spills(rows["spilling_kernel"]), rows
    assert unexplained_local_memory(rows, {}) == ["spilling_kernel"]
    assert unexplained_local_memory(rows, {"spilling_kernel": "held to 24 registers by -maxrregcount"}) == []
