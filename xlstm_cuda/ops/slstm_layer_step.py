"""slstm_layer_step: the sLSTM layer's generation step, fused, CPU only (csrc/ops/slstm_layer_step):
an inference fast path without autograd (sLSTMLayer.step uses it on CPU tensors when no gradient
is needed; CUDA tensors keep the composed ops)."""
from __future__ import annotations

import torch

from ._binder import INFERENCE_OP_SPECS, check_one_device, contiguous_like, kernel_op
from ._states import SlstmState


def _fake(x, conv_buffer, conv_weight, conv_bias, gate_weight, R, b, h, c, n, m, norm_weight, norm_eps):
    check_one_device("slstm_layer_step", *(t for t in (x, conv_buffer, conv_weight, conv_bias, gate_weight, R, b, h, c,
                                                        n, m, norm_weight) if t is not None))
    buffer = conv_buffer.new_empty(conv_buffer.shape) if conv_buffer is not None else x.new_empty(0)
    return (x.new_empty(x.shape), buffer, *contiguous_like(h, c, n, m))


@kernel_op("slstm_layer_step", fake=_fake, registry=INFERENCE_OP_SPECS)
def slstm_layer_step(op, x: torch.Tensor, conv_buffer: torch.Tensor | None, conv_weight: torch.Tensor | None,
                     conv_bias: torch.Tensor | None, gate_weight: torch.Tensor, R: torch.Tensor, b: torch.Tensor,
                     state: SlstmState, norm_weight: torch.Tensor,
                     norm_eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor | None, SlstmState]:
    """One token of sLSTMLayer: x (B, D); conv_buffer (B, K - 1, D), the last K - 1 inputs,
    conv_weight (D, 1, K) and conv_bias (D), the Conv1d's, all three None without a conv;
    gate_weight (NH, 4, DH, DH) the per-head gate projections (i, f of the conv branch, z, o of x);
    R (NH, DH, 4, DH), b (NH, 4, DH); state (h, c, n, m), each (B, NH, DH); norm_weight (D).
    Every tensor in one dtype, float32 or float64, on the CPU (no CUDA kernel: the CUDA path
    composes the parts' ops). No autograd. Returns (y (B, D), the new conv buffer or None, the new
    state)."""
    if not (isinstance(state, (tuple, list)) and len(state) == 4):
        raise TypeError("slstm_layer_step: state must be a tuple (h, c, n, m)")
    y, buffer, h, c, n, m = op(x, conv_buffer, conv_weight, conv_bias, gate_weight, R, b, *state, norm_weight,
                               float(norm_eps))
    return y, (buffer if conv_buffer is not None else None), (h, c, n, m)
