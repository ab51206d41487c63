"""One block's recurrent state: its conv buffer and its cell's state."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class BlockState:
    """One block's state. conv: the last kernel_size - 1 inputs of the causal conv, (B, K - 1,
    width), None for an sLSTM layer without conv. cell: the mLSTM's (C, n, m) or the sLSTM's
    (h, c, n, m), float32."""
    conv: torch.Tensor | None
    cell: tuple[torch.Tensor, ...]

    def map(self, fn) -> "BlockState":
        """A BlockState of fn applied to each tensor."""
        return BlockState(None if self.conv is None else fn(self.conv), tuple(fn(t) for t in self.cell))
