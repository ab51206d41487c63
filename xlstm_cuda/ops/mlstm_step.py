"""mlstm_step: one mLSTM generation step (csrc/ops/mlstm_step)."""
from __future__ import annotations

import torch

from ._binder import Autograd, check_one_device, contiguous_like, grads_like, kernel_op
from ._states import MlstmState, mlstm_state


def _fake(q, k, v, i, f, C, n, m, eps):
    check_one_device("mlstm_step", q, k, v, i, f, C, n, m)
    B, NH, _ = q.shape
    return (q.new_empty(B, NH, v.shape[-1]), *contiguous_like(C, n, m))


@kernel_op("mlstm_step", fake=_fake, backward_fake=grads_like(*range(4, 12)),
           autograd=Autograd("mlstm_step_backward", differentiable_inputs=8, grad_outputs=4, constants=(8,)))
def mlstm_step(op, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, i: torch.Tensor, f: torch.Tensor,
               state: MlstmState | None = None, eps: float = 1e-6) -> tuple[torch.Tensor, MlstmState]:
    """One mLSTM generation step. q, k (B, NH, DHQK), v (B, NH, DHV), i, f (B, NH) gate
    pre-activations, all one dtype (float32, bfloat16, float16; float64 on the CPU);
    state (C (B, NH, DHQK, DHV), n (B, NH, DHQK), m (B, NH)) in float32 (float64 for float64
    inputs), zeros when None. Returns h (B, NH, DHV) and the new state."""
    state = mlstm_state(state, q, v, "mlstm_step", "state")
    h, C, n, m = op(q, k, v, i, f, *state, float(eps))
    return h, (C, n, m)
