"""skinny_linear: x Wᵀ + b for a few rows of x, CPU only (csrc/ops/skinny_linear): an inference fast
path without autograd for decode steps, where the product is bound by reading the weight (the
components' Linear uses it on CPU tensors when no gradient is needed; see its docstring)."""
from __future__ import annotations

import torch

from ._binder import INFERENCE_OP_SPECS, check_one_device, kernel_op


def _fake(x, weight, bias):
    check_one_device("skinny_linear", *(t for t in (x, weight, bias) if t is not None))
    return x.new_empty(*x.shape[:-1], weight.shape[0])


@kernel_op("skinny_linear", fake=_fake, registry=INFERENCE_OP_SPECS)
def skinny_linear(op, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear(x, weight, bias) for x (..., in_features) with few rows (a decode step's tokens):
    weight (out_features, in_features) row-major (unit stride along in_features; a transposed
    weight raises rather than being copied every call), bias (out_features) or None; one dtype,
    float32, float64 or bfloat16 (computed in float32, the weight widened as it is read, the
    output rounded once), on the CPU (no CUDA kernel). Each thread reads its share of the weight's
    rows once, in order, against every row of x: about the memory bandwidth on one thread and more
    on two, where MKL's GEMV over the same float32 weight reads at 35-85 % of that rate on one
    thread and no faster on two, and torch's bfloat16 GEMV at about half of it (BENCHMARKS.md).
    Any number of rows is correct; past 16-32 float32 rows a BLAS GEMM is faster, and past one
    bfloat16 row oneDNN's bfloat16 products are. No autograd. Returns (..., out_features).
    """
    return op(x, weight, bias)
