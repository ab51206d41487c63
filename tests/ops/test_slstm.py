"""The fused sLSTM op against python_ref, on every backend that can run here."""
import importlib

import pytest
import torch

from xlstm_cuda import reference
import xlstm_cuda
from conftest import BACKENDS, CUDA_SOURCE_BACKENDS, assert_all_close, generator, randn

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# (B, S, NH, DH): B = 1, S = 1, NH = 1 and 3, DH = 8, 24, 64 (CUDA: R in shared memory), 128 (R in registers
# and shared memory) and 144 (R read from L2)
SHAPES = [(1, 1, 1, 8), (3, 7, 3, 24), (5, 20, 1, 64), (2, 5, 2, 128), (1, 3, 1, 144)]


def slstm_inputs(gen, B, S, NH, DH, dtype, device, with_state, weight_dtype=None):
    weight_dtype = weight_dtype or dtype
    x = randn(gen, B, S, NH, 4, DH, scale=2.0, dtype=dtype, device=device)
    R = randn(gen, NH, DH, 4, DH, scale=DH ** -0.5, dtype=weight_dtype, device=device)
    b = randn(gen, NH, 4, DH, dtype=weight_dtype, device=device)
    state = None
    if with_state:
        sd = torch.float64 if dtype == torch.float64 else torch.float32
        h0, c0, m0 = (randn(gen, B, NH, DH, dtype=sd, device=device) for _ in range(3))
        n0 = randn(gen, B, NH, DH, dtype=sd, device=device).abs() + 0.5
        state = (h0, c0, n0, m0)
    return x, R, b, state


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


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("with_state", [True, False])
def test_forward_and_gradients_match_reference(backend, dtype, shape, with_state):
    gen = generator("slstm", backend.name, dtype, shape, with_state)
    check_against_reference(backend, *slstm_inputs(gen, *shape, dtype, backend.device, with_state), gen)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_float32_weights_with_low_precision_inputs(backend, dtype):
    gen = generator("slstm-weights", backend.name, dtype)
    check_against_reference(backend, *slstm_inputs(gen, 2, 6, 2, 16, dtype, backend.device, True, torch.float32), gen)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_long_sequence(backend):
    gen = generator("slstm-long", backend.name)
    check_against_reference(backend, *slstm_inputs(gen, 2, 1000, 1, 8, torch.float32, backend.device, True), gen)


def test_cpu_kernel_gradcheck_float64():
    gen = generator("slstm-gradcheck")
    x, R, b, (h0, c0, n0, m0) = slstm_inputs(gen, 2, 4, 2, 3, torch.float64, "cpu", True)

    def fn(x, R, b, h0, c0, n0):
        # c and n are stored stabilised (scaled by exp(-m), m a constant): compare unscaled values.
        h, (h_T, c_T, n_T, m_T) = xlstm_cuda.slstm(x, R, b, (h0, c0, n0, m0))
        return h, h_T, c_T * m_T.exp(), n_T * m_T.exp()

    assert torch.autograd.gradcheck(fn, [t.requires_grad_(True) for t in (x, R, b, h0, c0, n0)])


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
def test_head_major_input_is_read_through_its_strides(backend):
    """sLSTMLayer hands the op a (B, S, NH, 4, DH) view of head-major storage."""
    gen = generator("slstm-strided", backend.name)
    x, R, b, state = slstm_inputs(gen, 2, 5, 3, 8, torch.float32, backend.device, True)
    head_major = x.permute(2, 0, 1, 3, 4).contiguous().permute(1, 2, 0, 3, 4)
    assert not head_major.is_contiguous()
    leaves = [x.clone().requires_grad_(True), head_major.requires_grad_(True)]
    outs = [backend.ops.slstm(t, R, b, state) for t in leaves]
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=0, atol=0)
    grads = [torch.autograd.grad(o[0].sum(), t)[0] for o, t in zip(outs, leaves)]
    torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=0)


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


