"""The fixture op (csrc/README.md, "Adding an op"): a test-only op in the layout of every op, in
its own folder, compiled from it on first use (build.py) and bound with the package's binder. Its
contract-table entry (tests/ops/contracts.py) uses what this module gives: `BACKENDS` (the CPU
kernels, the emulated CUDA kernels, and on a machine with a GPU the GPU), `SPEC`, `make`,
`bad_calls` and `reference`."""
from pathlib import Path

import torch

from conftest import Backend, randn
from xlstm_cuda.ops._binder import KernelOps

from .build import NAMESPACES, build
from .fixture_scale import FIXTURE_SPECS
from .reference import fixture_scale as reference

SPEC = FIXTURE_SPECS["fixture_scale"]
BUILD_DIR = Path(__file__).resolve().parents[3] / "build" / "fixture_op"


class _LazyOps:
    """The fixture op bound to a namespace, built (compiled, loaded, registered) on first use, so that
    collecting the tests compiles nothing."""

    _bound: dict = {}

    def __init__(self, namespace: str):
        self._namespace = namespace

    def __getattr__(self, name):
        if not _LazyOps._bound:
            build(BUILD_DIR, with_cuda=torch.cuda.is_available())
            _LazyOps._bound.update({ns: KernelOps(ns, FIXTURE_SPECS) for ns in NAMESPACES.values()})
        return getattr(_LazyOps._bound[self._namespace], name)


_KERNELS, _EMULATION = _LazyOps(NAMESPACES["kernels"]), _LazyOps(NAMESPACES["emulation"])
BACKENDS = (Backend("cpu", _KERNELS, "cpu"), Backend("emulation", _EMULATION, "cpu")) + (
    (Backend("cuda", _KERNELS, "cuda"),) if torch.cuda.is_available() else ())


def make(gen, device, dtype, weight_dtype=None, variant="plain"):
    """A call's inputs: x (N, D), w (D) in weight_dtype (x's dtype when None); "strided": x a
    transposed view."""
    N, D = (3, 5) if dtype == torch.float64 else (7, 33)
    w = randn(gen, D, dtype=weight_dtype or dtype, device=device)
    if variant == "strided":
        return (randn(gen, D, N, dtype=dtype, device=device).t(), w)
    return (randn(gen, N, D, dtype=dtype, device=device), w)


def bad_calls(device):
    """(description, x, w, message regex) of calls that must fail naming the argument."""
    x, w = torch.randn(4, 3, device=device), torch.randn(3, device=device)
    return [("x rank", x[0], w, "x must have shape"), ("w size", x, torch.randn(4, device=device), "w must have shape"),
            ("x dtype", x.int(), w, "x must be float32"), ("empty", x[:0], w, "x is empty")]
