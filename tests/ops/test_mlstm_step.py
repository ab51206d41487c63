"""mlstm_step (the generation step op) against python_ref, on every backend that can run here."""
import pytest
import torch

from xlstm_cuda import reference
from conftest import BACKENDS, assert_all_close, assert_close, generator, numerics_matrix, randn
from inputs import step_inputs

# (B, NH, DHQK, DHV): odd sizes, DHQK != DHV, DHV past one sweep of a 256-thread block and not a
# whole number of the CUDA forward's 32-column slices, DHV % 4 != 0 (its scalar path), DHQK past
# the 256 rows the forward holds in registers per sweep, and xLSTM 7B's heads
SHAPES = [(1, 1, 8, 8), (2, 3, 16, 32), (3, 2, 7, 33), (1, 2, 64, 300), (1, 1, 300, 36), (1, 8, 256, 512)]


def run_reference(inputs, state, dtype):
    """python_ref on the same inputs (upcast to dtype), with the gradients of a fixed upstream."""
    ins = [t.detach().cpu().to(dtype).requires_grad_(True) for t in inputs]
    st = None if state is None else tuple(t.detach().cpu().to(dtype).requires_grad_(True) for t in state)
    h, new_state = reference.mlstm_step(*ins, st)
    return ins, st, (h, *new_state)


@numerics_matrix(SHAPES, with_state=[True, False])
def test_forward_and_gradients_match_reference(backend, dtype, shape, with_state):
    gen = generator("step", backend.name, dtype, shape, with_state)
    inputs, state = step_inputs(gen, *shape, dtype, backend.device, with_state)
    for t in inputs + list(state or ()):
        t.requires_grad_(True)
    h, new_state = backend.ops.mlstm_step(*inputs, state)
    outs = (h, *new_state)
    assert h.dtype == dtype and all(s.dtype == torch.float32 for s in new_state)
    upstream = [randn(gen, *o.shape, dtype=o.dtype, device=o.device) for o in outs]
    grads = torch.autograd.grad(outs, inputs + list(state or ()), upstream)

    ins64, st64, outs64 = run_reference(inputs, state, torch.float64)
    leaves64 = ins64 + list(st64 or ())
    grads64 = torch.autograd.grad(outs64, leaves64, [u.cpu().double() for u in upstream])
    ins_same, st_same, outs_same = run_reference(inputs, state, dtype)
    grads_same = torch.autograd.grad(outs_same, ins_same + list(st_same or ()), [u.cpu() for u in upstream])
    assert_all_close(["h", "C", "n", "m"], outs, outs64, outs_same)
    assert_all_close(["q", "k", "v", "i", "f", "C0", "n0", "m0"], grads, grads64, grads_same, grad=True)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_state_not_16_byte_aligned_matches_aligned(backend):
    """A state C whose data starts 4 bytes past a 16-byte boundary takes the CUDA forward's scalar
    path (DHV % 4 == 0 would otherwise give 16-byte accesses): same results as an aligned copy."""
    gen = generator("unaligned", backend.name)
    inputs, (C, n, m) = step_inputs(gen, 2, 3, 40, 64, torch.float32, backend.device, True)
    storage = torch.empty(C.numel() + 1, dtype=C.dtype, device=C.device)
    C_unaligned = storage[1:].view_as(C).copy_(C)
    assert C_unaligned.data_ptr() % 16 != 0 and C.data_ptr() % 16 == 0
    aligned = backend.ops.mlstm_step(*inputs, (C, n, m))
    unaligned = backend.ops.mlstm_step(*inputs, (C_unaligned, n, m))
    h64, state64 = reference.mlstm_step(*(t.double().cpu() for t in inputs), tuple(t.double().cpu() for t in (C, n, m)))
    for name, a, u, ref in zip(["h", "C", "n", "m"], (aligned[0], *aligned[1]), (unaligned[0], *unaligned[1]),
                               (h64, *state64)):
        assert_close(name, u, ref)
        assert_close(name, a, ref)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_steps_chain_like_recurrent_form(backend):
    gen = generator("chain", backend.name)
    B, NH, S, DQK, DV = 2, 2, 9, 12, 20
    q, k, v = randn(gen, B, NH, S, DQK), randn(gen, B, NH, S, DQK), randn(gen, B, NH, S, DV)
    i, f = randn(gen, B, NH, S, scale=3.0), randn(gen, B, NH, S, scale=3.0, shift=1.0)
    ref_h, ref_state = reference.mlstm_recurrent(*(t.double() for t in (q, k, v, i, f)))
    state, hs = None, []
    for t in range(S):
        args = [x[:, :, t].to(backend.device) for x in (q, k, v, i, f)]  # strided views
        h, state = backend.ops.mlstm_step(*args, state)
        hs.append(h)
    assert_close("h", torch.stack(hs, dim=2), ref_h)
    for name, out, ref in zip("Cnm", state, ref_state):
        assert_close(name, out, ref)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("gate", [50.0, -50.0, 1e4, -1e4])
def test_extreme_gates_stay_finite(backend, gate):
    gen = generator("extreme", backend.name, gate)
    inputs, state = step_inputs(gen, 2, 2, 16, 16, torch.float32, backend.device, True)
    inputs[3] = torch.full_like(inputs[3], gate)
    inputs[4] = torch.full_like(inputs[4], -gate)
    state = (*state[:2], torch.full_like(state[2], abs(gate)))
    for _ in range(3):
        h, state = backend.ops.mlstm_step(*inputs, state)
        assert torch.isfinite(h).all() and all(torch.isfinite(s).all() for s in state)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_float32_forward_at_a_very_wide_head(backend):
    """DHQK = 11 635, DHV = 1 (what the fuzz tests found): a float32 sum over DHQK in order erred
    3.8e-5 on the CPU; the CPU kernel now sums blocks of 64 rows apart (kStepSumBlock)."""
    for seed in range(3):
        gen = generator("wide step", backend.name, seed)
        inputs, state = step_inputs(gen, 1, 2, 11635, 1, torch.float32, backend.device, with_state=True)
        h, new_state = backend.ops.mlstm_step(*inputs, state)
        _, _, outs64 = run_reference(inputs, state, torch.float64)
        _, _, outs32 = run_reference(inputs, state, torch.float32)
        assert_all_close(["h", "C", "n", "m"], (h, *new_state), outs64, outs32)
