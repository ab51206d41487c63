"""Components the blocks are built of: the causal conv, headwise (block-diagonal) linear maps,
norms, the gated feed-forward and the reference package's initialisers."""
from torch.nn import LayerNorm

from ..layers import CausalConvSiLU, HeadwiseLinear, MultiHeadNorm
from .feedforward import ACTIVATIONS, GatedFeedForward
from .init import bias_linspace_init_, powerlaw_forget_bias, small_init_, wang_init_

__all__ = ["ACTIVATIONS", "CausalConvSiLU", "GatedFeedForward", "HeadwiseLinear", "LayerNorm", "MultiHeadNorm",
           "bias_linspace_init_", "powerlaw_forget_bias", "small_init_", "wang_init_"]
