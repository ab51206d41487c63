"""mlstm_chunkwise: the mLSTM over a sequence in chunks (csrc/ops/mlstm_chunkwise)."""
from __future__ import annotations

import torch

from ._binder import Autograd, check_one_device, contiguous_like, grads_like, kernel_op
from ._states import MlstmState, mlstm_state


def _fake(q, k, v, i, f, C, n, m, chunk_size, eps):
    check_one_device("mlstm_chunkwise", q, k, v, i, f, C, n, m)
    B, NH, S, DQK = q.shape
    if S < 1 or chunk_size < 1:
        raise RuntimeError(f"mlstm_chunkwise: S and chunk_size must be >= 1, got S = {S}, chunk_size = {chunk_size}")
    chunks = -(-S // min(chunk_size, S))
    return (q.new_empty(B, NH, S, v.shape[-1]), *contiguous_like(C, n, m),
            C.new_empty(B, NH, chunks, DQK, v.shape[-1]), n.new_empty(B, NH, chunks, DQK),
            m.new_empty(B, NH, S), m.new_empty(B, NH, S))


# The backward reads h, the final state (not m_T) and the per-chunk states and per-step m and q·n.
@kernel_op("mlstm_chunkwise_forward", fake=_fake, backward_fake=grads_like(*range(4, 12)),
           autograd=Autograd("mlstm_chunkwise_backward", differentiable_inputs=8, grad_outputs=4,
                             saved_outputs=(0, 1, 2, 4, 5, 6, 7), constants=(8, 9)))
def mlstm_chunkwise(op, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, i: torch.Tensor, f: torch.Tensor,
                    initial_state: MlstmState | None = None, eps: float = 1e-6,
                    chunk_size: int = 64) -> tuple[torch.Tensor, MlstmState]:
    """The mLSTM over a sequence, chunkwise: q, k (B, NH, S, DHQK), v (B, NH, S, DHV), i, f
    (B, NH, S) gate pre-activations, one dtype; initial_state (C, n, m) float32 (float64 for
    float64 inputs), zeros when None. Returns h (B, NH, S, DHV) and the final state, exactly the
    step form's (so mlstm_step can continue from it). Any S; memory linear in S (chunk-start
    states are kept for the backward pass, not per-step states). Every chunk_size computes the
    same function; the CUDA kernels take chunk_size <= 128."""
    if q.dim() != 4:
        raise RuntimeError(f"mlstm_chunkwise: q must have shape [B, NH, S, DHQK], got {list(q.shape)}")
    initial_state = mlstm_state(initial_state, q, v, "mlstm_chunkwise", "initial_state")
    h, C, n, m, *_ = op(q, k, v, i, f, *initial_state, int(chunk_size), float(eps))
    return h, (C, n, m)
