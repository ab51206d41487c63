"""The fused causal conv + SiLU op against python_ref, on every backend that can run here."""
import pytest
import torch

from xlstm_cuda import reference
import xlstm_cuda
from conftest import BACKENDS, assert_matches_reference, generator, randn

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# (B, S, D, K): B = 1, S = 1 and S < K - 1 (the buffer reaches past the start), D below, at and
# above a 32-channel block, K = 1 (no history) up to the CUDA kernels' 8; S = 300 spans several
# row blocks.
SHAPES = [(1, 1, 5, 4), (2, 2, 32, 4), (3, 17, 40, 3), (2, 300, 70, 4), (1, 9, 7, 1), (2, 12, 33, 8)]


def conv_inputs(gen, B, S, D, K, dtype, device, with_initial, weight_dtype=None):
    x = randn(gen, B, S, D, scale=2.0, dtype=dtype, device=device)
    weight = randn(gen, D, K, scale=K ** -0.5, dtype=weight_dtype or dtype, device=device)
    bias = randn(gen, D, scale=0.5, dtype=weight_dtype or dtype, device=device)
    initial = randn(gen, B, K - 1, D, dtype=dtype, device=device) if with_initial else None
    return x, weight, bias, initial


def check_against_reference(backend, gen, x, weight, bias, initial):
    inputs = [x, weight, bias] + ([initial] if initial is not None else [])  # None: a fresh sequence
    y = assert_matches_reference(gen, backend.ops.causal_conv1d_silu, reference.causal_conv1d_silu, inputs,
                                 ["x", "weight", "bias", "initial"][:len(inputs)])
    assert y.dtype == x.dtype and y.shape == x.shape


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("with_initial", [True, False])
def test_forward_and_gradients_match_reference(backend, dtype, shape, with_initial):
    gen = generator("conv", backend.name, dtype, shape, with_initial)
    check_against_reference(backend, gen, *conv_inputs(gen, *shape, dtype, backend.device, with_initial))


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_float32_weights_with_low_precision_inputs(backend, dtype):
    gen = generator("conv-weights", backend.name, dtype)
    check_against_reference(backend, gen, *conv_inputs(gen, 2, 7, 20, 4, dtype, backend.device, True, torch.float32))


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_strided_input(backend):
    """The mLSTM layer convolves one half of its up-projection: rows with a stride of 2 D."""
    gen = generator("conv-strided", backend.name)
    x, weight, bias, initial = conv_inputs(gen, 2, 9, 24, 4, torch.float32, backend.device, True)
    wide = randn(gen, 2, 9, 48, device=backend.device)
    wide[..., :24] = x
    check_against_reference(backend, gen, wide[..., :24], weight, bias, initial)


def test_cpu_kernel_gradcheck_float64():
    gen = generator("conv-gradcheck")
    args = [t.requires_grad_(True) for t in conv_inputs(gen, 2, 5, 3, 3, torch.float64, "cpu", True)]
    assert torch.autograd.gradcheck(xlstm_cuda.ops.causal_conv1d_silu, args)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_streaming_equals_one_call(backend):
    """The layers' step form: the last K - 1 inputs carried as the next call's initial buffer."""
    gen = generator("conv-stream", backend.name)
    x, weight, bias, _ = conv_inputs(gen, 2, 10, 12, 4, torch.float32, backend.device, False)
    whole = backend.ops.causal_conv1d_silu(x, weight, bias)
    first = backend.ops.causal_conv1d_silu(x[:, :6], weight, bias)
    rest = backend.ops.causal_conv1d_silu(x[:, 6:], weight, bias, x[:, 3:6].contiguous())
    torch.testing.assert_close(torch.cat([first, rest], 1), whole)


def bad_calls():
    B, S, D, K = 2, 5, 6, 4
    x, w, b, init = torch.randn(B, S, D), torch.randn(D, K), torch.randn(D), torch.zeros(B, K - 1, D)
    return [
        ("x rank", (torch.randn(S, D), w, b, None), "x must have shape"),
        ("weight rank", (x, torch.randn(D, 1, K), b, None), "weight must have shape"),
        ("weight channels", (x, torch.randn(D + 1, K), b, None), "weight must have shape"),
        ("bias size", (x, w, torch.randn(D + 1), None), "bias must have shape"),
        ("initial length", (x, w, b, torch.zeros(B, K, D)), "initial must have shape"),
        ("initial batch", (x, w, b, torch.zeros(B + 1, K - 1, D)), "initial must have shape"),
        ("int dtype", (x.int(), w, b, None), "must be float32"),
        ("weight dtype", (x, w.double(), b, None), "weight must be"),
        ("bias dtype", (x, w, b.half(), None), "bias must be"),
        ("initial dtype", (x, w, b, init.double()), "initial must be"),
        ("empty", (torch.randn(B, 0, D), w, b, None), "is empty"),
        ("no taps", (x, torch.randn(D, 0), b, None), "K >= 1"),
    ]


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.device == "cpu"], ids=str)
@pytest.mark.parametrize("case", bad_calls(), ids=lambda c: c[0])
def test_bad_input_raises_clear_error(backend, case):
    _, args, message = case
    with pytest.raises((RuntimeError, TypeError), match=message):
        backend.ops.causal_conv1d_silu(*args)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.name != "cpu"], ids=str)
def test_cuda_kernel_width_limit(backend):
    x, w, b = torch.randn(1, 4, 8, device=backend.device), torch.randn(8, 9, device=backend.device), torch.randn(
        8, device=backend.device)
    with pytest.raises(RuntimeError, match="kernel sizes up to 8"):
        backend.ops.causal_conv1d_silu(x, w, b)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_opcheck(backend):
    gen = generator("conv-opcheck", backend.name)
    x, weight, bias, initial = conv_inputs(gen, 2, 6, 10, 4, torch.float32, backend.device, True)
    ops = getattr(torch.ops, backend.ops.namespace)
    args = tuple(t.requires_grad_(True) for t in (x, weight, bias, initial))
    torch.library.opcheck(ops.causal_conv1d_silu.default, args)
    dy = torch.randn_like(x)
    torch.library.opcheck(ops.causal_conv1d_silu_backward.default, (dy, *(t.detach() for t in args)))


def test_torch_compile_fullgraph():
    gen = generator("conv-compile")
    x, weight, bias, _ = conv_inputs(gen, 2, 7, 12, 4, torch.float32, "cpu", False)

    def fn(x, weight, bias):
        return xlstm_cuda.ops.causal_conv1d_silu(x * 2.0, weight, bias).sum()

    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    x.requires_grad_(True)
    compiled(x, weight, bias).backward()
    eager_x = x.detach().clone().requires_grad_(True)
    fn(eager_x, weight, bias).backward()
    torch.testing.assert_close(x.grad, eager_x.grad)
