"""The SASS tests' tools: cuobjdump (triton bundles one) and the extension module's kernels, read once per
session. (A plain module, not a conftest: tests import the top-level conftest by name.)"""
import functools
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import xlstm_cuda


def cuobjdump() -> str:
    """triton's bundled cuobjdump, else one on PATH."""
    try:
        import triton
    except ImportError:
        triton = None
    if triton is not None:
        bundled = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
        if bundled.exists():
            return str(bundled)
    found = shutil.which("cuobjdump")
    if found is None:
        pytest.fail("cuobjdump not found: install triton (torch's CUDA build brings it) or a CUDA toolkit")
    return found


@functools.cache
def kernels_sass() -> dict[str, str]:
    """SASS of every kernel in the extension module, by mangled name."""
    result = subprocess.run([cuobjdump(), "-sass", xlstm_cuda._C.__file__], capture_output=True, text=True)
    if "does not contain device code" in result.stderr + result.stdout:
        return {}
    assert result.returncode == 0, result.stderr
    sections = re.split(r"^\s*Function : (\S+)\s*$", result.stdout, flags=re.MULTILINE)
    return dict(zip(sections[1::2], sections[2::2]))


@functools.cache
def kernels_resources() -> dict[str, dict[str, int]]:
    """cuobjdump -res-usage of every kernel in the extension module, by mangled name: REG, STACK,
    SHARED (static, with the 1 KB sm_90 reserves), LOCAL, ..."""
    result = subprocess.run([cuobjdump(), "-res-usage", xlstm_cuda._C.__file__], capture_output=True, text=True)
    if "does not contain device code" in result.stderr + result.stdout:
        return {}
    assert result.returncode == 0, result.stderr
    found = re.findall(r"Function (\S+):\s*\n\s*(REG:.*)", result.stdout)
    return {name: {key: int(value) for key, value in re.findall(r"(\w+(?:\[\d+\])?):(\d+)", usage)}
            for name, usage in found}
