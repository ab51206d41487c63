"""Tests of the pure-PyTorch reference (python_ref): gradients, agreement of forms, extremes."""

import math

import pytest
import torch

from conftest import generator as _gen
from conftest import randn, rel_err as _rel
from xlstm_cuda.reference import mlstm_chunkwise, mlstm_parallel, mlstm_recurrent, mlstm_step, slstm

F64 = torch.float64


def _randn(g, *shape, dtype=F64, scale=1.0, shift=0.0):
    return randn(g, *shape, dtype=dtype, scale=scale, shift=shift)


def _assert_rel(a, b, tol, what=""):
    assert a.shape == b.shape, what
    err = _rel(a, b)
    assert err < tol, f"{what}: relative error {err:.3e} >= {tol:.1e}"


# ----------------------------------------------------------------------------------------------
# sLSTM
# ----------------------------------------------------------------------------------------------


def _slstm_inputs(g, B, S, NH, DH, dtype=F64, with_state=False):
    x = _randn(g, B, S, NH, 4, DH, dtype=dtype)
    R = _randn(g, NH, DH, 4, DH, dtype=dtype, scale=0.5)
    b = _randn(g, NH, 4, DH, dtype=dtype, scale=0.5)
    state = None
    if with_state:
        h0 = _randn(g, B, NH, DH, dtype=dtype, scale=0.5)
        c0 = _randn(g, B, NH, DH, dtype=dtype)
        n0 = torch.rand(B, NH, DH, generator=g, dtype=dtype) + 0.5  # n > 0 in any real run
        m0 = _randn(g, B, NH, DH, dtype=dtype)
        state = (h0, c0, n0, m0)
    return x, R, b, state


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def test_slstm_hand_checked_first_step_zero_state():
    g = _gen("slstm_hand0")
    x, R, b, _ = _slstm_inputs(g, 2, 1, 2, 3)
    h, (hT, c, n, m) = slstm(x, R, b)
    raw = x[:, 0] + b  # h[-1] = 0, so R does not contribute
    # n[-1] == 0: m = raw_i, i' = 1, c = tanh(z), n = 1, h = sigmoid(o) tanh(z)
    torch.testing.assert_close(h[:, 0], torch.sigmoid(raw[:, :, 3]) * torch.tanh(raw[:, :, 2]), rtol=1e-14, atol=0)
    torch.testing.assert_close(c, torch.tanh(raw[:, :, 2]), rtol=1e-14, atol=0)
    torch.testing.assert_close(n, torch.ones_like(n), rtol=0, atol=0)
    torch.testing.assert_close(m, raw[:, :, 0], rtol=0, atol=0)
    torch.testing.assert_close(hT, h[:, -1], rtol=0, atol=0)


def test_slstm_hand_checked_first_step_with_state():
    g = _gen("slstm_hand1")
    B, NH, DH = 1, 2, 3
    x, R, b, (h0, c0, n0, m0) = _slstm_inputs(g, B, 1, NH, DH, with_state=True)
    h, (_, c, n, m) = slstm(x, R, b, (h0, c0, n0, m0))
    for hd in range(NH):
        for j in range(DH):
            ri, rf, rz, ro = (
                x[0, 0, hd, gate, j].item()
                + sum(h0[0, hd, kk].item() * R[hd, kk, gate, j].item() for kk in range(DH))
                + b[hd, gate, j].item()
                for gate in range(4)
            )
            log_f = math.log(_sigmoid(rf))
            m_exp = max(ri, log_f + m0[0, hd, j].item())
            i_p = math.exp(ri - m_exp)
            f_p = math.exp(log_f + m0[0, hd, j].item() - m_exp)
            c_exp = f_p * c0[0, hd, j].item() + i_p * math.tanh(rz)
            n_exp = f_p * n0[0, hd, j].item() + i_p
            h_exp = _sigmoid(ro) * c_exp / n_exp
            assert h[0, 0, hd, j].item() == pytest.approx(h_exp, rel=1e-12)
            assert c[0, hd, j].item() == pytest.approx(c_exp, rel=1e-12)
            assert n[0, hd, j].item() == pytest.approx(n_exp, rel=1e-12)
            assert m[0, hd, j].item() == pytest.approx(m_exp, rel=1e-12)


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("S,split", [(9, 4), (2, 1), (17, 8)])
def test_slstm_two_halves_equal_full_run(S, split, with_state):
    g = _gen("slstm_halves", S, split, with_state)
    x, R, b, state = _slstm_inputs(g, 2, S, 3, 5, with_state=with_state)
    h_full, st_full = slstm(x, R, b, state)
    h1, st1 = slstm(x[:, :split], R, b, state)
    h2, st2 = slstm(x[:, split:], R, b, st1)
    torch.testing.assert_close(torch.cat([h1, h2], dim=1), h_full, rtol=1e-14, atol=0)
    for a, e in zip(st2, st_full):
        torch.testing.assert_close(a, e, rtol=1e-14, atol=0)


