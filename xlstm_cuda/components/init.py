"""The reference package's initialisers (xlstm 2.0.6, `components/init.py` and the layers'
`reset_parameters`), as in-place functions on tensors."""
from __future__ import annotations

import math

import torch

from ..layers import powerlaw_forget_bias

__all__ = ["bias_linspace_init_", "powerlaw_forget_bias", "small_init_", "wang_init_"]


def small_init_(param: torch.Tensor, dim: int) -> torch.Tensor:
    """"Small init" (Nguyen & Salazar, 2019): normal with std sqrt(2 / (5 dim)); dim is the model's
    embedding width, which the reference uses for every projection of a block."""
    if dim < 1:
        raise ValueError(f"small_init_: dim must be positive, got {dim}")
    with torch.no_grad():
        return param.normal_(0.0, math.sqrt(2 / (5 * dim)))


def wang_init_(param: torch.Tensor, dim: int, num_blocks: int) -> torch.Tensor:
    """Wang init for the projections that write into the residual stream: normal with std
    2 / (num_blocks sqrt(dim))."""
    if dim < 1 or num_blocks < 1:
        raise ValueError(f"wang_init_: dim and num_blocks must be positive, got {dim} and {num_blocks}")
    with torch.no_grad():
        return param.normal_(0.0, 2 / num_blocks / math.sqrt(dim))


def bias_linspace_init_(param: torch.Tensor, start: float = 3.4, end: float = 6.0) -> torch.Tensor:
    """A 1-D bias set to evenly spaced values from start to end (the mLSTM forget gates: 3 to 6)."""
    if param.dim() != 1:
        raise ValueError(f"bias_linspace_init_: param must be 1-D, got shape {tuple(param.shape)}")
    with torch.no_grad():
        return param.copy_(torch.linspace(start, end, param.shape[0]))
