"""Soft capping: cap · tanh(x / cap), a smooth clamp of x into (-cap, cap)."""
from __future__ import annotations

import torch


def soft_cap(x: torch.Tensor, cap: float | None) -> torch.Tensor:
    """cap · tanh(x / cap), elementwise; x itself when cap is None. cap must be positive."""
    if cap is None:
        return x
    if not cap > 0:
        raise ValueError(f"soft_cap: cap must be positive or None, got {cap}")
    return cap * torch.tanh(x / cap)
