"""nn.Linear whose few-row products (decode steps) run ops.skinny_linear on the CPU."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops

# Up to this many rows ops.skinny_linear beats MKL on the same row-major weight at every shape
# measured on this project's CPUs, with one thread and with two; at 32 rows MKL is ahead at
# in_features 256 on one thread (BENCHMARKS.md).
SKINNY_MAX_ROWS = 16


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear(x, weight, bias), as ops.skinny_linear where that applies: CPU float32 / float64
    tensors of one dtype, a row-major weight, at most SKINNY_MAX_ROWS rows of x, and no gradient
    to record (the op has no autograd)."""
    if (x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and weight.dtype == x.dtype
            and (bias is None or bias.dtype == x.dtype) and weight.dim() == 2 and weight.stride(-1) == 1
            and 0 < x.numel() <= SKINNY_MAX_ROWS * weight.shape[1] and weight.numel() > 0
            and not (torch.is_grad_enabled()
                     and (x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)))):
        return ops.skinny_linear(x, weight, bias)
    return F.linear(x, weight, bias)


class Linear(nn.Linear):
    """torch.nn.Linear (the same parameters, initialisation and state dict) whose forward is
    `linear`: a decode step's rows stream the weight once on every thread instead of going through
    the BLAS GEMV; everything else (training, long inputs, CUDA, other dtypes) is F.linear."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)
