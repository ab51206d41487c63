"""The fused mLSTM output gate against python_ref, on every backend that can run here."""
import pytest
import torch

from xlstm_cuda import reference
import xlstm_cuda
from conftest import BACKENDS, assert_matches_reference, generator, randn

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# (leading shape, D): one row, odd widths around the CUDA kernels' 32-feature blocks, rows spanning
# several row tiles (N = 300).
SHAPES = [((1,), 1), ((2, 3), 33), ((300,), 20), ((4, 5), 64)]


def check_against_reference(backend, gen, h, x_conv, z, w, s):
    y = assert_matches_reference(gen, backend.ops.mlstm_output_gate, reference.mlstm_output_gate, [h, x_conv, z, w, s],
                                 ["h", "x_conv", "z", "norm_weight", "skip"])
    assert y.dtype == h.dtype and y.shape == h.shape


def gate_inputs(gen, lead, D, dtype, device, weight_dtype=None):
    h, x_conv, z = (randn(gen, *lead, D, scale=2.0, dtype=dtype, device=device) for _ in range(3))
    w, s = (randn(gen, D, shift=1.0, dtype=weight_dtype or dtype, device=device) for _ in range(2))
    return h, x_conv, z, w, s


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_and_gradients_match_reference(backend, dtype, shape):
    gen = generator("output-gate", backend.name, dtype, shape)
    check_against_reference(backend, gen, *gate_inputs(gen, *shape, dtype, backend.device))


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_float32_weights_with_low_precision_inputs(backend, dtype):
    gen = generator("output-gate-weights", backend.name, dtype)
    check_against_reference(backend, gen, *gate_inputs(gen, (3, 4), 40, dtype, backend.device, torch.float32))


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_strided_rows(backend):
    """The layer's z is one half of its up-projection: rows with a stride of twice the width."""
    gen = generator("output-gate-strided", backend.name)
    h, x_conv, _, w, s = gate_inputs(gen, (2, 5), 24, torch.float32, backend.device)
    wide = randn(gen, 2, 5, 48, device=backend.device)
    check_against_reference(backend, gen, h, x_conv, wide[..., 24:], w, s)


def test_cpu_kernel_gradcheck_float64():
    gen = generator("output-gate-gradcheck")
    args = [t.requires_grad_(True) for t in gate_inputs(gen, (3,), 5, torch.float64, "cpu")]
    assert torch.autograd.gradcheck(xlstm_cuda.ops.mlstm_output_gate, args)


def bad_calls():
    h, w = torch.randn(4, 6), torch.randn(6)
    return [
        ("shapes differ", (h, torch.randn(4, 7), h, w, w), "must have one shape"),
        ("weight size", (h, h, h, torch.randn(7), w), "norm_weight must have shape"),
        ("skip dtype", (h, h, h, w, w.double()), "skip must be"),
        ("int dtype", (h.int(), h.int(), h.int(), w, w), "must be float32"),
        ("z dtype", (h, h, h.double(), w, w), "z must be"),
        ("empty", (torch.randn(0, 6), torch.randn(0, 6), torch.randn(0, 6), w, w), "is empty"),
    ]


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.device == "cpu"], ids=str)
@pytest.mark.parametrize("case", bad_calls(), ids=lambda c: c[0])
def test_bad_input_raises_clear_error(backend, case):
    _, args, message = case
    with pytest.raises((RuntimeError, TypeError), match=message):
        backend.ops.mlstm_output_gate(*args)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_opcheck(backend):
    gen = generator("output-gate-opcheck", backend.name)
    ops = getattr(torch.ops, backend.ops.namespace)
    args = tuple(t.requires_grad_(True) for t in gate_inputs(gen, (6,), 10, torch.float32, backend.device))
    torch.library.opcheck(ops.mlstm_output_gate.default, args)
    torch.library.opcheck(ops.mlstm_output_gate_backward.default,
                          (torch.randn(6, 10, device=backend.device), *(t.detach() for t in args)))


def test_torch_compile_fullgraph():
    gen = generator("output-gate-compile")
    h, x_conv, z, w, s = gate_inputs(gen, (2, 3), 8, torch.float32, "cpu")

    def fn(h):
        return xlstm_cuda.ops.mlstm_output_gate(h * 2.0, x_conv, z, w, s).sum()

    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    h.requires_grad_(True)
    compiled(h).backward()
    eager_h = h.detach().clone().requires_grad_(True)
    fn(eager_h).backward()
    torch.testing.assert_close(h.grad, eager_h.grad)
