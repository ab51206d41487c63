"""The fused sLSTM op against python_ref, on every backend that can run here."""
import importlib

import pytest
import torch

import xlstm_cuda
from xlstm_cuda import reference
from conftest import BACKENDS, CUDA_SOURCE_BACKENDS, assert_all_close, generator, numerics_matrix, randn
from inputs import slstm_inputs

# (B, S, NH, DH): B = 1, S = 1, NH = 1 and 3, DH = 8, 24, 64 (CUDA: R in shared memory), 128 (R in registers
# and shared memory) and 144 (R read from L2)
SHAPES = [(1, 1, 1, 8), (3, 7, 3, 24), (5, 20, 1, 64), (2, 5, 2, 128), (1, 3, 1, 144)]


def run_reference(x, R, b, state, dtype):
    leaves = [t.detach().cpu().to(dtype).requires_grad_(True) for t in (x, R, b)]
    st = None
    if state is not None:
        st = [t.detach().cpu().to(dtype).requires_grad_(i < 3) for i, t in enumerate(state)]
    h, last = reference.slstm(*leaves, st)
    return leaves + (st[:3] if st else []), (h, *last[:3]), last[3]


def check_against_reference(backend, x, R, b, state, gen):
    dtype = x.dtype
    leaves = [x, R, b] + (list(state[:3]) if state else [])
    for t in leaves:
        t.requires_grad_(True)
    h, last = backend.ops.slstm(x, R, b, state)
    outs = (h, *last[:3])
    assert h.dtype == dtype and all(s.dtype == torch.float32 for s in last)
    upstream = [randn(gen, *o.shape, dtype=o.dtype, device=o.device) for o in outs]
    grads = torch.autograd.grad(outs, leaves, upstream)

    leaves64, outs64, m64 = run_reference(x, R, b, state, torch.float64)
    grads64 = torch.autograd.grad(outs64, leaves64, [u.cpu().double() for u in upstream])
    leaves_same, outs_same, m_same = run_reference(x, R, b, state, dtype)
    grads_same = torch.autograd.grad(outs_same, leaves_same, [u.cpu() for u in upstream])
    assert_all_close(["h", "h_T", "c_T", "n_T", "m_T"], [*outs, last[3]], [*outs64, m64], [*outs_same, m_same])
    assert_all_close(["x", "R", "b", "h0", "c0", "n0"], grads, grads64, grads_same, grad=True)


@numerics_matrix(SHAPES, with_state=[True, False])
def test_forward_and_gradients_match_reference(backend, dtype, shape, with_state):
    gen = generator("slstm", backend.name, dtype, shape, with_state)
    check_against_reference(backend, *slstm_inputs(gen, *shape, dtype, backend.device, with_state), gen)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_long_sequence(backend):
    gen = generator("slstm-long", backend.name)
    check_against_reference(backend, *slstm_inputs(gen, 2, 1000, 1, 8, torch.float32, backend.device, True), gen)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("gate", [50.0, -50.0])
def test_extreme_gates_stay_finite(backend, gate):
    gen = generator("slstm-extreme", backend.name, gate)
    x, R, b, state = slstm_inputs(gen, 2, 64, 2, 8, torch.float32, backend.device, False)
    x = x.sign() * gate  # every gate pre-activation at ±gate
    x.requires_grad_(True)
    h, last = backend.ops.slstm(x, R, b, state)
    (h.sum() + last[1].sum()).backward()
    assert torch.isfinite(h).all() and all(torch.isfinite(s).all() for s in last)
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_state_carries_across_calls(backend):
    gen = generator("slstm-split", backend.name)
    x, R, b, state = slstm_inputs(gen, 3, 12, 2, 16, torch.float32, backend.device, True)
    h_full, last_full = backend.ops.slstm(x, R, b, state)
    h1, mid = backend.ops.slstm(x[:, :5], R, b, state)
    h2, last = backend.ops.slstm(x[:, 5:], R, b, mid)
    torch.testing.assert_close(torch.cat([h1, h2], 1), h_full, rtol=1e-5, atol=1e-6)
    for a, b_ in zip(last, last_full):
        torch.testing.assert_close(a, b_, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_inference_keeps_only_the_latest_state(backend):
    gen = generator("slstm-inference", backend.name)
    x, R, b, state = slstm_inputs(gen, 3, 9, 2, 8, torch.float32, backend.device, True)
    ops = getattr(torch.ops, backend.ops.namespace)
    initial = torch.stack(state)
    h_train, last_train, trace_train = ops.slstm_forward(x, R, b, initial, True)
    h_infer, last_infer, trace_infer = ops.slstm_forward(x, R, b, initial, False)
    assert trace_train.shape[2] == 10 and trace_infer.shape[2] == 2
    assert torch.equal(h_infer, h_train) and torch.equal(last_infer, last_train)
    with torch.no_grad():  # the public function picks the inference path by itself
        h, last = backend.ops.slstm(x, R, b, state)
    assert torch.equal(h, h_train) and torch.equal(torch.stack(last), last_train)


def cuda_module(backend):
    return importlib.import_module("xlstm_cuda._sim" if backend.name == "emulation" else "xlstm_cuda._C")


@pytest.mark.parametrize("backend", CUDA_SOURCE_BACKENDS, ids=str)
def test_sm90_keeps_r_on_chip_up_to_128_units(backend, monkeypatch):
    # The emulation has sm_90's shared memory per block, so it picks the one-block kernel an H100 / H200
    # runs; past 128 units the GPU runs across a cluster, the emulation only where told to.
    if backend.name == "cuda" and torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("the limits asserted here are sm_90's")
    monkeypatch.delenv("XLSTM_SLSTM_CLUSTER", raising=False)
    module = cuda_module(backend)
    for backward in (False, True):
        assert module.slstm_cuda_path(64, backward) == "fused: R in shared memory"
        assert module.slstm_cuda_path(128, backward) == "fused: R in registers and shared memory"
        beyond = "general: R read from L2"
        if backend.name == "cuda":
            beyond = "fused: R across a cluster of 8 blocks, in shared memory"
        assert module.slstm_cuda_path(144, backward) == beyond


# The sLSTM across a thread-block cluster (sm_90), forward and backward, forced where it is not the default
# (the emulation): (B, S, NH, DH) with DH = 64 (8 blocks of 8 units), 192 (8 blocks of 24, two batch tiles,
# the last of one row) and 768 (16 blocks of 48, R partly read from L2).
CLUSTER_SHAPES = [(3, 4, 2, 64), (5, 3, 1, 192), (2, 2, 1, 768)]
CLUSTER_PATHS = {64: "fused: R across a cluster of 8 blocks, in shared memory",
                 192: "fused: R across a cluster of 8 blocks, in shared memory",
                 768: "fused: R across a cluster of 16 blocks, in shared memory and L2"}


@pytest.mark.parametrize("with_state", [True, False])
@pytest.mark.parametrize("shape", CLUSTER_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("backend", CUDA_SOURCE_BACKENDS, ids=str)
def test_cluster_kernels_match_reference(backend, dtype, shape, with_state, monkeypatch):
    if backend.name == "cuda" and torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("thread-block clusters of this kernel need sm_90")
    monkeypatch.setenv("XLSTM_SLSTM_CLUSTER", "1")
    for backward in (False, True):
        assert cuda_module(backend).slstm_cuda_path(shape[3], backward) == CLUSTER_PATHS[shape[3]]
    gen = generator("slstm-cluster", backend.name, dtype, shape, with_state)
    check_against_reference(backend, *slstm_inputs(gen, *shape, dtype, backend.device, with_state), gen)
