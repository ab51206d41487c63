"""headwise_linear: the block-diagonal linear map of the layers' projections (csrc/ops/headwise_linear)."""
from __future__ import annotations

import torch

from ._binder import Autograd, check_one_device, grads_like, kernel_op


def _fake(x, weight, heads=1):
    check_one_device("headwise_linear", x, weight)
    B, S, _ = x.shape
    return x.new_empty(B, heads, S, weight.shape[0] * weight.shape[1] // heads)


@kernel_op("headwise_linear", fake=_fake, backward_fake=grads_like(1, 2),
           autograd=Autograd("headwise_linear_backward", differentiable_inputs=2, constants=(2,)))
def headwise_linear(op, x: torch.Tensor, weight: torch.Tensor, heads: int = 1) -> torch.Tensor:
    """Block-diagonal linear map: x (..., G * I) (float32, bfloat16, float16; float64 on the
    CPU), weight (G, O, I) in float32 or x's dtype; block g of the output is weight[g] times
    block g of the input. Returns (..., G * O) in x's dtype; with heads > 1, x is (B, S, G * I)
    and the output comes head-major, (B, heads, S, G * O / heads), as the mLSTM cell reads it."""
    if weight.dim() != 3:
        raise RuntimeError(f"headwise_linear: weight must have shape [G, O, I], got {list(weight.shape)}")
    if heads != 1:
        return op(x, weight, heads)
    if x.dim() < 1:
        raise RuntimeError("headwise_linear: x must have shape [..., G * I], got a scalar")
    y = op(x.reshape(1, -1, x.shape[-1]), weight)
    return y.reshape(*x.shape[:-1], y.shape[-1])
