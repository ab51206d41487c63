"""ops.skinny_linear (CPU only, no autograd: the decode steps' products) and the components' Linear
that dispatches to it: against a float64 product on odd shapes (every register-block remainder of
weight rows, x rows and K), bfloat16 against F.linear's own rounding, strided inputs, thread
counts, torch.compile, when the Linear takes the op, and clear errors for bad inputs."""
import pytest
import torch
import torch.nn.functional as F

from conftest import generator, randn, rel_err
from xlstm_cuda import ops
from xlstm_cuda.components import Linear, linear
from xlstm_cuda.components.linear import SKINNY_MAX_ROWS

# (rows of x, out_features, in_features): rows 1 (the GEMV path), 2-5 and 16-17 (4-row blocks and
# their remainders), 33 (past the Linear's threshold: still correct); out_features off the 4-row
# weight blocks; in_features under one vector, off the vector width, and past a 64 KiB thread share.
SHAPES = [(1, 1, 1), (1, 37, 19), (1, 130, 1031), (2, 7, 64), (3, 64, 48), (4, 9, 130), (5, 129, 257),
          (16, 100, 256), (17, 13, 33), (33, 50, 100), (1, 4099, 16)]


def reference(x, weight, bias):
    y = x.double() @ weight.double().t()
    return y + bias.double() if bias is not None else y


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_skinny_linear_matches_float64_product(shape, dtype):
    M, N, K = shape
    gen = generator("skinny", shape, dtype)
    x, weight, bias = randn(gen, M, K, dtype=dtype), randn(gen, N, K, dtype=dtype), randn(gen, N, dtype=dtype)
    bound = 1e-6 if dtype == torch.float32 else 1e-14
    for b in (bias, None):
        out = ops.skinny_linear(x, weight, b)
        assert out.shape == (M, N) and out.dtype == dtype and out.is_contiguous()
        assert rel_err(out, reference(x, weight, b)) < bound


@pytest.mark.parametrize("shape", SHAPES[:8], ids=str)
def test_skinny_linear_bfloat16_within_one_rounding(shape):
    """bfloat16 x, weight and bias, float32 products: no further from the float64 product of the same
    bfloat16 values than F.linear in bfloat16 (1.5x margin: summation orders differ) and a
    bfloat16 rounding."""
    M, N, K = shape
    gen = generator("skinny-bf16", shape)
    x, weight, bias = (randn(gen, *s, dtype=torch.bfloat16) for s in ((M, K), (N, K), (N,)))
    for b in (bias, None):
        out = ops.skinny_linear(x, weight, b)
        assert out.shape == (M, N) and out.dtype == torch.bfloat16
        exact = reference(x, weight, b)
        assert rel_err(out, exact) <= max(1.5 * rel_err(F.linear(x, weight, b), exact), 2 ** -8)


def test_skinny_linear_keeps_leading_dimensions():
    gen = generator("skinny-leading")
    x, weight = randn(gen, 2, 3, 1, 24), randn(gen, 10, 24)
    out = ops.skinny_linear(x, weight)
    assert out.shape == (2, 3, 1, 10)
    assert rel_err(out, reference(x, weight, None)) < 1e-6
    assert ops.skinny_linear(x[:0], weight).shape == (0, 3, 1, 10)


def test_skinny_linear_strided_inputs_equal_contiguous():
    """x with a row stride or a non-unit last stride, a weight whose rows are a slice of wider ones,
    a strided bias: the same bits as the contiguous call."""
    gen = generator("skinny-strided")
    x, weight, bias = randn(gen, 5, 40), randn(gen, 21, 40), randn(gen, 21)
    expected = ops.skinny_linear(x, weight, bias)
    wide_x, wide_w, wide_b = randn(gen, 5, 90), randn(gen, 21, 57), randn(gen, 42)
    wide_x[:, 10:50], wide_w[:, 3:43], wide_b[::2] = x, weight, bias
    every_other = torch.zeros(5, 80)
    every_other[:, ::2] = x
    for xs in (wide_x[:, 10:50], every_other[:, ::2]):
        torch.testing.assert_close(ops.skinny_linear(xs, wide_w[:, 3:43], wide_b[::2]), expected, rtol=0, atol=0)


