"""The kernels as differentiable functions, with the signatures of `python_ref`.

Each op is a `torch.ops.<namespace>.*` custom op (C++/CUDA, see csrc/registration.cpp); this module
registers its fake (meta) implementation, so that `torch.compile` traces it, and its autograd
formula, which calls the matching `*_backward` op.
"""
from __future__ import annotations

import torch

from . import _C  # noqa: F401  (registers the xlstm_cuda ops)

MlstmState = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
SlstmState = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _state_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _mlstm_state(state, q: torch.Tensor, v: torch.Tensor, op: str, argument: str) -> MlstmState:
    """The given (C, n, m), or the zero state for q and v's sizes."""
    if state is None:
        B, NH, DQK = q.shape[0], q.shape[1], q.shape[-1]
        sd = _state_dtype(q.dtype)
        return (q.new_zeros(B, NH, DQK, v.shape[-1], dtype=sd), q.new_zeros(B, NH, DQK, dtype=sd),
                q.new_zeros(B, NH, dtype=sd))
    if not (isinstance(state, (tuple, list)) and len(state) == 3):
        raise TypeError(f"{op}: {argument} must be a tuple (C, n, m)")
    return tuple(state)


def _contiguous_like(*tensors: torch.Tensor):
    """Fake outputs shaped and typed like the given tensors, contiguous as the kernels return them
    (torch.empty_like would keep a strided input's strides, which compiled code then asserts)."""
    outputs = tuple(t.new_empty(t.shape) for t in tensors)
    return outputs[0] if len(outputs) == 1 else outputs


def _state_grads(grads, states):
    """Gradients of the returned state, zeros where autograd passes None (the state was unused)."""
    return tuple(g if g is not None else torch.zeros_like(s) for g, s in zip(grads, states))


def _register_input_grads_autograd(ns: str, name: str, backward_op) -> None:
    """Autograd for an op whose backward op takes (dy, *inputs) and returns one gradient per input."""

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    def backward(ctx, dy):
        return backward_op(dy, *ctx.saved_tensors)

    torch.library.register_autograd(f"{ns}::{name}", backward, setup_context=setup_context)


def _check_one_device(op: str, *tensors: torch.Tensor) -> None:
    """The C++ entry points check this too; fake (meta) calls reach only this check."""
    devices = sorted({str(t.device) for t in tensors})
    if len(devices) > 1:
        raise RuntimeError(f"{op}: all tensors must be on one device, got {', '.join(devices)}")


