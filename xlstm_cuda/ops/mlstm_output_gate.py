"""mlstm_output_gate: the mLSTM layer's output stage (csrc/ops/mlstm_output_gate)."""
from __future__ import annotations

import torch

from ._binder import Autograd, check_one_device, kernel_op


def _fake(h, x_conv, z, norm_weight, skip, eps):
    check_one_device("mlstm_output_gate", h, x_conv, z, norm_weight, skip)
    return x_conv.new_empty(x_conv.shape)


def _in_layout_of(h: torch.Tensor) -> torch.Tensor:
    """An empty tensor like h (B, S, NH, DH) laid out in h's order of strides, as the kernels
    allocate dh (the cell's head-major layout stays head-major)."""
    order = sorted(range(3), key=lambda d: -h.stride(d))  # stable, as the C++ side's std::stable_sort
    buffer = h.new_empty([h.shape[d] for d in order] + [h.shape[3]])
    return buffer.permute([order.index(d) for d in range(3)] + [3])


def _backward_fake(dy, h, x_conv, z, norm_weight, skip, eps):
    return (_in_layout_of(h), x_conv.new_empty(x_conv.shape), x_conv.new_empty(x_conv.shape),
            norm_weight.new_empty(norm_weight.shape), skip.new_empty(skip.shape))


@kernel_op("mlstm_output_gate", fake=_fake, backward_fake=_backward_fake,
           autograd=Autograd("mlstm_output_gate_backward", differentiable_inputs=5, constants=(5,)))
def mlstm_output_gate(op, h: torch.Tensor, x_conv: torch.Tensor, z: torch.Tensor, norm_weight: torch.Tensor,
                      skip: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """The mLSTM layer's output stage, fused: (norm_weight * norm(h) + skip * x_conv) * silu(z),
    where norm is a layer norm over each head's DH features (no affine of its own; biased
    variance, eps added to it), the multi-head norm of the spec.

    h: (B, S, NH, DH), the cell's output, any strides with unit stride over DH: the cell's
    head-major (B, NH, S, DH) output passes as its transpose(1, 2), without a copy. x_conv, z:
    (B, S, NH * DH) with unit stride over the features (z may be a half of the up-projection). One
    dtype (float32, bfloat16, float16; float64 on the CPU); norm_weight and skip (NH * DH) in float32
    or that dtype. Returns (B, S, NH * DH). A generation step passes h (B, NH, DH) and x_conv, z
    (B, NH * DH), and gets (B, NH * DH). The gradient for h comes in h's memory layout."""
    if isinstance(h, torch.Tensor) and h.dim() == 3:  # one token
        return op(h.unsqueeze(1), x_conv.unsqueeze(1), z.unsqueeze(1), norm_weight, skip, eps).squeeze(1)
    return op(h, x_conv, z, norm_weight, skip, eps)