def test_skinny_linear_bitwise_equal_across_thread_counts():
    """Threads own weight rows, each output is summed in one order: any thread count, the same bits."""
    gen = generator("skinny-threads")
    x, weight = randn(gen, 3, 256), randn(gen, 1500, 256)
    threads = torch.get_num_threads()
    try:
        results = []
        for count in (1, 3):
            torch.set_num_threads(count)
            results.append(ops.skinny_linear(x, weight))
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)


def test_skinny_linear_compiles_fullgraph():
    gen = generator("skinny-compile")
    x, weight, bias = randn(gen, 2, 1, 32), randn(gen, 12, 32), randn(gen, 12)
    torch._dynamo.reset()
    compiled = torch.compile(lambda a, w, b: ops.skinny_linear(a, w, b) * 2, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, weight, bias), ops.skinny_linear(x, weight, bias) * 2)
    torch.library.opcheck(torch.ops.xlstm_cuda.skinny_linear.default, (x, weight, bias))


def bad_calls():
    gen = generator("skinny-bad")
    x, weight, bias = randn(gen, 2, 8), randn(gen, 6, 8), randn(gen, 6)
    return [
        ("scalar x", dict(x=x[0, 0]), "x must have shape"),
        ("integer x", dict(x=x.long()), "x must be float32, float64 or bfloat16"),
        ("half x", dict(x=x.half(), weight=weight.half(), bias=None), "x must be float32, float64 or bfloat16"),
        ("bfloat16 weight", dict(weight=weight.bfloat16()), "weight"),
        ("weight rank", dict(weight=weight[0]), "weight must have shape"),
        ("in_features", dict(weight=weight[:, :7]), "weight must have shape"),
        ("weight dtype", dict(weight=weight.double()), "weight"),
        ("transposed weight", dict(weight=weight.t().contiguous().t()), "weight must be row-major"),
        ("empty weight", dict(weight=weight[:0], bias=None), "weight is empty"),
        ("bias shape", dict(bias=bias[:5]), "bias must have shape"),
        ("bias dtype", dict(bias=bias.double()), "bias"),
        ("meta weight", dict(weight=weight.to("meta")), "one device"),
    ], dict(x=x, weight=weight, bias=bias)


@pytest.mark.parametrize("case", [c[0] for c in bad_calls()[0]])
def test_skinny_linear_bad_inputs_raise_clear_errors(case):
    cases, args = bad_calls()
    ((_, override, message),) = [c for c in cases if c[0] == case]
    with pytest.raises(RuntimeError, match=rf"^skinny_linear: .*{message}"):
        ops.skinny_linear(**dict(args, **override))


def test_linear_takes_skinny_op_only_where_it_applies(monkeypatch):
    """Few CPU rows without autograd: the op (up to SKINNY_MAX_ROWS in float32, one row in bfloat16);
    grad mode with a parameter that needs it, more rows, two bfloat16 rows, float16, a transposed
    weight: F.linear. Both give F.linear's values, and gradients flow through the fallback."""
    gen = generator("linear-dispatch")
    layer = Linear(48, 20)
    calls = []
    skinny = ops.skinny_linear
    monkeypatch.setattr(ops, "skinny_linear", lambda *a, **k: calls.append(1) or skinny(*a, **k))
    x = randn(gen, 3, 1, 48)
    with torch.no_grad():
        y = layer(x)
        assert len(calls) == 1
        assert rel_err(y, reference(x, layer.weight, layer.bias)) < 1e-6
        layer(randn(gen, SKINNY_MAX_ROWS + 1, 48))
        linear(x, layer.weight.t().contiguous().t(), layer.bias)
        layer.to(torch.float16)(x.half())
        layer.to(torch.bfloat16)(x.bfloat16())  # three rows
        assert len(calls) == 1
        layer(x[:1].bfloat16())
        assert len(calls) == 2
        layer.float()
    y = layer(x)
    y.sum().backward()
    assert len(calls) == 2 and layer.weight.grad is not None and layer.bias.grad is not None
    layer.requires_grad_(False)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias), rtol=1e-6, atol=1e-6)
    assert len(calls) == 3  # grad mode, but nothing needs a gradient
    layer(x.clone().requires_grad_())
    assert len(calls) == 3