@pytest.mark.parametrize("regime", ["mixed", "i_dominates", "f_dominates"])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("B,S,NH,DH", [(1, 1, 1, 3), (2, 4, 2, 3), (1, 5, 1, 5)])
def test_slstm_gradcheck(B, S, NH, DH, with_state, regime):
    g = _gen("slstm_grad", B, S, NH, DH, with_state, regime)
    x, R, b, state = _slstm_inputs(g, B, S, NH, DH, with_state=with_state)
    # Shift the i / f pre-activations so that one side of the stabiliser max wins at every
    # step: there the winning gate is exactly 1 and its gradient must still pass.
    shift = {"mixed": (0.0, 0.0), "i_dominates": (4.0, 0.0), "f_dominates": (-4.0, 4.0)}[regime]
    x = x + torch.tensor([shift[0], shift[1], 0.0, 0.0], dtype=F64)[:, None]
    inputs = [x, R, b]
    m0 = None
    if with_state:
        h0, c0, n0, m0 = state
        inputs += [h0, c0, n0]  # m0 gets no gradient path by contract
    inputs = [t.clone().requires_grad_() for t in inputs]

    def fn(*args):
        st = (*args[3:6], m0) if with_state else None
        h, (hT, c, n, m) = slstm(args[0], args[1], args[2], st)
        assert not m.requires_grad
        # c and n are stabilised by the constant exp(-m): their true-function counterparts are
        # c·exp(m) and n·exp(m), and those are what finite differences can check.
        return h, hT, c * torch.exp(m), n * torch.exp(m)

    assert torch.autograd.gradcheck(fn, inputs)


def test_slstm_m_gets_no_gradient():
    g = _gen("slstm_m_nograd")
    x, R, b, (h0, c0, n0, m0) = _slstm_inputs(g, 2, 3, 2, 3, with_state=True)
    m0 = m0.clone().requires_grad_()
    x = x.clone().requires_grad_()
    h, (_, _, _, m) = slstm(x, R, b, (h0, c0, n0, m0))
    assert not m.requires_grad
    h.sum().backward()
    assert m0.grad is None
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("pattern", ["random_sign", "all_pos", "all_neg"])
def test_slstm_extreme_gates_finite(pattern, dtype):
    g = _gen("slstm_extreme", pattern, dtype)
    B, S, NH, DH = 2, 257, 2, 3
    if pattern == "random_sign":
        x = 50.0 * torch.sign(_randn(g, B, S, NH, 4, DH))
    else:
        x = torch.full((B, S, NH, 4, DH), 50.0 if pattern == "all_pos" else -50.0, dtype=F64)
    R = _randn(g, NH, DH, 4, DH, scale=0.5)
    b = _randn(g, NH, 4, DH, scale=0.5)
    h, state = slstm(x.to(dtype), R.to(dtype), b.to(dtype))
    assert h.dtype == dtype and all(s.dtype == dtype for s in state)
    assert torch.isfinite(h).all()
    for s in state:
        assert torch.isfinite(s).all()


# ----------------------------------------------------------------------------------------------
# mLSTM
# ----------------------------------------------------------------------------------------------


