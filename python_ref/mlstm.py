"""mLSTM reference: matrix memory, no memory mixing; step, recurrent, parallel, chunkwise forms.

Shapes (per call): q, k (B, NH, S, DHQK); v (B, NH, S, DHV); gate pre-activations i, f
(B, NH, S). The scale s = DHQK**-0.5 is applied to k. State = (C, n, m) with C
(B, NH, DHQK, DHV), n (B, NH, DHQK), m (B, NH); default all zeros. Everything is computed
in the dtype of the inputs, and autograd flows through everything, m included.

All forms compute the same function (with eps = 0 they agree to round-off). Every form
returns the step form's final state. The chunkwise form, and the parallel form given an
initial state, use the same stabiliser as the step form (the running max), so they agree
with it for any eps; the parallel form without an initial state uses the row max of the
spec and differs from the others by O(eps).
"""

import torch
import torch.nn.functional as F


def _zero_state(q, v):
    B, NH, DHQK = q.shape[0], q.shape[1], q.shape[-1]
    DHV = v.shape[-1]
    return (q.new_zeros(B, NH, DHQK, DHV), q.new_zeros(B, NH, DHQK), q.new_zeros(B, NH))


def _normalise(num, qn, m, eps):
    """h = num / (max(|q·n|, exp(-m)) + eps); num (..., DHV), qn and m (...)."""
    return num / (torch.maximum(qn.abs(), torch.exp(-m)) + eps).unsqueeze(-1)


def mlstm_step(q, k, v, i, f, state=None, eps=1e-6):
    """One recurrent step. q, k (B, NH, DHQK); v (B, NH, DHV); i, f (B, NH)."""
    C, n, m = _zero_state(q, v) if state is None else state
    s = q.shape[-1] ** -0.5
    log_f = F.logsigmoid(f)

    m_new = torch.maximum(log_f + m, i)
    f_gate = torch.exp(log_f + m - m_new)
    i_gate = torch.exp(i - m_new)
    k_s = s * k
    C_new = f_gate[..., None, None] * C + i_gate[..., None, None] * (k_s[..., :, None] * v[..., None, :])
    n_new = f_gate[..., None] * n + i_gate[..., None] * k_s

    num = torch.einsum("bhd,bhdv->bhv", q, C_new)
    qn = (q * n_new).sum(-1)
    return _normalise(num, qn, m_new, eps), (C_new, n_new, m_new)


def mlstm_recurrent(q, k, v, i, f, initial_state=None, eps=1e-6):
    """The step form looped over the sequence."""
    state = _zero_state(q, v) if initial_state is None else initial_state
    hs = []
    for t in range(q.shape[2]):
        h, state = mlstm_step(q[:, :, t], k[:, :, t], v[:, :, t], i[:, :, t], f[:, :, t], state, eps)
        hs.append(h)
    return torch.stack(hs, dim=2), state


def _quadratic(q, k, v, i, log_f, state, eps):
    """Quadratic (attention-like) form over one block of the sequence.

    log D[t, u] = F[t] - F[u] + i[u] for u <= t, with F the cumulative sum of log_f over
    the block. If state = (C0, n0, m0) is given it is a carried term with log-decay
    F[t] + m0, and it enters the same per-row max as the tile. Without a state, the
    stabiliser is the plain row max of the spec.
    """
    L = q.shape[2]
    s = q.shape[-1] ** -0.5
    Fcum = torch.cumsum(log_f, dim=-1)  # (B, NH, L)
    causal = torch.ones(L, L, dtype=torch.bool, device=q.device).tril()
    log_D = Fcum[..., :, None] - Fcum[..., None, :] + i[..., None, :]
    log_D = torch.where(causal, log_D, torch.full_like(log_D, float("-inf")))

    m_row = log_D.amax(dim=-1)  # (B, NH, L)
    if state is not None:
        C0, n0, m0 = state
        log_carry = Fcum + m0[..., None]
        m_row = torch.maximum(m_row, log_carry)

    C_hat = (q @ (s * k).transpose(-1, -2)) * torch.exp(log_D - m_row[..., None])
    num = C_hat @ v
    qn = C_hat.sum(-1)
    if state is not None:
        carry = torch.exp(log_carry - m_row)
        num = num + carry[..., None] * (q @ C0)
        qn = qn + carry * (q @ n0[..., None]).squeeze(-1)
    return _normalise(num, qn, m_row, eps)


def _advance(state, k, v, i, log_f):
    """State after a block of tokens, in closed form; its m is the step form's running max.

    Token u enters with log weight i[u] + sum_{w > u} log_f[w]; the carried state with
    m0 + sum_w log_f[w]. m_new is the max of these, which is the unrolled running max
    m[t] = max(log_f[t] + m[t-1], i[t]).
    """
    C0, n0, m0 = state
    s = k.shape[-1] ** -0.5
    Fcum = torch.cumsum(log_f, dim=-1)
    F_total = Fcum[..., -1]  # (B, NH)
    log_w = F_total[..., None] - Fcum + i  # (B, NH, L)
    log_carry = F_total + m0

    m_new = torch.maximum(log_w.amax(dim=-1), log_carry)
    w = torch.exp(log_w - m_new[..., None])
    carry = torch.exp(log_carry - m_new)
    k_w = (s * k) * w[..., None]  # (B, NH, L, DHQK)
    C_new = carry[..., None, None] * C0 + k_w.transpose(-1, -2) @ v
    n_new = carry[..., None] * n0 + k_w.sum(dim=-2)
    return C_new, n_new, m_new


def mlstm_parallel(q, k, v, i, f, initial_state=None, eps=1e-6):
    """Quadratic form over the whole sequence; final state in closed form."""
    log_f = F.logsigmoid(f)
    h = _quadratic(q, k, v, i, log_f, initial_state, eps)
    state = _zero_state(q, v) if initial_state is None else initial_state
    return h, _advance(state, k, v, i, log_f)


def mlstm_chunkwise(q, k, v, i, f, initial_state=None, eps=1e-6, chunk_size=64):
    """Chunkwise form: quadratic inside chunks of chunk_size, (C, n, m) carried between them."""
    log_f = F.logsigmoid(f)
    state = _zero_state(q, v) if initial_state is None else initial_state
    hs = []
    for start in range(0, q.shape[2], chunk_size):
        c = slice(start, start + chunk_size)
        q_c, k_c, v_c, i_c, lf_c = q[:, :, c], k[:, :, c], v[:, :, c], i[:, :, c], log_f[:, :, c]
        hs.append(_quadratic(q_c, k_c, v_c, i_c, lf_c, state, eps))
        state = _advance(state, k_c, v_c, i_c, lf_c)
    return torch.cat(hs, dim=2), state
