"""The sLSTM block: x + sLSTMLayer(LayerNorm(x)), then x + GatedFeedForward(LayerNorm(x))."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..components.feedforward import GatedFeedForward
from ..components.init import powerlaw_forget_bias, small_init_, wang_init_
from ..layers import sLSTMLayer
from .base import ResidualBlock
from .config import config_from, sLSTMBlockConfig


class sLSTMBlock(ResidualBlock):
    """Pre-LayerNorm residual sLSTM block with the gated feed-forward (unless config.feedforward is
    None). config: an sLSTMBlockConfig (or a dict, or the reference's) whose layer config has
    embedding_dim set; block_idx and num_blocks place it in a stack (the forget-gate bias depends
    on the position; defaults: the config's _block_idx and _num_blocks)."""

    CELL_KEY = "slstm"

    def __init__(self, config: sLSTMBlockConfig, block_idx: int | None = None, num_blocks: int | None = None):
        config = config_from(sLSTMBlockConfig, config)
        layer = config.slstm
        super().__init__(layer.embedding_dim, layer._block_idx if block_idx is None else block_idx,
                         num_blocks or layer._num_blocks)
        if layer.embedding_dim % layer.num_heads:
            raise ValueError(f"sLSTMBlock: embedding_dim {layer.embedding_dim} is not divisible by num_heads "
                             f"{layer.num_heads}")
        self.config = config
        self.xlstm = sLSTMLayer(layer.embedding_dim, layer.num_heads, layer.conv1d_kernel_size, "zeros",
                                layer.dropout)
        ff = config.feedforward
        if ff is not None:
            self.ffn_norm = nn.LayerNorm(self.embedding_dim, bias=False)
            self.ffn = GatedFeedForward(self.embedding_dim, ff._proj_up_dim, ff.act_fn, ff.dropout, ff.bias)
        else:
            self.ffn_norm = self.ffn = None
        self.reset_parameters()

    def _after_layer(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.ffn is None else x + self.ffn(self.ffn_norm(x))

    def expected_state_shapes(self, batch: int):
        layer = self.xlstm
        conv = None if layer.conv is None else (batch, layer.conv.kernel_size - 1, self.embedding_dim)
        return conv, [(batch, layer.num_heads, layer.head_dim)] * 4

    def reset_parameters(self) -> None:
        """The reference's initialisation: small init of the gate projections, the recurrent
        weights by recurrent_weight_init (zeros, or uniform within 1/sqrt(D)), the biases by
        bias_init (the forget gate's power law over the block position by default), unit norms,
        small init / wang init of the feed-forward, PyTorch's conv default."""
        D, layer, cfg = self.embedding_dim, self.xlstm, self.config.slstm
        NH, DH = layer.num_heads, layer.head_dim
        nn.init.ones_(self.xlstm_norm.weight)
        if layer.conv is not None:
            layer.conv.conv.reset_parameters()
        small_init_(layer.gate_weight, D)
        bound = 1 / math.sqrt(D)
        with torch.no_grad():
            if cfg.recurrent_weight_init == "zeros":
                layer.cell.R.zero_()
            else:
                layer.cell.R.uniform_(-bound, bound)
            b = layer.cell.b  # (NH, gate i/f/z/o, DH)
            if cfg.bias_init == "standard":
                b.uniform_(-bound, bound)
            else:
                b.zero_()
                if cfg.bias_init == "powerlaw_blockdependent":
                    b[:, 1] = powerlaw_forget_bias(NH, DH, self.block_idx, self.num_blocks)
                elif cfg.bias_init == "small_init":
                    b[:, 1] = torch.linspace(3.0, 6.0, DH)
        nn.init.ones_(layer.norm.weight)
        if self.ffn is not None:
            nn.init.ones_(self.ffn_norm.weight)
            small_init_(self.ffn.proj_up.weight, D)
            wang_init_(self.ffn.proj_down.weight, D, self.num_blocks)
            for bias in (self.ffn.proj_up.bias, self.ffn.proj_down.bias):
                if bias is not None:
                    nn.init.zeros_(bias)
