"""The chunkwise mLSTM op against python_ref (recurrent and parallel forms), on every backend that can run here."""
import subprocess
import sys
import textwrap

import pytest
import torch

import xlstm_cuda
from xlstm_cuda import reference
from conftest import BACKENDS, CUDA_SOURCE_BACKENDS, assert_all_close, assert_close, generator, numerics_matrix, randn
from inputs import chunkwise_inputs

# (B, NH, S, DHQK, DHV, chunk): S = 1, 63, 64, 65, 1000; DHQK != DHV; NH = 1 and 3; chunks 16, 64, 128
SHAPES = [(1, 1, 1, 16, 32, 64), (2, 3, 63, 16, 32, 16), (1, 2, 64, 16, 32, 64), (2, 1, 65, 16, 32, 64),
          (1, 3, 65, 8, 8, 128), (1, 1, 1000, 16, 32, 128)]


def run_reference(inputs, state, dtype, form=reference.mlstm_recurrent):
    leaves = [t.detach().cpu().to(dtype).requires_grad_(True) for t in inputs]
    st = None if state is None else [t.detach().cpu().to(dtype).requires_grad_(True) for t in state]
    h, new_state = form(*leaves, st)
    return leaves + (st or []), (h, *new_state)


def check_against_reference(backend, gen, sizes, chunk, dtype, with_state):
    """The op on chunkwise_inputs(gen, *sizes) against python_ref: outputs and every gradient, at the
    spec's bounds for dtype (the float64 recurrent form, and the chunkwise form in dtype itself)."""
    inputs, state = chunkwise_inputs(gen, *sizes, dtype, with_state, backend.device)
    leaves = inputs + list(state or ())
    for t in leaves:
        t.requires_grad_(True)
    h, new_state = backend.ops.mlstm_chunkwise(*inputs, state, chunk_size=chunk)
    outs = (h, *new_state)
    assert h.dtype == dtype and all(s.dtype == torch.float32 for s in new_state)
    upstream = [randn(gen, *o.shape, dtype=o.dtype, device=o.device) for o in outs]
    grads = torch.autograd.grad(outs, leaves, upstream)
    leaves64, outs64 = run_reference(inputs, state, torch.float64)
    grads64 = torch.autograd.grad(outs64, leaves64, [u.cpu().double() for u in upstream])
    # The same-dtype reference runs the chunkwise form too: its recurrent loop would take minutes at S = 1000.
    form = lambda *a: reference.mlstm_chunkwise(*a, chunk_size=chunk)  # noqa: E731
    leaves_same, outs_same = run_reference(inputs, state, dtype, form)
    grads_same = torch.autograd.grad(outs_same, leaves_same, [u.cpu() for u in upstream])
    assert_all_close(["h", "C", "n", "m"], outs, outs64, outs_same)
    assert_all_close(["q", "k", "v", "i", "f", "C0", "n0", "m0"], grads, grads64, grads_same, grad=True)


@numerics_matrix(SHAPES, with_state=[True, False])
def test_forward_and_gradients_match_reference(backend, dtype, shape, with_state):
    *sizes, chunk = shape
    check_against_reference(backend, generator("chunkwise", backend.name, dtype, shape, with_state), sizes, chunk,
                            dtype, with_state)

def test_agrees_with_parallel_form_without_eps():
    gen = generator("chunkwise-parallel")
    inputs, state = chunkwise_inputs(gen, 2, 2, 50, 8, 12, torch.float64, True)
    h, st = xlstm_cuda.mlstm_chunkwise(*inputs, state, eps=0.0, chunk_size=16)
    h_ref, st_ref = reference.mlstm_parallel(*inputs, state, eps=0.0)
    assert_close("h", h, h_ref)
    for name, a, b in zip("Cnm", st, st_ref):
        assert_close(name, a, b)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("gate", [50.0, -50.0, 1e4, -1e4])
