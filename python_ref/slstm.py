"""sLSTM reference: scalar memory, memory mixing inside a head, exponential input gate."""

import torch
import torch.nn.functional as F


def _min1(x):
    """min(1, x), differentiated on the x side where x == 1.

    The stabiliser makes one of exp(raw_i - m), exp(log f + m_prev - m) exactly 1 at every step
    (the side that attains the max). There the gate is still a function of its pre-activation
    (m is a constant), so the gradient must pass; torch.clamp(max=1) would zero it at x == 1.
    The clamp only changes values where n[t-1] == 0.
    """
    return torch.where(x > 1, torch.ones_like(x), x)


def slstm(x_gates, R, b, initial_state=None):
    """Run the sLSTM cell over a sequence, one time step at a time.

    x_gates: (B, S, NH, 4, DH) gate pre-activations from the input, gate order i, f, z, o.
    R:       (NH, DH, 4, DH) recurrent weights, indexed [head, input unit, gate, output unit].
    b:       (NH, 4, DH) biases.
    initial_state: optional tuple (h, c, n, m), each (B, NH, DH); default all zeros.

    Returns h (B, S, NH, DH) and the final state (h, c, n, m), each (B, NH, DH), in the
    dtype of the inputs.

    The stabiliser m is a constant for differentiation: it is computed from detached
    values, and the incoming m of initial_state gets no gradient either. Consequently the
    gradient reaching the returned c and n is that of the unstabilised c·exp(m), n·exp(m)
    scaled by the constant exp(-m).
    """
    B, S, NH, _, DH = x_gates.shape
    if initial_state is None:
        zeros = x_gates.new_zeros(B, NH, DH)
        initial_state = (zeros, zeros, zeros, zeros)
    h, c, n, m = initial_state
    m = m.detach()

    hs = []
    for t in range(S):
        # raw_g[t] = Wx_g[t] + sum_k h[t-1][k] R[k, g, j] + b_g   (per head)
        raw = x_gates[:, t] + torch.einsum("bhk,hkgj->bhgj", h, R) + b
        raw_i, raw_f, raw_z, raw_o = raw.unbind(dim=-2)
        log_f = F.logsigmoid(raw_f)

        with torch.no_grad():
            m_new = torch.where(
                n == 0,
                raw_i,
                torch.maximum(raw_i, log_f + m),
            )

        i_gate = _min1(torch.exp(raw_i - m_new))
        f_gate = _min1(torch.exp(log_f + m - m_new))
        c = f_gate * c + i_gate * torch.tanh(raw_z)
        n = f_gate * n + i_gate
        h = torch.sigmoid(raw_o) * c / n
        m = m_new
        hs.append(h)

    return torch.stack(hs, dim=1), (h, c, n, m)