def _mlstm_inputs(g, B, NH, S, DHQK, DHV, dtype=F64, with_state=False, i_shift=0.0, f_shift=1.0):
    q = _randn(g, B, NH, S, DHQK, dtype=dtype)
    k = _randn(g, B, NH, S, DHQK, dtype=dtype)
    v = _randn(g, B, NH, S, DHV, dtype=dtype)
    i = _randn(g, B, NH, S, dtype=dtype, shift=i_shift)
    f = _randn(g, B, NH, S, dtype=dtype, scale=2.0, shift=f_shift)
    state = None
    if with_state:
        C0 = _randn(g, B, NH, DHQK, DHV, dtype=dtype)
        n0 = _randn(g, B, NH, DHQK, dtype=dtype)
        m0 = _randn(g, B, NH, dtype=dtype)
        state = (C0, n0, m0)
    return (q, k, v, i, f), state


def _step_loop(q, k, v, i, f, state, eps):
    hs = []
    for t in range(q.shape[2]):
        h, state = mlstm_step(q[:, :, t], k[:, :, t], v[:, :, t], i[:, :, t], f[:, :, t], state, eps)
        hs.append(h)
    return torch.stack(hs, dim=2), state


def _single_step(q, k, v, i, f, state, eps):
    h, st = mlstm_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], i[:, :, 0], f[:, :, 0], state, eps)
    return h[:, :, None], st


MLSTM_FORMS = {
    "step": _single_step,
    "recurrent": mlstm_recurrent,
    "parallel": mlstm_parallel,
    "chunkwise2": lambda *a, **kw: mlstm_chunkwise(*a, chunk_size=2, **kw),
    "chunkwise3": lambda *a, **kw: mlstm_chunkwise(*a, chunk_size=3, **kw),
}


@pytest.mark.parametrize("regime", ["default", "exp_neg_m_branch"])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("form", list(MLSTM_FORMS))
def test_mlstm_gradcheck(form, with_state, regime):
    g = _gen("mlstm_grad", form, with_state, regime)
    # "exp_neg_m_branch": negative input gates and a large eps, so max(|q·n|, exp(-m)) often
    # takes the exp(-m) side and the eps·exp(m) dependence of h on m is visible.
    i_shift, eps = (0.0, 1e-6) if regime == "default" else (-3.0, 0.3)
    S = 1 if form == "step" else 5
    B, NH, DHQK, DHV = 2, 2, 3, 4
    (q, k, v, i, f), state = _mlstm_inputs(g, B, NH, S, DHQK, DHV, with_state=with_state, i_shift=i_shift)
    inputs = [q, k, v, i, f] + (list(state) if with_state else [])
    inputs = [t.clone().requires_grad_() for t in inputs]
    fn_form = MLSTM_FORMS[form]

    def fn(*args):
        st = tuple(args[5:]) if with_state else None
        h, (C, n, m) = fn_form(*args[:5], st, eps=eps)
        return h, C, n, m

    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("NH", [1, 3])
@pytest.mark.parametrize("DHQK,DHV", [(16, 32), (8, 8)])
@pytest.mark.parametrize("S", [1, 7, 64, 65, 129])
def test_mlstm_forms_agree_eps0(S, DHQK, DHV, NH, with_state):
    g = _gen("mlstm_agree", S, DHQK, DHV, NH, with_state)
    args, state = _mlstm_inputs(g, 2, NH, S, DHQK, DHV, with_state=with_state)
    h_ref, st_ref = mlstm_recurrent(*args, state, eps=0.0)
    results = {"parallel": mlstm_parallel(*args, state, eps=0.0)}
    for L in (16, 64):
        results[f"chunkwise{L}"] = mlstm_chunkwise(*args, state, eps=0.0, chunk_size=L)
    for name, (h, st) in results.items():
        _assert_rel(h, h_ref, 1e-10, f"{name} h")
        for label, a, e in zip("Cnm", st, st_ref):
            _assert_rel(a, e, 1e-10, f"{name} {label}")


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("S,L", [(1, 4), (1, 64), (2, 3), (11, 4), (13, 5), (7, 1), (6, 6), (9, 100)])
def test_mlstm_chunkwise_ragged_matches_recurrent_default_eps(S, L, with_state):
    # The chunkwise stabiliser (max of intra-chunk row max and carried decay + m_prev) equals the
    # step form's running max, so the two agree to round-off even with eps > 0.
    g = _gen("mlstm_ragged", S, L, with_state)
    args, state = _mlstm_inputs(g, 2, 3, S, 5, 7, with_state=with_state)
    h_ref, st_ref = mlstm_recurrent(*args, state)
    h, st = mlstm_chunkwise(*args, state, chunk_size=L)
    _assert_rel(h, h_ref, 1e-12, "h")
    for label, a, e in zip("Cnm", st, st_ref):
        _assert_rel(a, e, 1e-12, label)


