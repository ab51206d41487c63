"""xLSTMBlockStack: mLSTM and sLSTM blocks in a residual stream, then a LayerNorm."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..blocks import mLSTMBlock, sLSTMBlock
from ..blocks.config import config_from
from .config import xLSTMBlockStackConfig
from .optim_groups import group_names, weight_decay_groups
from .pretrained import PretrainedMixin
from .state import xLSTMState


class xLSTMBlockStack(PretrainedMixin, nn.Module):
    """The blocks of config.block_map (sLSTM at config.slstm_at, mLSTM elsewhere), then the
    post-blocks LayerNorm (config.add_post_blocks_norm).

    forward(x (B, S, D), state=None, return_state=False) -> y, or (y, xLSTMState) with
    return_state; step(x_t (B, D) or (B, 1, D), state=None) -> (y_t, xLSTMState). Any S >= 1.
    """

    config_class = xLSTMBlockStackConfig

    def __init__(self, config: xLSTMBlockStackConfig):
        super().__init__()
        config = config if isinstance(config, xLSTMBlockStackConfig) else config_from(xLSTMBlockStackConfig, config)
        self.config = config
        n = config.num_blocks
        self.blocks = nn.ModuleList(
            sLSTMBlock(config.slstm_block, i, n) if kind == 1 else mLSTMBlock(config.mlstm_block, i, n)
            for i, kind in enumerate(config.block_map))
        self.post_blocks_norm = (nn.LayerNorm(config.embedding_dim, bias=False) if config.add_post_blocks_norm
                                 else nn.Identity())
        self.gradient_checkpointing = False

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each block's activations in the backward pass instead of keeping them
        (training only): memory per block boundary instead of per layer intermediate."""
        self.gradient_checkpointing = enabled

    def reset_parameters(self) -> None:
        """The reference's initialisation of every block; unit post-blocks norm."""
        for block in self.blocks:
            block.reset_parameters()
        if isinstance(self.post_blocks_norm, nn.LayerNorm):
            nn.init.ones_(self.post_blocks_norm.weight)

    def _block_states(self, state: xLSTMState | None) -> list:
        if state is None:
            return [None] * len(self.blocks)
        if not isinstance(state, xLSTMState):
            raise TypeError(f"state must be an xLSTMState (from forward(..., return_state=True) or step), "
                            f"got {type(state).__name__}")
        if sorted(state.blocks) != list(range(len(self.blocks))):
            raise ValueError(f"state has blocks {sorted(state.blocks)}, this stack has blocks 0..{len(self.blocks) - 1}")
        return [state.blocks[i] for i in range(len(self.blocks))]

    def forward(self, x: torch.Tensor, state: xLSTMState | None = None, return_state: bool = False):
        """x (B, S, D) -> y (B, S, D); with return_state, (y, the state after the last token)."""
        if x.dim() != 3 or x.shape[-1] != self.config.embedding_dim:
            raise ValueError(f"x must be (B, S, {self.config.embedding_dim}), got shape {tuple(x.shape)}")
        new_state = xLSTMState()
        for i, (block, block_state) in enumerate(zip(self.blocks, self._block_states(state))):
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x, new_state.blocks[i] = checkpoint(block, x, block_state, True, use_reentrant=False)
            else:
                x, new_state.blocks[i] = block(x, block_state, return_state=True)
        y = self.post_blocks_norm(x)
        return (y, new_state) if return_state else y

    def step(self, x_t: torch.Tensor, state: xLSTMState | None = None) -> tuple[torch.Tensor, xLSTMState]:
        """One token through every block's step kernels: x_t (B, D) or (B, 1, D) (the reference's
        shape); the output has x_t's shape."""
        sequence_shaped = x_t.dim() == 3
        if sequence_shaped:
            if x_t.shape[1] != 1:
                raise ValueError(f"step takes one token: x_t (B, D) or (B, 1, D), got shape {tuple(x_t.shape)}")
            x_t = x_t[:, 0]
        if x_t.dim() != 2 or x_t.shape[-1] != self.config.embedding_dim:
            raise ValueError(f"x_t must be (B, {self.config.embedding_dim}) or (B, 1, {self.config.embedding_dim}), "
                             f"got shape {tuple(x_t.shape)}")
        new_state = xLSTMState()
        for i, (block, block_state) in enumerate(zip(self.blocks, self._block_states(state))):
            x_t, new_state.blocks[i] = block.step(x_t, block_state)
        y = self.post_blocks_norm(x_t)
        return (y[:, None] if sequence_shaped else y), new_state

    def get_weight_decay_optim_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(parameters with weight decay, parameters without), as the reference groups them."""
        return weight_decay_groups(self)

    def get_weight_decay_optim_group_param_names(self) -> tuple[list[str], list[str]]:
        """The names of get_weight_decay_optim_groups' parameters."""
        return group_names(self, self.get_weight_decay_optim_groups())

    @classmethod
    def from_reference(cls, module: nn.Module) -> "xLSTMBlockStack":
        """Ours with the config and weights of a reference package (xlstm) xLSTMBlockStack."""
        from .reference import stack_from_reference
        return stack_from_reference(module)
