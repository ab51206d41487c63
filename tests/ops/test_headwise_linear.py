"""The headwise (block-diagonal) linear op against python_ref, on every backend that can run here."""
import pytest
import torch

from xlstm_cuda import reference
import xlstm_cuda
from conftest import BACKENDS, assert_matches_reference, generator, randn

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# (leading shape, G, O, I): the mLSTM layer's 4 x 4 blocks, non-square blocks, one group, rows
# spanning several weight-gradient tiles (N = 600), a 1-D input; the sLSTM layer's gate projections
# (per head and source DH -> 2 DH) and blocks with column tails, which the CPU runs as small GEMMs.
SHAPES = [((2, 5), 8, 4, 4), ((3,), 3, 2, 5), ((1, 1), 1, 6, 6), ((600,), 5, 4, 4), ((), 4, 3, 2),
          ((2, 37), 6, 64, 32), ((3, 9), 2, 37, 19)]


def check_against_reference(backend, gen, x, weight, heads=1):
    G, O, _ = weight.shape

    def op(x, weight):  # head-major (B, heads, S, G O / heads) compared as (B, S, G O)
        y = backend.ops.headwise_linear(x, weight, heads)
        if heads > 1:
            assert y.shape == (x.shape[0], heads, x.shape[1], G * O // heads)
            y = y.transpose(1, 2).flatten(2)
        return y

    y = assert_matches_reference(gen, op, reference.headwise_linear, [x, weight], ["x", "weight"])
    assert y.dtype == x.dtype and y.shape == (*x.shape[:-1], G * O)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_and_gradients_match_reference(backend, dtype, shape):
    lead, G, O, I = shape
    gen = generator("headwise", backend.name, dtype, shape)
    x = randn(gen, *lead, G * I, dtype=dtype, device=backend.device)
    weight = randn(gen, G, O, I, scale=I ** -0.5, dtype=dtype, device=backend.device)
    check_against_reference(backend, gen, x, weight)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("heads", [2, 3])
def test_head_major_output(backend, dtype, heads):
    """The mLSTM layer's q, k, v: (B, S, inner) in, (B, NH, S, DH) out, from a strided input."""
    gen = generator("headwise-heads", backend.name, dtype, heads)
    wide = randn(gen, 2, 5, 48, dtype=dtype, device=backend.device)
    weight = randn(gen, 6, 4, 4, scale=0.5, dtype=dtype, device=backend.device)
    check_against_reference(backend, gen, wide[..., :24], weight, heads)
    large_blocks = randn(gen, 6, 20, 8, scale=0.3, dtype=dtype, device=backend.device)
    check_against_reference(backend, gen, wide, large_blocks, heads)
    # Heads of 16 features: whole vectors of 4 x 4 blocks, the CPU's vectorized path.
    whole_vectors = randn(gen, 2, 7, 16 * heads, dtype=dtype, device=backend.device)
    check_against_reference(backend, gen, whole_vectors, randn(gen, 4 * heads, 4, 4, scale=0.5, dtype=dtype,
                                                                device=backend.device), heads)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_float32_weights_with_low_precision_inputs(backend, dtype):
    gen = generator("headwise-weights", backend.name, dtype)
    x = randn(gen, 7, 16, dtype=dtype, device=backend.device)
    check_against_reference(backend, gen, x, randn(gen, 4, 4, 4, scale=0.5, device=backend.device))


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_strided_rows(backend):
    """The mLSTM layer projects one half of its up-projection: rows with a stride of twice the width."""
    gen = generator("headwise-strided", backend.name)
    wide = randn(gen, 3, 4, 32, device=backend.device)
    check_against_reference(backend, gen, wide[..., :16], randn(gen, 4, 4, 4, device=backend.device))


def test_cpu_kernel_gradcheck_float64():
    gen = generator("headwise-gradcheck")
    x = randn(gen, 3, 6, dtype=torch.float64).requires_grad_(True)
    weight = randn(gen, 2, 3, 3, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(xlstm_cuda.ops.headwise_linear, [x, weight])


def bad_calls():
    x, w = torch.randn(5, 8), torch.randn(2, 4, 4)
    return [
        ("weight rank", (x, torch.randn(2, 16)), "weight must have shape"),
        ("features", (torch.randn(5, 7), w), "takes G \\* I = 8"),
        ("int dtype", (x.int(), w), "must be float32"),
        ("weight dtype", (x, w.double()), "weight must be"),
        ("empty", (torch.randn(0, 8), w), "is empty"),
        ("empty weight", (x, torch.randn(0, 4, 4)), "weight must have shape"),
        ("heads not dividing groups", (x.view(1, 5, 8), w, 3), "heads must be >= 1 and divide"),
        ("head-major needs [B, S, D]", (x, w, 2), "x must have shape \\[B, S, G \\* I\\]"),
    ]


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.device == "cpu"], ids=str)
@pytest.mark.parametrize("case", bad_calls(), ids=lambda c: c[0])
def test_bad_input_raises_clear_error(backend, case):
    _, args, message = case
    with pytest.raises((RuntimeError, TypeError), match=message):
        backend.ops.headwise_linear(*args)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_opcheck(backend):
    gen = generator("headwise-opcheck", backend.name)
    ops = getattr(torch.ops, backend.ops.namespace)
    x = randn(gen, 2, 3, 12, device=backend.device).requires_grad_(True)
    weight = randn(gen, 3, 4, 4, device=backend.device).requires_grad_(True)
    for heads in (1, 3):
        torch.library.opcheck(ops.headwise_linear.default, (x, weight, heads))
        torch.library.opcheck(ops.headwise_linear_backward.default,
                              (torch.randn(2, heads, 3, 12 // heads, device=backend.device), x.detach(),
                               weight.detach(), heads))


def test_torch_compile_fullgraph():
    gen = generator("headwise-compile")
    x, weight = randn(gen, 2, 3, 8), randn(gen, 2, 4, 4)

    def fn(x, weight):
        return xlstm_cuda.ops.headwise_linear(x * 2.0, weight).sum()

    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    x.requires_grad_(True)
    compiled(x, weight).backward()
    eager_x = x.detach().clone().requires_grad_(True)
    fn(eager_x, weight).backward()
    torch.testing.assert_close(x.grad, eager_x.grad)
