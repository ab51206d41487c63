"""slstm: the fused sLSTM over a sequence (csrc/ops/slstm)."""
from __future__ import annotations

import torch

from ._binder import Autograd, check_one_device, contiguous_like, kernel_op
from ._states import SlstmState, state_dtype

TRACE_PLANES = 9  # per step: h, c, n, m and the gate activations the backward reads (csrc/ops/slstm/math.h)


def _fake(x, R, b, initial, save_trace=True):
    check_one_device("slstm", x, R, b, initial)
    B, S, NH, _, DH = x.shape
    slots = S + 1 if save_trace else 2
    return x.new_empty(B, S, NH, DH), contiguous_like(initial), initial.new_empty(TRACE_PLANES, B, slots, NH, DH)


def _backward_fake(dh, d_last, x, R, b, trace, needs):
    grads = tuple(contiguous_like(t) if need else t.new_empty(0) for t, need in zip((x, R, b), needs))
    return (*grads, contiguous_like(d_last))


# The backward reads the trace (output 2) instead of the initial state, and skips dR and db where R
# and b need no gradient (a frozen recurrence: dR is a product as large as the forward's).
@kernel_op("slstm_forward", fake=_fake, backward_fake=_backward_fake,
           autograd=Autograd("slstm_backward", differentiable_inputs=4, grad_outputs=2, saved_inputs=(0, 1, 2),
                             saved_outputs=(2,), input_mask=True))
def slstm(op, x_gates: torch.Tensor, R: torch.Tensor, b: torch.Tensor,
          initial_state: SlstmState | None = None) -> tuple[torch.Tensor, SlstmState]:
    """The sLSTM over a sequence, fused: the time loop runs inside one kernel.
    x_gates (B, S, NH, 4, DH) gate pre-activations from the input (gates i, f, z, o; float32,
    bfloat16, float16; float64 on the CPU); R (NH, DH, 4, DH) [head, input unit, gate, output
    unit] and b (NH, 4, DH) in float32 or the dtype of x_gates; initial_state (h, c, n, m), each
    (B, NH, DH) float32 (float64 for float64 inputs), zeros when None. Returns h (B, S, NH, DH)
    in the dtype of x_gates and the final state. Gradients reach x_gates, R, b and the initial
    h, c, n; the stabiliser m is a constant (see the spec)."""
    if x_gates.dim() != 5:
        raise RuntimeError(f"slstm: x_gates must have shape [B, S, NH, 4, DH], got {list(x_gates.shape)}")
    B, _, NH, _, DH = x_gates.shape
    if initial_state is None:
        initial = x_gates.new_zeros(4, B, NH, DH, dtype=state_dtype(x_gates.dtype))
    else:
        if not (isinstance(initial_state, (tuple, list)) and len(initial_state) == 4):
            raise TypeError("slstm: initial_state must be a tuple (h, c, n, m)")
        shapes = {tuple(s.shape) for s in initial_state}
        if shapes != {(B, NH, DH)}:
            raise RuntimeError(f"slstm: initial_state tensors must each have shape {[B, NH, DH]}, got "
                               f"{[list(s.shape) for s in initial_state]}")
        h0, c0, n0, m0 = initial_state
        initial = torch.stack((h0, c0, n0, m0.detach()))
    # The per-step trace only when a backward pass may follow: inference needs O(1) memory in S.
    save_trace = torch.is_grad_enabled() and any(t.requires_grad for t in (x_gates, R, b, initial))
    h, last, _ = op(x_gates, R, b, initial, save_trace)
    return h, tuple(last.unbind(0))