def bad_calls():
    B, S, NH, DH = 2, 3, 2, 4
    x, R, b = torch.randn(B, S, NH, 4, DH), torch.randn(NH, DH, 4, DH), torch.randn(NH, 4, DH)
    state = tuple(torch.zeros(B, NH, DH) for _ in range(4))
    return [
        ("x rank", (torch.randn(B, NH, 4, DH), R, b, None), "x_gates must have shape"),
        ("x gates", (torch.randn(B, S, NH, 3, DH), R, b, None), "x_gates must have shape"),
        ("R heads", (x, torch.randn(NH + 1, DH, 4, DH), b, None), "R must have shape"),
        ("R size", (x, torch.randn(NH, DH, 4, DH + 1), b, None), "R must have shape"),
        ("b size", (x, R, torch.randn(NH, 4, DH + 1), None), "b must have shape"),
        ("int dtype", (x.int(), R, b, None), "must be float32"),
        ("R dtype", (x, R.double(), b, None), "R must be"),
        ("b dtype", (x, R, b.half(), None), "b must be"),
        ("state shape", (x, R, b, state[:3] + (torch.zeros(B, NH, DH + 1),)), "initial_state tensors"),
        ("state arity", (x, R, b, state[:3]), "initial_state must be a tuple"),
        ("state dtype", (x, R, b, tuple(s.double() for s in state)), "initial state must be Float"),
        ("empty", (torch.randn(B, 0, NH, 4, DH), R, b, None), "is empty"),
    ]


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.device == "cpu"], ids=str)
@pytest.mark.parametrize("case", bad_calls(), ids=lambda c: c[0])
def test_bad_input_raises_clear_error(backend, case):
    _, args, message = case
    with pytest.raises((RuntimeError, TypeError), match=message):
        backend.ops.slstm(*args)


def test_mixed_devices_raise_clear_error():
    gen = generator("slstm-devices")
    device = "cuda" if torch.cuda.is_available() else "meta"  # meta: the fake implementation's check
    x, R, b, state = slstm_inputs(gen, 2, 3, 2, 4, torch.float32, "cpu", True)
    with pytest.raises(RuntimeError, match="one device|must be on"):
        xlstm_cuda.slstm(x, R.to(device), b, state)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_opcheck(backend):
    gen = generator("slstm-opcheck", backend.name)
    x, R, b, state = slstm_inputs(gen, 2, 3, 2, 8, torch.float32, backend.device, True)
    ops = getattr(torch.ops, backend.ops.namespace)
    initial = torch.stack(state)
    args = [t.requires_grad_(True) for t in (x, R, b)] + [initial]
    torch.library.opcheck(ops.slstm_forward.default, tuple(args))
    h, last, trace = ops.slstm_forward(*(t.detach() for t in args))
    torch.library.opcheck(ops.slstm_backward.default,
                          (torch.randn_like(h), torch.randn_like(last), x.detach(), R.detach(), b.detach(), trace))


def test_torch_compile_fullgraph():
    gen = generator("slstm-compile")
    x, R, b, state = slstm_inputs(gen, 2, 5, 2, 8, torch.float32, "cpu", True)

    class Cell(torch.nn.Module):
        def forward(self, x, R, b, h0, c0, n0, m0):
            h, last = xlstm_cuda.slstm(x * 2.0, R, b, (h0, c0, n0, m0))
            return h.sum() + last[1].sum()

    compiled = torch.compile(Cell(), fullgraph=True, backend="aot_eager")
    x.requires_grad_(True)
    out = compiled(x, R, b, *state)
    out.backward()
    eager_x = x.detach().clone().requires_grad_(True)
    Cell()(eager_x, R, b, *state).backward()
    torch.testing.assert_close(x.grad, eager_x.grad)


@pytest.mark.parametrize("backend", CUDA_SOURCE_BACKENDS, ids=str)
def test_sm90_keeps_r_on_chip_up_to_128_units(backend):
    # The emulation has sm_90's shared memory per block, so it picks the kernel an H100 / H200 runs.
    if backend.name == "cuda" and torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("the limits asserted here are sm_90's")
    module = importlib.import_module("xlstm_cuda._sim" if backend.name == "emulation" else "xlstm_cuda._C")
    for backward in (False, True):
        assert module.slstm_cuda_path(64, backward) == "fused: R in shared memory"
        assert module.slstm_cuda_path(128, backward) == "fused: R in registers and shared memory"
        assert module.slstm_cuda_path(144, backward) == "general: R read from L2"
