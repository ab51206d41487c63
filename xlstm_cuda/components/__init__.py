"""Components the blocks are built of: the causal conv, headwise (block-diagonal) linear maps, the
Linear whose decode steps run ops.skinny_linear, norms (layer, multi-head, RMS), the gated
feed-forward and SwiGLU, the soft cap, and the reference package's initialisers."""
from torch.nn import LayerNorm

from ..layers import CausalConvSiLU, HeadwiseLinear, MultiHeadNorm
from .feedforward import ACTIVATIONS, GatedFeedForward
from .init import bias_linspace_init_, powerlaw_forget_bias, small_init_, wang_init_
from .linear import Linear, linear
from .rms_norm import MultiHeadLayerNorm, RMSNorm
from .soft_cap import soft_cap
from .swiglu import SwiGLU

__all__ = ["ACTIVATIONS", "CausalConvSiLU", "GatedFeedForward", "HeadwiseLinear", "LayerNorm", "Linear",
           "MultiHeadLayerNorm", "MultiHeadNorm", "RMSNorm", "SwiGLU", "bias_linspace_init_", "linear",
           "powerlaw_forget_bias", "small_init_", "soft_cap", "wang_init_"]
