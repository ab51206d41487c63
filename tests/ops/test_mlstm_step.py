"""mlstm_step (the generation step op) against python_ref, on every backend that can run here."""
import pytest
import torch

from xlstm_cuda import reference
import xlstm_cuda
from conftest import BACKENDS, assert_all_close, assert_close, generator, randn

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# (B, NH, DHQK, DHV): odd sizes, DHQK != DHV, DHV past one sweep of a 256-thread block
SHAPES = [(1, 1, 8, 8), (2, 3, 16, 32), (3, 2, 7, 33), (1, 2, 64, 300)]


def step_inputs(gen, B, NH, DQK, DV, dtype, device, with_state):
    q, k = randn(gen, B, NH, DQK), randn(gen, B, NH, DQK)
    v = randn(gen, B, NH, DV)
    i, f = randn(gen, B, NH, scale=2.0), randn(gen, B, NH, scale=2.0, shift=2.0)
    inputs = [t.to(device=device, dtype=dtype) for t in (q, k, v, i, f)]
    state_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    state = None
    if with_state:
        state = (randn(gen, B, NH, DQK, DV), randn(gen, B, NH, DQK), randn(gen, B, NH, scale=2.0))
        state = tuple(t.to(device=device, dtype=state_dtype) for t in state)
    return inputs, state


def run_reference(inputs, state, dtype):
    """python_ref on the same inputs (upcast to dtype), with the gradients of a fixed upstream."""
    ins = [t.detach().cpu().to(dtype).requires_grad_(True) for t in inputs]
    st = None if state is None else tuple(t.detach().cpu().to(dtype).requires_grad_(True) for t in state)
    h, new_state = reference.mlstm_step(*ins, st)
    return ins, st, (h, *new_state)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("with_state", [True, False])
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


def test_cpu_kernel_gradcheck_float64():
    gen = generator("gradcheck")
    inputs, state = step_inputs(gen, 2, 3, 5, 4, torch.float64, "cpu", True)
    leaves = [t.requires_grad_(True) for t in inputs + list(state)]

    def fn(q, k, v, i, f, C, n, m):
        h, (C1, n1, m1) = xlstm_cuda.mlstm_step(q, k, v, i, f, (C, n, m))
        return h, C1, n1, m1

    assert torch.autograd.gradcheck(fn, leaves)


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
def test_strided_inputs_equal_contiguous(backend):
    gen = generator("strided", backend.name)
    B, NH, DQK, DV = 3, 2, 8, 12
    fused = randn(gen, B, 2 * DQK + DV + 2, NH, device=backend.device).transpose(1, 2)  # (B, NH, ...), last stride NH
    q, k, v = fused[..., :DQK], fused[..., DQK:2 * DQK], fused[..., 2 * DQK:2 * DQK + DV]
    i, f = fused[..., -2], fused[..., -1]
    C = randn(gen, B, NH, DV, DQK, device=backend.device).transpose(-1, -2)
    n, m = randn(gen, B, NH, DQK, device=backend.device), randn(gen, B, NH, device=backend.device)
    got = backend.ops.mlstm_step(q, k, v, i, f, (C, n, m))
    want = backend.ops.mlstm_step(*(t.contiguous() for t in (q, k, v, i, f)), (C.contiguous(), n, m))
    for a, b in zip([got[0], *got[1]], [want[0], *want[1]]):
        assert torch.equal(a, b)


def bad_calls():
    B, NH, D = 2, 3, 4

    def args(**over):
        base = dict(q=torch.randn(B, NH, D), k=torch.randn(B, NH, D), v=torch.randn(B, NH, D + 1),
                    i=torch.randn(B, NH), f=torch.randn(B, NH),
                    state=(torch.zeros(B, NH, D, D + 1), torch.zeros(B, NH, D), torch.zeros(B, NH)))
        base.update(over)
        return base

    good_state = args()["state"]
    return [
        ("q rank", args(q=torch.randn(B, NH, 1, D)), "q must have shape"),
        ("k size", args(k=torch.randn(B, NH, D + 1)), "k must have shape"),
        ("v batch", args(v=torch.randn(B + 1, NH, D + 1)), "v must have shape"),
        ("i heads", args(i=torch.randn(B, NH + 1)), "i must have shape"),
        ("f rank", args(f=torch.randn(B, NH, 1)), "f must have shape"),
        ("int dtype", args(q=torch.ones(B, NH, D, dtype=torch.int32)), "q must be float32"),
        ("mixed dtype", args(k=torch.randn(B, NH, D, dtype=torch.bfloat16)), "k must be"),
        ("state dtype", args(state=(good_state[0].bfloat16(), *good_state[1:])), "state C must be Float"),
        ("state shape", args(state=(good_state[0], torch.zeros(B, NH, D + 1), good_state[2])), "state n must have shape"),
        ("empty", args(q=torch.randn(0, NH, D), k=torch.randn(0, NH, D), v=torch.randn(0, NH, D + 1),
                       i=torch.randn(0, NH), f=torch.randn(0, NH),
                       state=(torch.zeros(0, NH, D, D + 1), torch.zeros(0, NH, D), torch.zeros(0, NH))), "is empty"),
        ("state arity", args(state=good_state[:2]), "state must be a tuple"),
        ("negative eps", dict(args(), eps=-1.0), "eps must be finite"),
    ]


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.device == "cpu"], ids=str)
@pytest.mark.parametrize("case", bad_calls(), ids=lambda c: c[0])
def test_bad_input_raises_clear_error(backend, case):
    _, kwargs, message = case
    with pytest.raises((RuntimeError, TypeError), match=message):
        backend.ops.mlstm_step(**kwargs)


def test_mixed_devices_raise_clear_error():
    gen = generator("devices")
    device = "cuda" if torch.cuda.is_available() else "meta"  # meta: the fake implementation's check
    inputs, state = step_inputs(gen, 2, 2, 8, 8, torch.float32, "cpu", True)
    with pytest.raises(RuntimeError, match="one device|must be on"):
        xlstm_cuda.mlstm_step(*inputs, (state[0].to(device), *state[1:]))


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_opcheck(backend):
    gen = generator("opcheck", backend.name)
    inputs, state = step_inputs(gen, 2, 3, 8, 12, torch.float32, backend.device, True)
    ops = getattr(torch.ops, backend.ops.namespace)
    leaves = [t.requires_grad_(True) for t in inputs + list(state)]
    torch.library.opcheck(ops.mlstm_step.default, (*leaves, 1e-6))
    outs = ops.mlstm_step(*(t.detach() for t in leaves), 1e-6)
    grads = [randn(gen, *o.shape).to(o) for o in outs]
    torch.library.opcheck(ops.mlstm_step_backward.default, (*grads, *(t.detach() for t in leaves), 1e-6))
