"""The nn modules: step-by-step generation equals the sequence forward; gradients reach every
parameter; the layer's recurrence is the op's."""
import copy

import pytest
import torch

from conftest import generator, randn, rel_err
from xlstm_cuda.layers import CausalConvSiLU, HeadwiseLinear, mLSTMLayer, powerlaw_forget_bias, sLSTMCell, sLSTMLayer


def randomise(module, gen):
    """Random parameters (R starts at zero, which would hide the recurrence); norm scales near 1."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(randn(gen, *p.shape, scale=0.3, shift=1.0 if name.startswith("norm") else 0.0))


def assert_step_equals_forward(layer, x, cell: str, rtol: float):
    """Token-by-token step() reproduces forward() over the sequence, outputs and cell state."""
    y, state = layer(x)
    step_state, ys = None, []
    for t in range(x.shape[1]):
        y_t, step_state = layer.step(x[:, t], step_state)
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), y, rtol=rtol, atol=1e-5)
    for a, b in zip(step_state[cell], state[cell]):
        torch.testing.assert_close(a, b, rtol=rtol, atol=1e-5)
    return y, state


@pytest.mark.parametrize("conv", [4, 0])
def test_slstm_layer_step_equals_forward(conv):
    gen = generator("slstm-layer-step", conv)
    layer = sLSTMLayer(24, num_heads=3, conv1d_kernel_size=conv)
    randomise(layer, gen)
    assert_step_equals_forward(layer, randn(gen, 2, 11, 24), "slstm", rtol=1e-5)


def assert_prefill_then_step(layer, x, prefill: int, rtol: float):
    """forward() over the first tokens, then step() token by token, reproduces one forward()."""
    y_full, _ = layer(x)
    _, state = layer(x[:, :prefill])
    for t in range(prefill, x.shape[1]):
        y_t, state = layer.step(x[:, t], state)
        torch.testing.assert_close(y_t, y_full[:, t], rtol=rtol, atol=1e-5)
    return y_full


def test_slstm_layer_prefill_then_step():
    gen = generator("slstm-layer-prefill")
    layer = sLSTMLayer(16, num_heads=2)
    randomise(layer, gen)
    assert_prefill_then_step(layer, randn(gen, 3, 9, 16), 6, rtol=1e-5)


def test_slstm_layer_gradients_reach_every_parameter():
    gen = generator("slstm-layer-grad")
    layer = sLSTMLayer(16, num_heads=4)
    randomise(layer, gen)
    y, _ = layer(randn(gen, 2, 5, 16))
    (y * randn(gen, *y.shape)).sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_slstm_cell_initialisation():
    cell = sLSTMCell(num_heads=2, head_dim=5)
    assert torch.equal(cell.R, torch.zeros_like(cell.R))
    forget = powerlaw_forget_bias(2, 5)
    torch.testing.assert_close(cell.b[:, 1], forget)
    assert forget[0, 0].item() == pytest.approx(5.0) and forget[0, -1].item() == pytest.approx(-7.0)
    assert torch.equal(cell.b[:, [0, 2, 3]], torch.zeros(2, 3, 5))


def test_headwise_linear_is_block_diagonal():
    gen = generator("headwise")
    layer = HeadwiseLinear(12, 4)
    randomise(layer, gen)
    x = randn(gen, 5, 12)
    dense = torch.block_diag(*layer.weight.detach())
    torch.testing.assert_close(layer(x), x @ dense.T)


def test_causal_conv_is_causal_and_streams():
    gen = generator("conv")
    conv = CausalConvSiLU(6, 4)
    randomise(conv, gen)
    x = randn(gen, 2, 10, 6)
    y, _ = conv(x)
    padded = torch.nn.functional.pad(x.transpose(1, 2), (3, 0))  # the convolution it stands for
    torch.testing.assert_close(y, torch.nn.functional.silu(conv.conv(padded)).transpose(1, 2))
    x2 = x.clone()
    x2[:, 7:] += 1.0
    y2, _ = conv(x2)
    torch.testing.assert_close(y[:, :7], y2[:, :7])
    ya, buf = conv(x[:, :4])
    yb, _ = conv(x[:, 4:], buf)
    torch.testing.assert_close(torch.cat([ya, yb], 1), y)


def test_bad_layer_configuration():
    with pytest.raises(ValueError, match="not divisible"):
        sLSTMLayer(30, num_heads=4)
    with pytest.raises(ValueError, match="unknown bias_init"):
        sLSTMCell(2, 4, bias_init="bogus")


def test_mlstm_layer_step_equals_forward():
    gen = generator("mlstm-layer-step")
    layer = mLSTMLayer(32, num_heads=4, chunk_size=4)
    randomise(layer, gen)
    x = randn(gen, 2, 11, 32)
    y, state = assert_step_equals_forward(layer, x, "mlstm", rtol=1e-4)
    assert y.shape == x.shape and state["mlstm"][0].shape == (2, 4, 16, 16)


def test_mlstm_layer_prefill_then_step_and_gradients():
    gen = generator("mlstm-layer-prefill")
    layer = mLSTMLayer(16, num_heads=2, chunk_size=8)
    randomise(layer, gen)
    y_full = assert_prefill_then_step(layer, randn(gen, 3, 20, 16), 13, rtol=1e-4)
    (y_full * randn(gen, *y_full.shape)).sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_mlstm_layer_widths_and_initialisation():
    layer = mLSTMLayer(100, num_heads=4)
    assert layer.inner == 256  # 2 * 100 rounded up to a multiple of 64
    torch.testing.assert_close(layer.gates.bias[4:].detach(), torch.linspace(3.0, 6.0, 4))  # forget gates
    assert torch.equal(layer.gates.weight, torch.zeros_like(layer.gates.weight))
    with pytest.raises(ValueError, match="not divisible"):
        mLSTMLayer(64, num_heads=5)


@pytest.mark.parametrize("make", [lambda: sLSTMLayer(32, num_heads=4), lambda: mLSTMLayer(32, num_heads=2, chunk_size=4)],
                         ids=["sLSTMLayer", "mLSTMLayer"])
def test_layers_compile_without_graph_breaks(make):
    """torch.compile(fullgraph=True) traces a whole layer, forward and backward, through the ops'
    fake implementations and autograd formulas, and computes what eager mode does: both within the
    spec's float32 bounds of the layer run in float64. (Not element by element against each other:
    Inductor fuses and orders the float32 arithmetic around the ops its own way, and an element of dx
    that is small by cancellation then differs between the two by more than any fixed tolerance; one
    of 448 did by 5e-4 relative, both evaluations 2e-6 from float64 in norm.)"""
    gen = generator("layer-compile", make().__class__.__name__)
    layer = make()
    randomise(layer, gen)
    x = randn(gen, 2, 7, 32)
    upstream = randn(gen, 2, 7, 32)

    def loss(module_call, dtype=torch.float32):
        x_in = x.to(dtype, copy=True).requires_grad_()
        y = module_call(x_in)
        (y * upstream.to(dtype)).sum().backward()
        return y.detach(), x_in.grad

    layer64 = copy.deepcopy(layer).double()
    y64, dx64 = loss(lambda t: layer64(t)[0], torch.float64)
    y_eager, dx_eager = loss(lambda t: layer(t)[0])
    # Compiled afresh: Inductor's on-disk caches do not key on the ops' fake implementations, so a
    # cache written before a fake changed would replay stale stride assertions.
    with torch._inductor.config.patch(force_disable_caches=True):
        y_compiled, dx_compiled = loss(torch.compile(lambda t: layer(t)[0], fullgraph=True))
    for mode, y, dx in (("eager", y_eager, dx_eager), ("compiled", y_compiled, dx_compiled)):
        assert rel_err(y, y64) < 1e-5, f"{mode} y: error {rel_err(y, y64):.3g}"
        assert rel_err(dx, dx64) < 1e-4, f"{mode} dx: error {rel_err(dx, dx64):.3g}"
