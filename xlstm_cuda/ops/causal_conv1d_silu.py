"""causal_conv1d_silu: SiLU of a causal depthwise convolution over time (csrc/ops/causal_conv1d_silu)."""
from __future__ import annotations

import torch

from ._binder import Autograd, check_one_device, grads_like, kernel_op


def _fake(x, weight, bias, initial):
    check_one_device("causal_conv1d_silu", x, weight, bias, initial)
    return x.new_empty(x.shape)


@kernel_op("causal_conv1d_silu", fake=_fake, backward_fake=grads_like(1, 2, 3, 4),
           autograd=Autograd("causal_conv1d_silu_backward", differentiable_inputs=4))
def causal_conv1d_silu(op, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                       initial: torch.Tensor | None = None) -> torch.Tensor:
    """SiLU of a causal depthwise convolution over time, fused: x (B, S, D) (float32, bfloat16,
    float16; float64 on the CPU), weight (D, K) and bias (D) in float32 or x's dtype, initial
    (B, K - 1, D) the inputs before x (zeros when None). y[:, t] = silu(bias + Σ_k weight[:, k]
    xp[:, t + k]) with xp = [initial | x]. The CUDA kernels take K <= 8."""
    if x.dim() != 3:
        raise RuntimeError(f"causal_conv1d_silu: x must have shape [B, S, D], got {list(x.shape)}")
    if weight.dim() != 2 or weight.shape[1] < 1:
        raise RuntimeError(f"causal_conv1d_silu: weight must have shape [D, K] with K >= 1, got {list(weight.shape)}")
    if initial is None:
        initial = x.new_zeros(x.shape[0], weight.shape[1] - 1, x.shape[2])
    return op(x, weight, bias, initial)
