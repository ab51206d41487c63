"""mlstm_output_gate: the mLSTM layer's output stage (csrc/ops/mlstm_output_gate)."""
from __future__ import annotations

import torch

from ._binder import Autograd, check_one_device, grads_like, kernel_op


def _fake(h, x_conv, z, norm_weight, skip):
    check_one_device("mlstm_output_gate", h, x_conv, z, norm_weight, skip)
    return h.new_empty(h.shape)


@kernel_op("mlstm_output_gate", fake=_fake, backward_fake=grads_like(1, 2, 3, 4, 5),
           autograd=Autograd("mlstm_output_gate_backward", differentiable_inputs=5))
def mlstm_output_gate(op, h: torch.Tensor, x_conv: torch.Tensor, z: torch.Tensor, norm_weight: torch.Tensor,
                      skip: torch.Tensor) -> torch.Tensor:
    """The mLSTM layer's output stage, fused: (norm_weight * h + skip * x_conv) * silu(z). h, x_conv,
    z (..., D), one dtype (float32, bfloat16, float16; float64 on the CPU); norm_weight and skip (D)
    in float32 or that dtype. Returns (..., D)."""
    if h.dim() < 1 or x_conv.shape != h.shape or z.shape != h.shape:
        raise RuntimeError(f"mlstm_output_gate: h, x_conv and z must have one shape [..., D], got "
                           f"{list(h.shape)}, {list(x_conv.shape)}, {list(z.shape)}")
    if h.dim() == 2:  # already rows (a generation step): four reshapes fewer
        return op(h, x_conv, z, norm_weight, skip)
    rows = [t.reshape(-1, t.shape[-1]) for t in (h, x_conv, z)]
    return op(*rows, norm_weight, skip).reshape(h.shape)
