"""What the install reports about itself, and what `import xlstm_cuda` exposes: the op list comes
from the binder's registry (xlstm_cuda.ops._binder.OP_SPECS), never from a list kept here."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import xlstm_cuda
from conftest import BACKENDS
from xlstm_cuda.ops._binder import INFERENCE_OP_SPECS, OP_SPECS

ROOT = Path(__file__).resolve().parent.parent


def declared_ops(namespace: str = "xlstm_cuda") -> list[str]:
    """The torch op names the declared ops register: each forward op and its backward op; in
    xlstm_cuda also the inference ops (INFERENCE_OP_SPECS: forward only, CPU kernels only, bound
    there alone)."""
    names = {spec.name for spec in INFERENCE_OP_SPECS.values()} if namespace == "xlstm_cuda" else set()
    for spec in OP_SPECS.values():
        names.add(spec.name)
        if spec.autograd is not None:
            names.add(spec.autograd.backward)
    return sorted(names)


def test_build_info_reports_kernels_and_ops():
    info = xlstm_cuda.build_info()
    assert info["version"] == xlstm_cuda.__version__
    assert info["cpu_kernels"] is True
    assert info["cpu_simd"] in ("avx512", "avx2", "none")
    assert info["torch_runtime"] == torch.__version__
    assert info["ops"] == declared_ops()
    if os.environ.get("XLSTM_TESTS_WITHOUT_EMULATION") != "1":  # scripts/gpu_check.sh builds without it
        assert isinstance(info["emulation"], dict) and info["emulation"]["namespace"] == "xlstm_cuda_sim"
    if info["cuda"]:
        assert info["cuda_archs"] and info["cuda_version"]


def test_cuda_kernels_compiled_when_forced():
    # CI builds with XLSTM_FORCE_CUDA=1: the CUDA sources must then be compiled, for sm_90 at least.
    if os.environ.get("XLSTM_FORCE_CUDA") == "1":
        info = xlstm_cuda.build_info()
        assert info["cuda"] is True
        assert "9.0" in info["cuda_archs"]


@pytest.mark.parametrize("namespace", sorted({b.ops.namespace for b in BACKENDS}))
def test_every_declared_op_is_registered_with_its_backward(namespace):
    """In each namespace a backend runs (xlstm_cuda, xlstm_cuda_sim): the forward op with a fake
    implementation and an autograd formula, its backward op with a fake implementation, and the
    public function bound to it."""
    assert xlstm_cuda._registered_ops(namespace) == declared_ops(namespace)
    (ops,) = {b.ops for b in BACKENDS if b.ops.namespace == namespace}
    assert sorted(ops.functions()) == sorted(OP_SPECS)
    for public_name, spec in OP_SPECS.items():
        qualname = f"{namespace}::{spec.name}"
        assert torch._C._dispatch_has_kernel_for_dispatch_key(qualname, "Meta"), qualname
        if spec.autograd is not None:
            assert torch._C._dispatch_has_kernel_for_dispatch_key(qualname, "Autograd"), qualname
            backward = f"{namespace}::{spec.autograd.backward}"
            assert torch._C._dispatch_has_kernel_for_dispatch_key(backward, "Meta"), backward
        assert getattr(ops, public_name).__name__ == public_name


def test_ops_package_exports_every_declared_op():
    """xlstm_cuda.ops.<name> is the declared op's function bound to the xlstm_cuda kernels."""
    assert set(OP_SPECS) <= set(xlstm_cuda.ops.__all__)
    for name in xlstm_cuda.ops.__all__:
        assert hasattr(xlstm_cuda.ops, name), name
    for public_name in OP_SPECS:
        assert getattr(xlstm_cuda.ops, public_name) is getattr(xlstm_cuda.ops._kernels, public_name)


def test_import_exposes_the_api_only():
    """A fresh `import xlstm_cuda` (no test imports around it): every name of __all__ exists, and
    the public names of dir() are __all__'s, no module it happens to import (torch) nor
    `annotations` from a __future__ import."""
    script = ("import sys, xlstm_cuda; "
              "print(sorted(n for n in dir(xlstm_cuda) if not n.startswith('_'))); print(sorted(xlstm_cuda.__all__)); "
              "print([n for n in xlstm_cuda.__all__ if not hasattr(xlstm_cuda, n)])")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    public, exported, missing = result.stdout.splitlines()[-3:]
    assert missing == "[]"
    assert public == exported
    assert "'torch'" not in public and "'annotations'" not in public
