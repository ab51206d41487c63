"""xLSTMLMModel: token embedding, the block stack, a linear head; sequence forward, step, generate."""
from __future__ import annotations

import torch
from torch import nn

from ..blocks.config import config_from
from ..components.init import small_init_
from .config import xLSTMLMModelConfig
from .generation import generate
from .optim_groups import group_names, weight_decay_groups
from .pretrained import PretrainedMixin
from .stack import xLSTMBlockStack
from .state import xLSTMState


class xLSTMLMModel(PretrainedMixin, nn.Module):
    """The xLSTM language model of the reference package: embedding (optional dropout), the
    xLSTMBlockStack, a bias-free head (tied to the embedding with config.tie_weights).

    forward(idx (B, S), state=None, return_state=False) -> logits (B, S, V), or (logits, state);
    step(idx (B, 1) or (B,), state=None) -> (logits (B, 1, V) or (B, V), state);
    generate(idx, max_new_tokens, ...) -> (B, S + new) token ids. Parameters start with the
    reference's initialisation (its reset_parameters)."""

    config_class = xLSTMLMModelConfig

    def __init__(self, config: xLSTMLMModelConfig):
        super().__init__()
        config = config_from(xLSTMLMModelConfig, config)
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        self.emb_dropout = nn.Dropout(config.dropout) if config.add_embedding_dropout else nn.Identity()
        self.xlstm_block_stack = xLSTMBlockStack(config)
        self.lm_head = nn.Linear(config.embedding_dim, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.token_embedding.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference's initialisation: every block's, small init of the embedding and (untied) head."""
        self.xlstm_block_stack.reset_parameters()
        small_init_(self.token_embedding.weight, self.config.embedding_dim)
        if not self.config.tie_weights:
            small_init_(self.lm_head.weight, self.config.embedding_dim)

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute each block's activations in the backward pass (see xLSTMBlockStack)."""
        self.xlstm_block_stack.set_gradient_checkpointing(enabled)

    def _check_ids(self, idx: torch.Tensor, shape: str) -> None:
        if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
            raise TypeError(f"idx must hold integer token ids, got dtype {idx.dtype}")
        if idx.numel() == 0:
            raise ValueError(f"idx must be {shape} with B >= 1 and S >= 1, got shape {tuple(idx.shape)}")
        if not torch.compiler.is_compiling():  # a data-dependent check: eager mode only
            low, high = (bound.item() for bound in torch.aminmax(idx))  # one pass: this runs every step
            if low < 0 or high >= self.config.vocab_size:
                raise ValueError(f"idx holds token ids in [{low}, {high}], outside the vocabulary "
                                 f"[0, {self.config.vocab_size - 1}]")

    def forward(self, idx: torch.Tensor, state: xLSTMState | None = None, return_state: bool = False):
        """idx (B, S) -> logits (B, S, vocab_size); with return_state, (logits, state)."""
        if idx.dim() != 2:
            raise ValueError(f"idx must be (B, S), got shape {tuple(idx.shape)}")
        self._check_ids(idx, "(B, S)")
        x = self.emb_dropout(self.token_embedding(idx))
        y, state = self.xlstm_block_stack(x, state, return_state=True)
        logits = self.lm_head(y)
        return (logits, state) if return_state else logits

    def step(self, idx: torch.Tensor, state: xLSTMState | None = None) -> tuple[torch.Tensor, xLSTMState]:
        """One token per sequence: idx (B, 1) -> logits (B, 1, V); idx (B,) -> logits (B, V)."""
        if idx.dim() == 2 and idx.shape[1] != 1 or idx.dim() not in (1, 2):
            raise ValueError(f"step takes one token per sequence: idx (B, 1) or (B,), got shape {tuple(idx.shape)}")
        self._check_ids(idx, "(B, 1) or (B,)")
        x = self.emb_dropout(self.token_embedding(idx))
        y, state = self.xlstm_block_stack.step(x, state)
        return self.lm_head(y), state

    def last_logits(self, idx: torch.Tensor, state: xLSTMState | None = None) -> tuple[torch.Tensor, xLSTMState]:
        """The prefill: idx (B, S) through the sequence kernels, the head on the last position
        only: (logits (B, V), state)."""
        if idx.dim() != 2:
            raise ValueError(f"idx must be (B, S), got shape {tuple(idx.shape)}")
        self._check_ids(idx, "(B, S)")
        y, state = self.xlstm_block_stack(self.emb_dropout(self.token_embedding(idx)), state, return_state=True)
        return self.lm_head(y[:, -1]), state

    generate = generate

    def get_weight_decay_optim_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(parameters with weight decay, parameters without), as the reference groups them: the
        embedding by config.weight_decay_on_embedding."""
        return weight_decay_groups(self, self.token_embedding, self.config.weight_decay_on_embedding)

    def get_weight_decay_optim_group_param_names(self) -> tuple[list[str], list[str]]:
        """The names of get_weight_decay_optim_groups' parameters."""
        return group_names(self, self.get_weight_decay_optim_groups())

    @classmethod
    def from_reference(cls, module: nn.Module) -> "xLSTMLMModel":
        """Ours with the config and weights of a reference package (xlstm) xLSTMLMModel."""
        from .reference import lm_from_reference
        return lm_from_reference(module)
