"""Soft capping: cap · tanh(x / cap), a smooth clamp of x into (-cap, cap)."""
from __future__ import annotations

import torch


def _check_cap(cap: float | None) -> None:
    if cap is not None and not cap > 0:
        raise ValueError(f"soft_cap: cap must be positive or None, got {cap}")


def soft_cap(x: torch.Tensor, cap: float | None) -> torch.Tensor:
    """cap · tanh(x / cap), elementwise; x itself when cap is None. cap must be positive."""
    _check_cap(cap)
    return x if cap is None else cap * torch.tanh(x / cap)


def soft_cap_(x: torch.Tensor, cap: float | None) -> torch.Tensor:
    """soft_cap in place (no temporaries: a prompt's logits are B · S · vocab floats); returns x."""
    _check_cap(cap)
    return x if cap is None else x.div_(cap).tanh_().mul_(cap)