def test_extreme_gates_stay_finite(backend, gate):
    gen = generator("chunkwise-extreme", backend.name, gate)
    inputs, state = chunkwise_inputs(gen, 1, 2, 130, 8, 8, torch.float32, True, backend.device)
    inputs[3] = torch.full_like(inputs[3], gate)
    inputs[4] = torch.full_like(inputs[4], -gate)
    leaves = [t.requires_grad_(True) for t in inputs + list(state)]
    h, st = backend.ops.mlstm_chunkwise(*inputs, state, chunk_size=64)
    assert torch.isfinite(h).all() and all(torch.isfinite(s).all() for s in st)
    grads = torch.autograd.grad((h.sum() + st[0].sum() + st[1].sum()), leaves)
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_prefill_then_steps_equals_one_pass(backend):
    gen = generator("chunkwise-prefill", backend.name)
    inputs, state = chunkwise_inputs(gen, 2, 3, 40, 16, 32, torch.float32, True, backend.device)
    h_full, st_full = backend.ops.mlstm_chunkwise(*inputs, state, chunk_size=16)
    _, st = backend.ops.mlstm_chunkwise(*(t[:, :, :33] for t in inputs), state, chunk_size=16)
    for t in range(33, 40):
        h_t, st = backend.ops.mlstm_step(*(x[:, :, t] for x in inputs), st)
        assert_close(f"h[{t}]", h_t, h_full[:, :, t].double())
    for name, a, b in zip("Cnm", st, st_full):
        assert_close(name, a, b.double())


def test_memory_grows_linearly_in_sequence_length():
    # S = 16384, B = 1, NH = 2, D = 64: one S x S float32 matrix per head, as the parallel form builds,
    # is 2 GiB. Forward + backward here must peak far below that (in a fresh process, for its peak RSS).
    script = textwrap.dedent("""
        import resource, torch, xlstm_cuda
        B, NH, S, D = 1, 2, 16384, 64
        q, k, v = (torch.randn(B, NH, S, D, requires_grad=True) for _ in range(3))
        i = torch.randn(B, NH, S, requires_grad=True)
        f = (torch.randn(B, NH, S) + 3).requires_grad_(True)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        h, (C, n, m) = xlstm_cuda.mlstm_chunkwise(q, k, v, i, f, chunk_size=64)
        (h.square().mean() + C.sum()).backward()
        assert torch.isfinite(q.grad).all() and torch.isfinite(f.grad).all()
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    grown = int(result.stdout.split()[-1])
    assert grown < 512 * 2**20, f"forward + backward grew the peak RSS by {grown / 2**20:.0f} MiB"


@pytest.mark.parametrize("backend", CUDA_SOURCE_BACKENDS, ids=str)
def test_cuda_chunk_size_limit_is_a_clear_error(backend):
    gen = generator("chunkwise-limit", backend.name)
    inputs, _ = chunkwise_inputs(gen, 1, 1, 300, 4, 4, torch.float32, False, backend.device)
    with pytest.raises(RuntimeError, match="largest chunk, 128"):
        backend.ops.mlstm_chunkwise(*inputs, chunk_size=256)


@pytest.mark.parametrize("backend", CUDA_SOURCE_BACKENDS, ids=str)
def test_cuda_kernels_equal_cpu_on_large_heads(backend):
    # Several state tiles (DHQK > 64, DHV + 1 > 128) and two row tiles per chunk, against the CPU op.
    gen = generator("chunkwise-large", backend.name)
    inputs, state = chunkwise_inputs(gen, 1, 1, 150, 72, 130, torch.float32, True)
    leaves = [t.requires_grad_(True) for t in inputs + list(state)]
    outs = backend.ops.mlstm_chunkwise(*(t.to(backend.device) for t in inputs),
                                       tuple(t.to(backend.device) for t in state), chunk_size=128)
    outs = (outs[0], *outs[1])
    ref = xlstm_cuda.mlstm_chunkwise(*inputs, state, chunk_size=128)
    ref = (ref[0], *ref[1])
    upstream = [randn(gen, *o.shape) for o in ref]
    grads = torch.autograd.grad(outs, leaves, [u.to(backend.device) for u in upstream])
    grads_ref = torch.autograd.grad(ref, leaves, upstream)
    for name, a, b in zip(["h", "C", "n", "m"], outs, ref):
        assert_close(name, a, b.double())
    for name, a, b in zip(["q", "k", "v", "i", "f", "C0", "n0", "m0"], grads, grads_ref):
        assert_close(f"grad {name}", a, b.double(), grad=True)
