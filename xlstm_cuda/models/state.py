"""The recurrent state of a block stack: per block, its conv buffer and its cell's state."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..blocks.state import BlockState

__all__ = ["BlockState", "xLSTMState"]


@dataclass
class xLSTMState:
    """The state of an xLSTMBlockStack (and of the xLSTMLMModel around it): blocks maps each block
    index to its BlockState. `forward(..., return_state=True)` and `step` return one; handing it to
    the next call continues the sequence. `detach()` cuts the graph for truncated
    back-propagation through time."""
    blocks: dict[int, BlockState] = field(default_factory=dict)

    def __getitem__(self, block_idx: int) -> BlockState:
        return self.blocks[block_idx]

    def __len__(self) -> int:
        return len(self.blocks)

    def map(self, fn) -> "xLSTMState":
        """An xLSTMState of fn applied to each tensor."""
        return xLSTMState({i: block.map(fn) for i, block in self.blocks.items()})

    def detach(self) -> "xLSTMState":
        """The same values, cut from the autograd graph."""
        return self.map(torch.Tensor.detach)

    def to(self, *args, **kwargs) -> "xLSTMState":
        """Tensor.to on every tensor (a device; the cell states stay float32 unless a dtype is given)."""
        return self.map(lambda t: t.to(*args, **kwargs))

    @property
    def batch_size(self) -> int:
        """The batch size the state belongs to."""
        return next(iter(self.blocks.values())).cell[0].shape[0]
