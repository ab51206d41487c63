"""State types and defaults shared by the cell ops."""
from __future__ import annotations

import torch

MlstmState = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
SlstmState = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """States are float32, float64 for float64 inputs (CPU)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def mlstm_state(state, q: torch.Tensor, v: torch.Tensor, op: str, argument: str) -> MlstmState:
    """The given (C, n, m), or the zero state for q and v's sizes."""
    if state is None:
        B, NH, DQK = q.shape[0], q.shape[1], q.shape[-1]
        sd = state_dtype(q.dtype)
        return (q.new_zeros(B, NH, DQK, v.shape[-1], dtype=sd), q.new_zeros(B, NH, DQK, dtype=sd),
                q.new_zeros(B, NH, dtype=sd))
    if not (isinstance(state, (tuple, list)) and len(state) == 3):
        raise TypeError(f"{op}: {argument} must be a tuple (C, n, m)")
    return tuple(state)
