"""The mLSTM block: x + mLSTMLayer(LayerNorm(x))."""
from __future__ import annotations

import torch
from torch import nn

from ..components.init import bias_linspace_init_, small_init_, wang_init_
from ..layers import mLSTMLayer
from .base import ResidualBlock
from .config import config_from, mLSTMBlockConfig


class mLSTMBlock(ResidualBlock):
    """Pre-LayerNorm residual mLSTM block. config: an mLSTMBlockConfig (or a dict, or the
    reference's) whose layer config has embedding_dim set; block_idx and num_blocks place it in a
    stack (num_blocks defaults to the config's _num_blocks), for the initialisation."""

    CELL_KEY = "mlstm"

    def __init__(self, config: mLSTMBlockConfig, block_idx: int = 0, num_blocks: int | None = None):
        config = config_from(mLSTMBlockConfig, config)
        layer = config.mlstm
        super().__init__(layer.embedding_dim, block_idx, num_blocks or layer._num_blocks)
        self.config = config
        self.xlstm = mLSTMLayer(layer.embedding_dim, layer.num_heads, layer.proj_factor, layer.conv1d_kernel_size,
                                layer.qkv_proj_blocksize, layer.dropout, layer.bias, layer.chunk_size)
        self.reset_parameters()

    def expected_state_shapes(self, batch: int):
        layer = self.xlstm
        dh = layer.inner // layer.num_heads
        conv = (batch, layer.conv.kernel_size - 1, layer.inner)
        return conv, [(batch, layer.num_heads, dh, dh), (batch, layer.num_heads, dh), (batch, layer.num_heads)]

    def reset_parameters(self) -> None:
        """The reference's initialisation: small init of the up and q, k, v projections (by the
        embedding width), wang init of the down projection, zero gate weights, input-gate biases
        N(0, 0.1), forget-gate biases 3 to 6, unit norms and skip, PyTorch's conv default."""
        D, layer = self.embedding_dim, self.xlstm
        nn.init.ones_(self.xlstm_norm.weight)
        small_init_(layer.up.weight, D)
        wang_init_(layer.down.weight, D, self.num_blocks)
        for proj in (layer.q, layer.k, layer.v):
            small_init_(proj.weight, D)
        for bias in (layer.up.bias, layer.down.bias, layer.q.bias, layer.k.bias, layer.v.bias):
            if bias is not None:
                nn.init.zeros_(bias)
        layer.conv.conv.reset_parameters()
        NH = layer.num_heads
        with torch.no_grad():
            layer.gates.weight.zero_()
            layer.gates.bias[:NH].normal_(0.0, 0.1)
        bias_linspace_init_(layer.gates.bias[NH:], 3.0, 6.0)
        nn.init.ones_(layer.norm.weight)
        nn.init.ones_(layer.skip)
