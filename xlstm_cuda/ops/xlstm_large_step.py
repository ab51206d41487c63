"""xLSTM 7B's (xLSTMLarge's) inference as two fused ops, CPU only (csrc/ops/xlstm_large_step):
xlstm_large_block_step, one token through a whole block, and xlstm_large_head, the output norm, the
LM head and the logits' soft cap of a decode step or a prompt. Fast paths without autograd:
xLSTMLarge takes them on CPU tensors when no gradient is needed (see xLSTMLargeBlock.forward and
xLSTMLarge._logits)."""
from __future__ import annotations

import torch

from ._binder import INFERENCE_OP_SPECS, check_one_device, contiguous_like, kernel_op
from ._states import MlstmState


def _fake(x, norm_mlstm_weight, qkvo_weights, gate_weights, gate_biases, multihead_norm_weight, out_weight,
          norm_ffn_weight, up_weights, down_weight, C, n, m, gate_soft_cap, norm_eps, eps):
    check_one_device("xlstm_large_block_step", x, norm_mlstm_weight, *qkvo_weights, *gate_weights, *gate_biases,
                     multihead_norm_weight, out_weight, norm_ffn_weight, *up_weights, down_weight, C, n, m)
    return (x.new_empty(x.shape), *contiguous_like(C, n, m))


@kernel_op("xlstm_large_block_step", fake=_fake, registry=INFERENCE_OP_SPECS)
def xlstm_large_block_step(op, x: torch.Tensor, norm_mlstm_weight: torch.Tensor, qkvo_weights: list[torch.Tensor],
                           gate_weights: list[torch.Tensor], gate_biases: list[torch.Tensor],
                           multihead_norm_weight: torch.Tensor, out_weight: torch.Tensor,
                           norm_ffn_weight: torch.Tensor, up_weights: list[torch.Tensor], down_weight: torch.Tensor,
                           state: MlstmState, gate_soft_cap: float | None = 15.0, norm_eps: float = 1e-6,
                           eps: float = 1e-6) -> tuple[torch.Tensor, MlstmState]:
    """One token per batch row through an xLSTM 7B block without biases (use_bias=False, as the
    checkpoints have it): x + mLSTM(RMSNorm(x)), then + SwiGLU(RMSNorm(x)), the math of
    xLSTMLargeBlock (python_ref/xlstm_large.md).

    x (B, D); norm_mlstm_weight, norm_ffn_weight (D), the RMSNorms' scales; qkvo_weights: the q, k,
    v and output-gate maps as one weight (2 qk_dim + 2 v_dim, D) (weight_mode "fused") or as four
    (weight_mode "single"); gate_weights, gate_biases: the i and f gates' as one (2 NH, D), (2 NH) or
    as two (NH, D), (NH); multihead_norm_weight (v_dim), the multi-head layer norm's scale;
    out_weight (D, v_dim); up_weights: the SwiGLU's gate and up maps as one (2 inner, D) or two
    (inner, D); down_weight (D, inner); state (C (B, NH, DHQK, DHV), n (B, NH, DHQK), m (B, NH)), in
    this library's convention (ops.mlstm_step's). Weights row-major (unit stride along D); every
    tensor in x's dtype, float32 or float64, on the CPU (no CUDA kernel). gate_soft_cap: the i, f
    pre-activations become cap · tanh(x / cap) (None: not capped); norm_eps: the norms' eps; eps:
    the cell normaliser's. No autograd. Returns (the block's output (B, D), the new state)."""
    if not (isinstance(state, (tuple, list)) and len(state) == 3):
        raise TypeError("xlstm_large_block_step: state must be a tuple (C, n, m)")
    y, C, n, m = op(x, norm_mlstm_weight, list(qkvo_weights), list(gate_weights), list(gate_biases),
                    multihead_norm_weight, out_weight, norm_ffn_weight, list(up_weights), down_weight, *state,
                    None if gate_soft_cap is None else float(gate_soft_cap), float(norm_eps), float(eps))
    return y, (C, n, m)


def _head_fake(x, norm_weight, head_weight, norm_eps, logit_soft_cap):
    check_one_device("xlstm_large_head", x, norm_weight, head_weight)
    return x.new_empty(x.shape[0], head_weight.shape[0])


@kernel_op("xlstm_large_head", fake=_head_fake, registry=INFERENCE_OP_SPECS)
def xlstm_large_head(op, x: torch.Tensor, norm_weight: torch.Tensor, head_weight: torch.Tensor,
                     norm_eps: float = 1e-6, logit_soft_cap: float | None = 30.0) -> torch.Tensor:
    """xLSTM 7B's logits after the last block, cap · tanh(z / cap) for z = RMSNorm(x) head_weightᵀ,
    for rows of x: one token per batch row in a decode step (the head streamed once, as
    skinny_linear does, up to 16 rows) or a prompt's positions (a GEMM; the logits capped in place
    on all threads and, when large, allocated on transparent huge pages). x (rows, D); norm_weight
    (D), the output norm's scale; head_weight (vocab_size, D), row-major; every tensor in x's dtype,
    float32 or float64, on the CPU (no CUDA kernel). norm_eps: the norm's eps; logit_soft_cap: None
    leaves the logits uncapped. No autograd. Returns (rows, vocab_size)."""
    return op(x, norm_weight, head_weight, float(norm_eps), None if logit_soft_cap is None else float(logit_soft_cap))
