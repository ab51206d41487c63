"""nn.Linear whose few-row products (decode steps) run ops.skinny_linear on the CPU."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops

# Up to this many rows ops.skinny_linear beats MKL on the same row-major float32 weight at every
# shape measured on this project's CPUs, with one thread and with two; at 32 rows MKL is ahead at
# in_features 256 on one thread. For bfloat16 it wins at one row only (2.5-2.9x: half the bytes
# read at the bandwidth); from two rows oneDNN's bfloat16 dot products are faster (BENCHMARKS.md).
SKINNY_MAX_ROWS = 16


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear(x, weight, bias), as ops.skinny_linear where that is faster: CPU tensors of one dtype,
    a row-major weight, no gradient to record (the op has no autograd), and at most
    SKINNY_MAX_ROWS rows of x in float32 / float64 or one row in bfloat16."""
    dtype = x.dtype
    max_rows = SKINNY_MAX_ROWS if dtype in (torch.float32, torch.float64) else 1 if dtype == torch.bfloat16 else 0
    if (x.device.type == "cpu" and weight.dtype == dtype and (bias is None or bias.dtype == dtype)
            and weight.dim() == 2 and weight.stride(-1) == 1 and weight.numel() > 0
            and 0 < x.numel() <= max_rows * weight.shape[1]
            and not (torch.is_grad_enabled()
                     and (x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)))):
        return ops.skinny_linear(x, weight, bias)
    return F.linear(x, weight, bias)


class Linear(nn.Linear):
    """torch.nn.Linear (the same parameters, initialisation and state dict) whose forward is
    `linear`: a decode step's rows stream the weight once on every thread instead of going through
    the BLAS GEMV; everything else (training, long inputs, CUDA, float16) is F.linear."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)
