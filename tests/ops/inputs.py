"""Valid seeded inputs for each op, shared by its numeric tests and its contract entry (contracts.py)."""
import torch

from conftest import randn


def state_dtype(dtype):
    """The kernels keep states in float32, float64 for float64 inputs."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def step_inputs(gen, B, NH, DQK, DV, dtype, device, with_state):
    """mlstm_step's q, k, v, i, f and (C, n, m) or None."""
    q, k = randn(gen, B, NH, DQK), randn(gen, B, NH, DQK)
    v = randn(gen, B, NH, DV)
    i, f = randn(gen, B, NH, scale=2.0), randn(gen, B, NH, scale=2.0, shift=2.0)
    inputs = [t.to(device=device, dtype=dtype) for t in (q, k, v, i, f)]
    state = None
    if with_state:
        state = (randn(gen, B, NH, DQK, DV), randn(gen, B, NH, DQK), randn(gen, B, NH, scale=2.0))
        state = tuple(t.to(device=device, dtype=state_dtype(dtype)) for t in state)
    return inputs, state


def chunkwise_inputs(gen, B, NH, S, DQK, DV, dtype, with_state, device="cpu"):
    """mlstm_chunkwise's q, k, v, i, f and (C, n, m) or None."""
    q, k = randn(gen, B, NH, S, DQK, dtype=dtype), randn(gen, B, NH, S, DQK, dtype=dtype)
    v = randn(gen, B, NH, S, DV, dtype=dtype)
    i, f = randn(gen, B, NH, S, scale=2.0, dtype=dtype), randn(gen, B, NH, S, scale=2.0, shift=2.0, dtype=dtype)
    state = None
    if with_state:
        sd = state_dtype(dtype)
        state = (randn(gen, B, NH, DQK, DV, dtype=sd), randn(gen, B, NH, DQK, dtype=sd), randn(gen, B, NH, dtype=sd))
    return [t.to(device) for t in (q, k, v, i, f)], state and tuple(t.to(device) for t in state)


def slstm_inputs(gen, B, S, NH, DH, dtype, device, with_state, weight_dtype=None):
    """slstm's x_gates, R, b and (h, c, n, m) or None; n > 0 as the recurrence keeps it."""
    weight_dtype = weight_dtype or dtype
    x = randn(gen, B, S, NH, 4, DH, scale=2.0, dtype=dtype, device=device)
    R = randn(gen, NH, DH, 4, DH, scale=DH ** -0.5, dtype=weight_dtype, device=device)
    b = randn(gen, NH, 4, DH, dtype=weight_dtype, device=device)
    state = None
    if with_state:
        sd = state_dtype(dtype)
        h0, c0, m0 = (randn(gen, B, NH, DH, dtype=sd, device=device) for _ in range(3))
        n0 = randn(gen, B, NH, DH, dtype=sd, device=device).abs() + 0.5
        state = (h0, c0, n0, m0)
    return x, R, b, state


def conv_inputs(gen, B, S, D, K, dtype, device, with_initial, weight_dtype=None):
    """causal_conv1d_silu's x, weight, bias and initial or None."""
    x = randn(gen, B, S, D, scale=2.0, dtype=dtype, device=device)
    weight = randn(gen, D, K, scale=K ** -0.5, dtype=weight_dtype or dtype, device=device)
    bias = randn(gen, D, scale=0.5, dtype=weight_dtype or dtype, device=device)
    initial = randn(gen, B, K - 1, D, dtype=dtype, device=device) if with_initial else None
    return x, weight, bias, initial


def headwise_inputs(gen, lead, G, O, I, dtype, device, weight_dtype=None):
    """headwise_linear's x (*lead, G I) and weight (G, O, I)."""
    x = randn(gen, *lead, G * I, dtype=dtype, device=device)
    weight = randn(gen, G, O, I, scale=I ** -0.5, dtype=weight_dtype or dtype, device=device)
    return x, weight


def gate_inputs(gen, B, S, NH, DH, dtype, device, weight_dtype=None, head_major=True):
    """mlstm_output_gate's h (B, S, NH, DH), x_conv, z (B, S, NH DH), norm_weight, skip; h is the
    transposed view of head-major (B, NH, S, DH) storage, as the layer passes the cell's output,
    unless head_major is False."""
    D = NH * DH
    h = randn(gen, B, NH, S, DH, scale=2.0, shift=0.5, dtype=dtype, device=device).transpose(1, 2)
    if not head_major:
        h = h.contiguous()
    x_conv, z = (randn(gen, B, S, D, scale=2.0, dtype=dtype, device=device) for _ in range(2))
    w, s = (randn(gen, D, shift=1.0, dtype=weight_dtype or dtype, device=device) for _ in range(2))
    return h, x_conv, z, w, s
