"""The gated feed-forward of the sLSTM block: down(act(gate) * up), with gate and up one projection."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# The reference package's activation names.
ACTIVATIONS = {
    "gelu": F.gelu,
    "relu": F.relu,
    "relu^2": lambda x: torch.square(F.relu(x)),
    "sigmoid": torch.sigmoid,
    "swish": F.silu,
    "selu": F.selu,
}


class GatedFeedForward(nn.Module):
    """(..., D) -> (..., D): proj_up to 2 * proj_up_dim (the gate pre-activations first, then the
    values), act(gate) * values, proj_down, dropout."""

    def __init__(self, embedding_dim: int, proj_up_dim: int, act_fn: str = "gelu", dropout: float = 0.0,
                 bias: bool = False):
        super().__init__()
        if act_fn not in ACTIVATIONS:
            raise ValueError(f"act_fn {act_fn!r} is not one of {sorted(ACTIVATIONS)}")
        if embedding_dim < 1 or proj_up_dim < 1:
            raise ValueError(f"embedding_dim and proj_up_dim must be positive, got {embedding_dim} and {proj_up_dim}")
        self.proj_up_dim, self.act_fn = proj_up_dim, act_fn
        self.proj_up = nn.Linear(embedding_dim, 2 * proj_up_dim, bias=bias)
        self.proj_down = nn.Linear(proj_up_dim, embedding_dim, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.proj_up(x).split(self.proj_up_dim, dim=-1)
        return self.dropout(self.proj_down(ACTIVATIONS[self.act_fn](gate) * up))
