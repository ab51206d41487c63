"""What the mLSTM and sLSTM blocks share: the pre-LayerNorm residual around a layer, the state
plumbing between the layers' dicts and BlockState, and the checks on a given state."""
from __future__ import annotations

import torch
from torch import nn

from ..layers import check_input
from .state import BlockState


class ResidualBlock(nn.Module):
    """x + layer(LayerNorm(x)), then (subclasses) more residual branches. Subclasses set
    self.xlstm_norm, self.xlstm, CELL_KEY (the layer state's cell entry) and define
    expected_state_shapes."""

    CELL_KEY: str

    def __init__(self, embedding_dim: int, block_idx: int, num_blocks: int):
        super().__init__()
        if embedding_dim < 1:
            raise ValueError(f"{type(self).__name__}: embedding_dim must be set (>= 1), got {embedding_dim}; "
                             "a stack config sets it for its blocks")
        if not 0 <= block_idx < num_blocks:
            raise ValueError(f"{type(self).__name__}: block_idx {block_idx} is not in a stack of {num_blocks} blocks")
        self.embedding_dim, self.block_idx, self.num_blocks = embedding_dim, block_idx, num_blocks
        self.xlstm_norm = nn.LayerNorm(embedding_dim, bias=False)

    def expected_state_shapes(self, batch: int) -> tuple[tuple[int, ...] | None, list[tuple[int, ...]]]:
        """The conv buffer's shape (None without conv) and the cell state's shapes for a batch."""
        raise NotImplementedError

    def check_state(self, state: BlockState, batch: int) -> None:
        """A clear error for a state that does not belong to this block at this batch size."""
        if not isinstance(state, BlockState):
            raise TypeError(f"block {self.block_idx}: state must be a BlockState, got {type(state).__name__}")
        conv_shape, cell_shapes = self.expected_state_shapes(batch)
        got_conv = None if state.conv is None else tuple(state.conv.shape)
        if got_conv != conv_shape:
            raise ValueError(f"block {self.block_idx} ({type(self).__name__}): state.conv has shape {got_conv}, "
                             f"expected {conv_shape}")
        got_cell = [tuple(t.shape) for t in state.cell]
        if got_cell != cell_shapes:
            raise ValueError(f"block {self.block_idx} ({type(self).__name__}): state.cell has shapes {got_cell}, "
                             f"expected {cell_shapes} (batch {batch})")

    def _layer_state(self, state: BlockState | None, batch: int) -> dict | None:
        if state is None:
            return None
        self.check_state(state, batch)
        layer_state = {self.CELL_KEY: tuple(state.cell)}
        if state.conv is not None:
            layer_state["conv"] = state.conv
        return layer_state

    def _block_state(self, layer_state: dict) -> BlockState:
        return BlockState(layer_state.get("conv"), tuple(layer_state[self.CELL_KEY]))

    def _after_layer(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branches after the layer's (none by default)."""
        return x

    def _check_input(self, x: torch.Tensor, dims: int) -> None:
        check_input(f"block {self.block_idx}", x, dims, self.embedding_dim)

    def forward(self, x: torch.Tensor, state: BlockState | None = None, return_state: bool = False):
        """x (B, S, D) -> y (B, S, D); with return_state, (y, BlockState)."""
        self._check_input(x, 3)
        out, layer_state = self.xlstm(self.xlstm_norm(x), self._layer_state(state, x.shape[0]))
        y = self._after_layer(x + out)
        return (y, self._block_state(layer_state)) if return_state else y

    def step(self, x_t: torch.Tensor, state: BlockState | None = None) -> tuple[torch.Tensor, BlockState]:
        """One token, x_t (B, D) -> (y_t (B, D), BlockState), with the layer's step kernels."""
        self._check_input(x_t, 2)
        out, layer_state = self.xlstm.step(self.xlstm_norm(x_t), self._layer_state(state, x_t.shape[0]))
        return self._after_layer(x_t + out), self._block_state(layer_state)
