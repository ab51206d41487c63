"""Normalisations of the xLSTM 7B architecture, with the reductions in float32.

Both cast the normalised value back to the input's dtype before the learnable scale (and bias) are
applied, so that bfloat16 models round where the reference implementations round.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _check_features(name: str, x: torch.Tensor, features: int) -> None:
    if x.dim() < 1 or x.shape[-1] != features:
        raise ValueError(f"{name}: x must have shape [..., {features}], got {list(x.shape)}")


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) over the last dimension, then · weight (+ bias).

    num_features: the last dimension; eps: added to the mean square; use_weight / use_bias: learnable
    scale (ones) and shift (zeros); force_float32_reductions: reduce in float32 whatever x's dtype."""

    def __init__(self, num_features: int, eps: float = 1e-6, use_weight: bool = True, use_bias: bool = False,
                 force_float32_reductions: bool = True):
        super().__init__()
        if num_features < 1:
            raise ValueError(f"RMSNorm: num_features must be positive, got {num_features}")
        if not eps >= 0:
            raise ValueError(f"RMSNorm: eps must be non-negative, got {eps}")
        self.num_features, self.eps, self.force_float32_reductions = num_features, eps, force_float32_reductions
        self.weight = nn.Parameter(torch.ones(num_features)) if use_weight else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if use_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., num_features) -> same shape and dtype."""
        _check_features("RMSNorm", x, self.num_features)
        y = x.float() if self.force_float32_reductions else x
        if y.dtype == x.dtype:  # no rounding between the normalisation and the scale: one fused call
            y = F.rms_norm(y, (self.num_features,), self.weight, self.eps)
        else:
            y = F.rms_norm(y, (self.num_features,), eps=self.eps).to(x.dtype)
            if self.weight is not None:
                y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y


class MultiHeadLayerNorm(nn.Module):
    """Layer norm of each head's features on their own (mean and variance over head_dim), then one
    learnable scale (and bias) over all num_heads · head_dim features.

    forward(x (B, S, NH, DH)) -> (B, S, NH · DH)."""

    def __init__(self, num_heads: int, head_dim: int, eps: float = 1e-6, use_weight: bool = True,
                 use_bias: bool = False, force_float32_reductions: bool = True):
        super().__init__()
        if num_heads < 1 or head_dim < 1:
            raise ValueError(f"MultiHeadLayerNorm: num_heads and head_dim must be positive, got {num_heads}, "
                             f"{head_dim}")
        self.num_heads, self.head_dim, self.eps = num_heads, head_dim, eps
        self.force_float32_reductions = force_float32_reductions
        features = num_heads * head_dim
        self.weight = nn.Parameter(torch.ones(features)) if use_weight else None
        self.bias = nn.Parameter(torch.zeros(features)) if use_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., NH, DH) -> (..., NH · DH), x's dtype."""
        if x.dim() < 2 or tuple(x.shape[-2:]) != (self.num_heads, self.head_dim):
            raise ValueError(f"MultiHeadLayerNorm: x must have shape [..., {self.num_heads}, {self.head_dim}], "
                             f"got {list(x.shape)}")
        y = x.float() if self.force_float32_reductions else x
        y = F.layer_norm(y, (self.head_dim,), eps=self.eps).to(x.dtype).flatten(-2)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y
