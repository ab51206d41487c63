"""mlstm_layer_step: the mLSTM layer's generation step between its projections, fused, CPU only
(csrc/ops/mlstm_layer_step): an inference fast path without autograd (mLSTMLayer.step uses it on
CPU tensors when no gradient is needed; CUDA tensors keep the composed ops)."""
from __future__ import annotations

import torch

from ._binder import INFERENCE_OP_SPECS, check_one_device, contiguous_like, kernel_op
from ._states import MlstmState


def _fake(up, conv_buffer, conv_weight, conv_bias, q_weight, k_weight, v_weight, q_bias, k_bias, v_bias, gate_weight,
          gate_bias, C, n, m, norm_weight, skip, norm_eps, eps):
    check_one_device("mlstm_layer_step", *(t for t in (up, conv_buffer, conv_weight, conv_bias, q_weight, k_weight,
                                                        v_weight, q_bias, k_bias, v_bias, gate_weight, gate_bias, C, n,
                                                        m, norm_weight, skip) if t is not None))
    B, D = up.shape[0], up.shape[1] // 2
    return (up.new_empty(B, D), conv_buffer.new_empty(conv_buffer.shape), *contiguous_like(C, n, m))


@kernel_op("mlstm_layer_step", fake=_fake, registry=INFERENCE_OP_SPECS)
def mlstm_layer_step(op, up: torch.Tensor, conv_buffer: torch.Tensor, conv_weight: torch.Tensor,
                     conv_bias: torch.Tensor, q_weight: torch.Tensor, k_weight: torch.Tensor, v_weight: torch.Tensor,
                     q_bias: torch.Tensor | None, k_bias: torch.Tensor | None, v_bias: torch.Tensor | None,
                     gate_weight: torch.Tensor, gate_bias: torch.Tensor, state: MlstmState, norm_weight: torch.Tensor,
                     skip: torch.Tensor, norm_eps: float = 1e-5,
                     eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor, MlstmState]:
    """One token of mLSTMLayer between its up- and down-projection: up (B, 2 inner), the
    up-projection's output (x_m, then z); conv_buffer (B, K - 1, inner), the last K - 1 x_m;
    conv_weight (inner, 1, K) and conv_bias (inner), the Conv1d's; q/k/v_weight (inner / block,
    block, block) and their biases (inner) or None; gate_weight (2 NH, 3 inner) and gate_bias
    (2 NH), the gates' Linear of concat(q, k, v); state (C (B, NH, DH, DH), n (B, NH, DH), m (B, NH));
    norm_weight and skip (inner). Every tensor in one dtype, float32 or float64, on the CPU (no CUDA
    kernel: the CUDA path composes the parts' ops). No autograd. Returns (out (B, inner), the
    new conv buffer, the new state)."""
    if not (isinstance(state, (tuple, list)) and len(state) == 3):
        raise TypeError("mlstm_layer_step: state must be a tuple (C, n, m)")
    out, buffer, C, n, m = op(up, conv_buffer, conv_weight, conv_bias, q_weight, k_weight, v_weight, q_bias, k_bias,
                              v_bias, gate_weight, gate_bias, *state, norm_weight, skip, float(norm_eps), float(eps))
    return out, buffer, (C, n, m)
