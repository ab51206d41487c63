"""The SwiGLU feed-forward of the xLSTM 7B blocks: down(silu(gate(x)) · up(x))."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .linear import Linear


def round_up(x: float, multiple: int) -> int:
    """floor((x + multiple - 1) / multiple) · multiple: for an integer x the smallest multiple >= x; a
    fractional x (embedding_dim · ffn_proj_factor) rounds as the xLSTM 7B checkpoints do, which is
    down by up to 1 first (96 · 2.6667 = 256.003 gives 256, not 320)."""
    if multiple < 1:
        raise ValueError(f"round_up: multiple must be positive, got {multiple}")
    return int((x + multiple - 1) // multiple * multiple)


class SwiGLU(nn.Module):
    """down(silu(x W_gate) · x W_up), inner width round_up(dim · proj_factor, round_to).

    fused=False keeps `proj_up_gate` and `proj_up` (D -> inner each); fused=True one `proj_up_gate_z`
    (D -> 2 · inner, the gate rows first), one matmul instead of two. `proj_down` is inner -> D."""

    def __init__(self, dim: int, proj_factor: float = 2.6667, round_to: int = 64, bias: bool = False,
                 fused: bool = False):
        super().__init__()
        if dim < 1 or not proj_factor > 0:
            raise ValueError(f"SwiGLU: dim and proj_factor must be positive, got {dim}, {proj_factor}")
        self.dim, self.inner, self.fused = dim, round_up(dim * proj_factor, round_to), fused
        if fused:
            self.proj_up_gate_z = Linear(dim, 2 * self.inner, bias=bias)
        else:
            self.proj_up_gate = Linear(dim, self.inner, bias=bias)
            self.proj_up = Linear(dim, self.inner, bias=bias)
        self.proj_down = Linear(self.inner, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., dim) -> (..., dim)."""
        if x.dim() < 1 or x.shape[-1] != self.dim:
            raise ValueError(f"SwiGLU: x must have shape [..., {self.dim}], got {list(x.shape)}")
        if self.fused:
            gate, z = self.proj_up_gate_z(x).split(self.inner, dim=-1)
        else:
            gate, z = self.proj_up_gate(x), self.proj_up(x)
        return self.proj_down(F.silu(gate) * z)