class KernelOps:
    """The public op functions bound to one op namespace: `xlstm_cuda` (the kernels) or
    `xlstm_cuda_sim` (the CUDA kernels run by the host emulation, see xlstm_cuda.sim)."""

    def __init__(self, namespace: str):
        self.namespace = namespace
        self._ops = getattr(torch.ops, namespace)
        for register in (self._register_mlstm_step, self._register_slstm, self._register_mlstm_chunkwise,
                         self._register_causal_conv, self._register_headwise_linear, self._register_output_gate):
            register(namespace)

    def _register_mlstm_step(self, ns: str) -> None:
        @torch.library.register_fake(f"{ns}::mlstm_step")
        def _(q, k, v, i, f, C, n, m, eps):
            _check_one_device("mlstm_step", q, k, v, i, f, C, n, m)
            B, NH, _ = q.shape
            return (q.new_empty(B, NH, v.shape[-1]), *_contiguous_like(C, n, m))

        @torch.library.register_fake(f"{ns}::mlstm_step_backward")
        def _(dh, dC_new, dn_new, dm_new, q, k, v, i, f, C, n, m, eps):
            return _contiguous_like(q, k, v, i, f, C, n, m)

        step_backward = self._ops.mlstm_step_backward

        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(*inputs[:8])
            ctx.eps = inputs[8]

        def backward(ctx, dh, dC, dn, dm):
            q, k, v, i, f, C, n, m = ctx.saved_tensors
            dh = dh if dh is not None else q.new_zeros(*q.shape[:2], v.shape[-1])
            dC, dn, dm = _state_grads((dC, dn, dm), (C, n, m))
            return (*step_backward(dh, dC, dn, dm, q, k, v, i, f, C, n, m, ctx.eps), None)

        torch.library.register_autograd(f"{ns}::mlstm_step", backward, setup_context=setup_context)

    def _register_slstm(self, ns: str) -> None:
        @torch.library.register_fake(f"{ns}::slstm_forward")
        def _(x, R, b, initial, save_trace=True):
            _check_one_device("slstm", x, R, b, initial)
            B, S, NH, _, DH = x.shape
            slots = S + 1 if save_trace else 2
            return x.new_empty(B, S, NH, DH), _contiguous_like(initial), initial.new_empty(9, B, slots, NH, DH)

        @torch.library.register_fake(f"{ns}::slstm_backward")
        def _(dh, d_last, x, R, b, trace):
            return _contiguous_like(x, R, b, d_last)

        slstm_backward = self._ops.slstm_backward

        def setup_context(ctx, inputs, output):
            x, R, b = inputs[:3]
            ctx.save_for_backward(x, R, b, output[2])
            ctx.mark_non_differentiable(output[2])
            ctx.set_materialize_grads(False)  # else autograd fills a zero gradient as large as the trace

        def backward(ctx, dh, d_last, _):
            x, R, b, trace = ctx.saved_tensors
            B, S, NH, _, DH = x.shape
            dh = dh if dh is not None else x.new_zeros(B, S, NH, DH)
            d_last = d_last if d_last is not None else trace.new_zeros(4, B, NH, DH)
            return slstm_backward(dh, d_last, x, R, b, trace)

        torch.library.register_autograd(f"{ns}::slstm_forward", backward, setup_context=setup_context)

    def _register_mlstm_chunkwise(self, ns: str) -> None:
        @torch.library.register_fake(f"{ns}::mlstm_chunkwise_forward")
        def _(q, k, v, i, f, C, n, m, chunk_size, eps):
            _check_one_device("mlstm_chunkwise", q, k, v, i, f, C, n, m)
            B, NH, S, DQK = q.shape
            if S < 1 or chunk_size < 1:
                raise RuntimeError(f"mlstm_chunkwise: S and chunk_size must be >= 1, got S = {S}, "
                                   f"chunk_size = {chunk_size}")
            chunks = -(-S // min(chunk_size, S))
            return (q.new_empty(B, NH, S, v.shape[-1]), *_contiguous_like(C, n, m),
                    C.new_empty(B, NH, chunks, DQK, v.shape[-1]), n.new_empty(B, NH, chunks, DQK),
                    m.new_empty(B, NH, S), m.new_empty(B, NH, S))

        @torch.library.register_fake(f"{ns}::mlstm_chunkwise_backward")
        def _(dh, dC_T, dn_T, dm_T, q, k, v, i, f, C, n, m, h, C_T, n_T, C_starts, n_starts, m_all, qn_all,
              chunk_size, eps):
            return _contiguous_like(q, k, v, i, f, C, n, m)

        chunkwise_backward = self._ops.mlstm_chunkwise_backward

        def setup_context(ctx, inputs, output):
            h, C_T, n_T, m_T, C_starts, n_starts, m_all, qn_all = output
            ctx.save_for_backward(*inputs[:8], h, C_T, n_T, C_starts, n_starts, m_all, qn_all)
            ctx.chunk_size, ctx.eps = inputs[8], inputs[9]
            ctx.mark_non_differentiable(C_starts, n_starts, m_all, qn_all)
            ctx.set_materialize_grads(False)  # the saved per-chunk states get no gradient

        def backward(ctx, dh, dC, dn, dm, *_):
            q, k, v, i, f, C, n, m, h, C_T, n_T, C_starts, n_starts, m_all, qn_all = ctx.saved_tensors
            dh = dh if dh is not None else torch.zeros_like(h)
            dC, dn, dm = _state_grads((dC, dn, dm), (C, n, m))
            grads = chunkwise_backward(dh, dC, dn, dm, q, k, v, i, f, C, n, m, h, C_T, n_T, C_starts, n_starts, m_all,
                                       qn_all, ctx.chunk_size, ctx.eps)
            return (*grads, None, None)

        torch.library.register_autograd(f"{ns}::mlstm_chunkwise_forward", backward, setup_context=setup_context)

    def _register_causal_conv(self, ns: str) -> None:
        @torch.library.register_fake(f"{ns}::causal_conv1d_silu")
        def _(x, weight, bias, initial):
            _check_one_device("causal_conv1d_silu", x, weight, bias, initial)
            return x.new_empty(x.shape)

        @torch.library.register_fake(f"{ns}::causal_conv1d_silu_backward")
        def _(dy, x, weight, bias, initial):
            return x.new_empty(x.shape), weight.new_empty(weight.shape), bias.new_empty(bias.shape), initial.new_empty(
                initial.shape)

        _register_input_grads_autograd(ns, "causal_conv1d_silu", self._ops.causal_conv1d_silu_backward)

    def _register_headwise_linear(self, ns: str) -> None:
        @torch.library.register_fake(f"{ns}::headwise_linear")
        def _(x, weight, heads=1):
            _check_one_device("headwise_linear", x, weight)
            B, S, _ = x.shape
            return x.new_empty(B, heads, S, weight.shape[0] * weight.shape[1] // heads)

        @torch.library.register_fake(f"{ns}::headwise_linear_backward")
        def _(dy, x, weight, heads=1):
            return x.new_empty(x.shape), weight.new_empty(weight.shape)

        linear_backward = self._ops.headwise_linear_backward

        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(*inputs[:2])
            ctx.heads = inputs[2]

        def backward(ctx, dy):
            return (*linear_backward(dy, *ctx.saved_tensors, ctx.heads), None)

        torch.library.register_autograd(f"{ns}::headwise_linear", backward, setup_context=setup_context)

    def _register_output_gate(self, ns: str) -> None:
        @torch.library.register_fake(f"{ns}::mlstm_output_gate")
        def _(h, x_conv, z, norm_weight, skip):
            _check_one_device("mlstm_output_gate", h, x_conv, z, norm_weight, skip)
            return h.new_empty(h.shape)

        @torch.library.register_fake(f"{ns}::mlstm_output_gate_backward")
        def _(dy, h, x_conv, z, norm_weight, skip):
            return (h.new_empty(h.shape), h.new_empty(h.shape), h.new_empty(h.shape), norm_weight.new_empty(
                norm_weight.shape), skip.new_empty(skip.shape))

        _register_input_grads_autograd(ns, "mlstm_output_gate", self._ops.mlstm_output_gate_backward)

    def mlstm_step(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, i: torch.Tensor, f: torch.Tensor,
                   state: MlstmState | None = None, eps: float = 1e-6) -> tuple[torch.Tensor, MlstmState]:
        """One mLSTM generation step. q, k (B, NH, DHQK), v (B, NH, DHV), i, f (B, NH) gate
        pre-activations, all one dtype (float32, bfloat16, float16; float64 on the CPU);
        state (C (B, NH, DHQK, DHV), n (B, NH, DHQK), m (B, NH)) in float32 (float64 for float64
        inputs), zeros when None. Returns h (B, NH, DHV) and the new state."""
        state = _mlstm_state(state, q, v, "mlstm_step", "state")
        h, C, n, m = self._ops.mlstm_step(q, k, v, i, f, *state, float(eps))
        return h, (C, n, m)

    def slstm(self, x_gates: torch.Tensor, R: torch.Tensor, b: torch.Tensor,
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
        state_dtype = _state_dtype(x_gates.dtype)
        if initial_state is None:
            initial = x_gates.new_zeros(4, B, NH, DH, dtype=state_dtype)
        else:
            if not (isinstance(initial_state, (tuple, list)) and len(initial_state) == 4):
                raise TypeError("slstm: initial_state must be a tuple (h, c, n, m)")
            shapes = {tuple(s.shape) for s in initial_state}
            if shapes != {(B, NH, DH)}:
                raise RuntimeError(f"slstm: initial state tensors must each have shape {[B, NH, DH]}, got "
                                   f"{[list(s.shape) for s in initial_state]}")
            h0, c0, n0, m0 = initial_state
            initial = torch.stack((h0, c0, n0, m0.detach()))
        # The per-step trace only when a backward pass may follow: inference needs O(1) memory in S.
        save_trace = torch.is_grad_enabled() and any(t.requires_grad for t in (x_gates, R, b, initial))
        h, last, _ = self._ops.slstm_forward(x_gates, R, b, initial, save_trace)
        return h, tuple(last.unbind(0))


    def mlstm_chunkwise(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, i: torch.Tensor, f: torch.Tensor,
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
        initial_state = _mlstm_state(initial_state, q, v, "mlstm_chunkwise", "initial_state")
        h, C, n, m, *_ = self._ops.mlstm_chunkwise_forward(q, k, v, i, f, *initial_state, int(chunk_size), float(eps))
        return h, (C, n, m)

    def causal_conv1d_silu(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                           initial: torch.Tensor | None = None) -> torch.Tensor:
        """SiLU of a causal depthwise convolution over time, fused: x (B, S, D) (float32, bfloat16,
        float16; float64 on the CPU), weight (D, K) and bias (D) in float32 or x's dtype, initial
        (B, K - 1, D) the inputs before x (zeros when None). y[:, t] = silu(bias + Σ_k weight[:, k]
        xp[:, t + k]) with xp = [initial | x]. The CUDA kernels take K <= 8."""
        if x.dim() != 3:
            raise RuntimeError(f"causal_conv1d_silu: x must have shape [B, S, D], got {list(x.shape)}")
        if weight.dim() != 2 or weight.shape[1] < 1:
            raise RuntimeError(f"causal_conv1d_silu: weight must have shape [D, K] with K >= 1, got "
                               f"{list(weight.shape)}")
        if initial is None:
            initial = x.new_zeros(x.shape[0], weight.shape[1] - 1, x.shape[2])
        return self._ops.causal_conv1d_silu(x, weight, bias, initial)

    def mlstm_output_gate(self, h: torch.Tensor, x_conv: torch.Tensor, z: torch.Tensor, norm_weight: torch.Tensor,
                          skip: torch.Tensor) -> torch.Tensor:
        """The mLSTM layer's output stage, fused: (norm_weight * h + skip * x_conv) * silu(z). h, x_conv,
        z (..., D), one dtype (float32, bfloat16, float16; float64 on the CPU); norm_weight and skip (D)
        in float32 or that dtype. Returns (..., D)."""
        if h.dim() < 1 or x_conv.shape != h.shape or z.shape != h.shape:
            raise RuntimeError(f"mlstm_output_gate: h, x_conv and z must have one shape [..., D], got "
                               f"{list(h.shape)}, {list(x_conv.shape)}, {list(z.shape)}")
        rows = [t.reshape(-1, t.shape[-1]) for t in (h, x_conv, z)]
        return self._ops.mlstm_output_gate(*rows, norm_weight, skip).reshape(h.shape)

    def headwise_linear(self, x: torch.Tensor, weight: torch.Tensor, heads: int = 1) -> torch.Tensor:
        """Block-diagonal linear map: x (..., G * I) (float32, bfloat16, float16; float64 on the
        CPU), weight (G, O, I) in float32 or x's dtype; block g of the output is weight[g] times
        block g of the input. Returns (..., G * O) in x's dtype; with heads > 1, x is (B, S, G * I)
        and the output comes head-major, (B, heads, S, G * O / heads), as the mLSTM cell reads it."""
        if weight.dim() != 3:
            raise RuntimeError(f"headwise_linear: weight must have shape [G, O, I], got {list(weight.shape)}")
        if heads != 1:
            return self._ops.headwise_linear(x, weight, heads)
        if x.dim() < 1:
            raise RuntimeError("headwise_linear: x must have shape [..., G * I], got a scalar")
        y = self._ops.headwise_linear(x.reshape(1, -1, x.shape[-1]), weight)
        return y.reshape(*x.shape[:-1], y.shape[-1])


_kernels = KernelOps("xlstm_cuda")
mlstm_step = _kernels.mlstm_step
mlstm_chunkwise = _kernels.mlstm_chunkwise
slstm = _kernels.slstm
causal_conv1d_silu = _kernels.causal_conv1d_silu
headwise_linear = _kernels.headwise_linear
mlstm_output_gate = _kernels.mlstm_output_gate