def test_mlstm_parallel_without_state_differs_only_by_eps():
    g = _gen("mlstm_parallel_eps")
    args, _ = _mlstm_inputs(g, 2, 3, 33, 8, 8)
    h_ref, _ = mlstm_recurrent(*args)
    h, _ = mlstm_parallel(*args)
    assert _rel(h, h_ref) < 1e-5  # row max vs running max: O(eps) apart


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("S", [1, 7, 20])
def test_mlstm_step_by_step_equals_recurrent(S, with_state):
    g = _gen("mlstm_steps", S, with_state)
    args, state = _mlstm_inputs(g, 2, 3, S, 5, 6, with_state=with_state)
    h_ref, st_ref = mlstm_recurrent(*args, state)
    h, st = _step_loop(*args, state, 1e-6)
    torch.testing.assert_close(h, h_ref, rtol=1e-14, atol=0)
    for a, e in zip(st, st_ref):
        torch.testing.assert_close(a, e, rtol=1e-14, atol=0)


@pytest.mark.parametrize("prefill_form", ["chunkwise", "parallel"])
@pytest.mark.parametrize("prefill", [1, 10, 37])
def test_mlstm_prefill_hands_over_to_step(prefill, prefill_form):
    g = _gen("mlstm_prefill", prefill, prefill_form)
    S = prefill + 6
    args, state = _mlstm_inputs(g, 2, 2, S, 8, 12, with_state=True)
    h_ref, st_ref = mlstm_recurrent(*args, state)
    head = [t[:, :, :prefill] for t in args]
    tail = [t[:, :, prefill:] for t in args]
    if prefill_form == "chunkwise":
        _, st = mlstm_chunkwise(*head, state, chunk_size=8)
    else:
        _, st = mlstm_parallel(*head, state)
    h_tail, st = _step_loop(*tail, st, 1e-6)
    _assert_rel(h_tail, h_ref[:, :, prefill:], 1e-12, "generated h")
    for label, a, e in zip("Cnm", st, st_ref):
        _assert_rel(a, e, 1e-12, label)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("magnitude", [50.0, 1e4])
@pytest.mark.parametrize("pattern", ["random_sign", "i_pos_f_neg", "i_neg_f_pos", "all_neg", "all_pos"])
def test_mlstm_extreme_gates_finite(pattern, magnitude, dtype):
    g = _gen("mlstm_extreme", pattern, magnitude, dtype)
    B, NH, S, DHQK, DHV = 2, 2, 257, 8, 6
    (q, k, v, _, _), _ = _mlstm_inputs(g, B, NH, S, DHQK, DHV)
    sign_i, sign_f = {
        "random_sign": (torch.sign(_randn(g, B, NH, S)), torch.sign(_randn(g, B, NH, S))),
        "i_pos_f_neg": (1.0, -1.0),
        "i_neg_f_pos": (-1.0, 1.0),
        "all_neg": (-1.0, -1.0),
        "all_pos": (1.0, 1.0),
    }[pattern]
    ones = torch.ones(B, NH, S, dtype=F64)
    i = magnitude * sign_i * ones
    f = magnitude * sign_f * ones
    args = [t.to(dtype) for t in (q, k, v, i, f)]
    outs = {
        "recurrent": mlstm_recurrent(*args),
        "parallel": mlstm_parallel(*args),
        "chunkwise": mlstm_chunkwise(*args, chunk_size=64),
        "chunkwise_short": mlstm_chunkwise(*args, chunk_size=100),  # ragged last chunk
    }
    for name, (h, st) in outs.items():
        assert h.dtype == dtype, name
        assert torch.isfinite(h).all(), name
        for label, s in zip("Cnm", st):
            assert torch.isfinite(s).all(), f"{name} {label}"
    if dtype == F64:
        # same stabiliser as the step form: agreement survives extreme gates
        h_ref, _ = outs["recurrent"]
        torch.testing.assert_close(outs["chunkwise"][0], h_ref, rtol=1e-9, atol=1e-12)
