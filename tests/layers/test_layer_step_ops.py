"""The layers' fused generation steps (inference fast paths, CPU only: ops.mlstm_layer_step,
ops.slstm_layer_step):
against python_ref in float64, against the composed ops in float32, step by step == forward, the
composed path kept where autograd needs it, and clear errors for bad inputs."""
import copy

import pytest
import torch
import torch.nn.functional as F

import xlstm_cuda
from conftest import assert_close, generator, randn, rel_err
from xlstm_cuda import ops
from xlstm_cuda import reference as R
from xlstm_cuda.layers import mLSTMLayer, sLSTMLayer

# (B, embedding, heads, proj_factor, qkv block, bias, conv kernel): odd batches, head dims 16, 3,
# 32, 5, 64 (inner 64 / 192 / 64 / 320 / 64), blocks 4, 3, 8, 5, 2, kernels 4, 1, 2, 3, 5.
MLSTM_CONFIGS = [(3, 32, 4, 2.0, 4, False, 4), (1, 96, 64, 2.0, 3, True, 1), (5, 40, 2, 1.3, 8, True, 2),
                 (2, 160, 64, 2.0, 5, False, 3), (7, 20, 1, 3.0, 2, True, 5)]


def make_mlstm(config, gen, dtype):
    B, E, NH, pf, block, bias, K = config
    layer = mLSTMLayer(E, num_heads=NH, proj_factor=pf, qkv_proj_blocksize=block, bias=bias, conv1d_kernel_size=K)
    with torch.no_grad():  # random parameters: the gate weights start at zero, which would hide them
        for name, p in layer.named_parameters():
            p.copy_(randn(gen, *p.shape, scale=0.3, shift=1.0 if name.startswith(("norm", "skip")) else 0.0))
    return layer.to(dtype).eval(), B, E


def reference_mlstm_step(layer, x_t, state):
    """mLSTMLayer.step from python_ref's parts (in x_t's dtype): x_t (B, E), state {"conv", "mlstm"}."""
    up = F.linear(x_t, layer.up.weight, layer.up.bias)
    x_m, z = up.chunk(2, dim=-1)
    x_conv = R.causal_conv1d_silu(x_m[:, None], layer.conv.conv.weight[:, 0], layer.conv.conv.bias,
                                  state["conv"])[:, 0]
    q, k, v = (R.headwise_linear(src, proj.weight) + (proj.bias if proj.bias is not None else 0)
               for src, proj in ((x_conv, layer.q), (x_conv, layer.k), (x_m, layer.v)))
    i, f = F.linear(torch.cat((q, k, v), -1), layer.gates.weight, layer.gates.bias).chunk(2, dim=-1)
    B, NH = x_t.shape[0], layer.num_heads
    heads = [t.view(B, NH, -1) for t in (q, k, v)]
    h, cell_state = R.mlstm_step(*heads, i, f, state["mlstm"], layer.cell.eps)
    y = F.linear(R.mlstm_output_gate(h, x_conv, z, layer.norm.weight, layer.skip, layer.norm.eps), layer.down.weight,
                 layer.down.bias)
    buffer = torch.cat((state["conv"], x_m[:, None]), 1)[:, 1:]
    return y, {"conv": buffer, "mlstm": cell_state}


def prefilled_state(layer, gen, B, E, dtype, tokens=5):
    """A state from forward over a few random tokens (C, n, m and the buffer all non-trivial)."""
    with torch.no_grad():
        return layer(randn(gen, B, tokens, E, dtype=dtype))[1]


def state_tensors(state):
    return [state["conv"], *state["mlstm"]]


@pytest.mark.parametrize("config", MLSTM_CONFIGS, ids=str)
def test_mlstm_fused_step_matches_reference_float64(config):
    gen = generator("mlstm-fused-step-ref", config)
    layer, B, E = make_mlstm(config, gen, torch.float64)
    state = prefilled_state(layer, gen, B, E, torch.float64)
    x_t = randn(gen, B, E, dtype=torch.float64)
    with torch.no_grad():
        y, new_state = layer.step(x_t, state)
        y_ref, ref_state = reference_mlstm_step(layer, x_t, state)
    assert y.dtype == torch.float64 and new_state["conv"].shape == ref_state["conv"].shape
    for name, out, ref in zip(("y", "conv", "C", "n", "m"), [y, *state_tensors(new_state)],
                              [y_ref, *state_tensors(ref_state)]):
        if out.numel():
            assert_close(name, out, ref)


@pytest.mark.parametrize("config", MLSTM_CONFIGS, ids=str)
def test_mlstm_fused_step_equals_composed_float32(config):
    """The fused op against the composed ops' step (the path autograd takes), from a fresh state
    and from a prefilled one: outputs and state in the same layout and dtypes, each within the
    spec's float32 bound of the float64 step (or 2x the composed ops' error, where that is larger)."""
    gen = generator("mlstm-fused-step-composed", config)
    layer, B, E = make_mlstm(config, gen, torch.float32)
    layer64 = copy.deepcopy(layer).double()
    for state in (None, prefilled_state(layer, gen, B, E, torch.float32)):
        x_t = randn(gen, B, E)
        with torch.no_grad():
            y, fused_state = layer.step(x_t, state)
            state64 = None if state is None else {"conv": state["conv"].double(),
                                                   "mlstm": tuple(t.double() for t in state["mlstm"])}
            y64, state64 = layer64.step(x_t.double(), state64)
        with torch.enable_grad():
            y_ref, composed_state = layer.step(x_t.requires_grad_(), state)
        assert y_ref.requires_grad  # the composed path ran
        assert fused_state.keys() == composed_state.keys()
        for name, out, composed, truth in zip(("y", "conv", "C", "n", "m"), [y, *state_tensors(fused_state)],
                                              [y_ref, *state_tensors(composed_state)],
                                              [y64, *state_tensors(state64)]):
            assert out.shape == composed.shape and out.dtype == composed.dtype, name
            if out.numel():
                assert_close(name, out, truth, composed.detach())


def mlstm_op_args(dtype=torch.float32, B=3, E=32, NH=4, block=4, bias=True, K=4):
    layer, _, _ = make_mlstm((B, E, NH, 2.0, block, bias, K), generator("mlstm-op-args"), dtype)
    state = prefilled_state(layer, generator("mlstm-op-args-state"), B, E, dtype)
    args = dict(up=layer.up(randn(generator("mlstm-op-args-x"), B, E, dtype=dtype)).detach(), conv_buffer=state["conv"],
                conv_weight=layer.conv.conv.weight, conv_bias=layer.conv.conv.bias, q_weight=layer.q.weight,
                k_weight=layer.k.weight, v_weight=layer.v.weight, q_bias=layer.q.bias, k_bias=layer.k.bias,
                v_bias=layer.v.bias, gate_weight=layer.gates.weight, gate_bias=layer.gates.bias, state=state["mlstm"],
                norm_weight=layer.norm.weight, skip=layer.skip)
    return {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in args.items()}


def test_mlstm_layer_step_strided_inputs_equal_contiguous():
    """Views are read as their values: rows apart wider than they are, a last stride of 2,
    transposed copies; bit for bit the contiguous inputs' results."""
    args = mlstm_op_args()
    up = args["up"]
    variants = [dict(args, up=torch.cat((up, torch.zeros_like(up)), 1)[:, :up.shape[1]],
                     conv_buffer=args["conv_buffer"].transpose(1, 2).contiguous().transpose(1, 2),
                     gate_weight=args["gate_weight"].t().contiguous().t(),
                     state=tuple(t.transpose(-1, -2).contiguous().transpose(-1, -2) for t in args["state"])),
                dict(args, up=torch.stack((up, up), -1).flatten(1)[:, ::2])]
    with torch.no_grad():
        expected = ops.mlstm_layer_step(**args)
        for variant in variants:
            assert not variant["up"].is_contiguous()
            got = ops.mlstm_layer_step(**variant)
            torch.testing.assert_close([got[0], got[1], *got[2]], [expected[0], expected[1], *expected[2]],
                                       rtol=0, atol=0)


def bad_mlstm_calls():
    args = mlstm_op_args()
    B, D2 = args["up"].shape
    D = D2 // 2
    C, n, m = args["state"]
    return [
        ("up rank", dict(up=args["up"][None]), "up must have shape"),
        ("up odd width", dict(up=args["up"][:, 1:]), "up must have shape"),
        ("up dtype", dict(up=args["up"].half()), "up must be float32 or float64"),
        ("up int", dict(up=args["up"].int()), "up must be float32"),
        ("conv_weight shape", dict(conv_weight=args["conv_weight"][:-1]), "conv_weight must have shape"),
        ("conv_buffer batch", dict(conv_buffer=args["conv_buffer"][1:]), "conv_buffer must have shape"),
        ("conv_buffer dtype", dict(conv_buffer=args["conv_buffer"].double()), "conv_buffer must be Float"),
        ("conv_bias", dict(conv_bias=args["conv_bias"][1:]), "conv_bias must have shape"),
        ("q_weight block", dict(q_weight=torch.zeros(D // 3, 3, 3) if D % 3 else torch.zeros(1, 7, 7)),
         "q_weight's block size"),
        ("k_weight", dict(k_weight=args["k_weight"][1:]), "k_weight must have shape"),
        ("v_weight dtype", dict(v_weight=args["v_weight"].double()), "v_weight must be Float"),
        ("biases all or none", dict(k_bias=None), "all or none"),
        ("q_bias", dict(q_bias=args["q_bias"][1:]), "q_bias must have shape"),
        ("gate_weight rows", dict(gate_weight=args["gate_weight"][1:]), "gate_weight must have 2 \\* NH rows"),
        ("gate_weight width", dict(gate_weight=args["gate_weight"][:, 1:]), "gate_weight must have shape"),
        ("gate_bias", dict(gate_bias=args["gate_bias"][1:]), "gate_bias must have shape"),
        ("state C", dict(state=(C[1:], n, m)), "state C must have shape"),
        ("state n dtype", dict(state=(C, n.double(), m)), "state n must be Float"),
        ("state m", dict(state=(C, n, m[:, 1:])), "state m must have shape"),
        ("state tuple", dict(state=(C, n)), "state must be a tuple"),
        ("norm_weight", dict(norm_weight=args["norm_weight"][1:]), "norm_weight must have shape"),
        ("skip", dict(skip=args["skip"][:, None]), "skip must have shape"),
        ("norm_eps", dict(norm_eps=-1.0), "norm_eps must be finite"),
        ("eps", dict(eps=float("nan")), "eps must be finite"),
        ("empty batch", dict(up=args["up"][:0]), "up is empty"),
        ("meta state", dict(state=(C.to("meta"), n, m)), "one device"),
    ], args


@pytest.mark.parametrize("case", [c[0] for c in bad_mlstm_calls()[0]])
def test_mlstm_layer_step_bad_inputs_raise_clear_errors(case):
    cases, args = bad_mlstm_calls()
    ((_, override, message),) = [c for c in cases if c[0] == case]
    with pytest.raises((RuntimeError, TypeError), match=rf"^mlstm_layer_step: .*{message}"):
        ops.mlstm_layer_step(**dict(args, **override))


@pytest.mark.parametrize("name", ["mlstm_layer_step", "slstm_layer_step"])
def test_layer_step_op_is_registered_with_a_fake(name):
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"xlstm_cuda::{name}", "Meta")
    assert name in xlstm_cuda.ops.__all__


# sLSTM ------------------------------------------------------------------------------------------

# (B, embedding, heads, conv kernel): head dims 8, 5, 3, 16, 12; kernels 4, 0 (no conv), 1, 2, 3.
SLSTM_CONFIGS = [(3, 32, 4, 4), (1, 15, 3, 0), (5, 9, 3, 1), (2, 32, 2, 2), (9, 24, 2, 3)]


def make_slstm(config, gen, dtype):
    B, E, NH, K = config
    layer = sLSTMLayer(E, num_heads=NH, conv1d_kernel_size=K)
    with torch.no_grad():  # random parameters: R starts at zero, which would hide the recurrence
        for name, p in layer.named_parameters():
            p.copy_(randn(gen, *p.shape, scale=0.3, shift=1.0 if name.startswith("norm") else 0.0))
    return layer.to(dtype).eval(), B, E


def reference_slstm_step(layer, x_t, state):
    """sLSTMLayer.step from python_ref's parts (in x_t's dtype)."""
    B, E = x_t.shape
    NH, DH = layer.num_heads, layer.head_dim
    x_conv = x_t if layer.conv is None else R.causal_conv1d_silu(
        x_t[:, None], layer.conv.conv.weight[:, 0], layer.conv.conv.bias, state.get("conv"))[:, 0]
    sources = torch.stack((x_conv.view(B, NH, DH), x_t.view(B, NH, DH)), dim=2).flatten(1)
    x_gates = R.headwise_linear(sources, layer.gate_weight.reshape(2 * NH, 2 * DH, DH))
    h, cell_state = R.slstm(x_gates.view(B, 1, NH, 4, DH), layer.cell.R, layer.cell.b, state["slstm"])
    y = F.layer_norm(h[:, 0], (DH,), eps=layer.norm.eps).flatten(-2) * layer.norm.weight
    new_state = {"slstm": cell_state}
    if layer.conv is not None:
        new_state["conv"] = torch.cat((state["conv"], x_t[:, None]), 1)[:, 1:]
    return y, new_state


def slstm_state_tensors(state):
    return ([state["conv"]] if "conv" in state else []) + list(state["slstm"])


@pytest.mark.parametrize("config", SLSTM_CONFIGS, ids=str)
def test_slstm_fused_step_matches_reference_float64(config):
    gen = generator("slstm-fused-step-ref", config)
    layer, B, E = make_slstm(config, gen, torch.float64)
    state = prefilled_state(layer, gen, B, E, torch.float64)
    x_t = randn(gen, B, E, dtype=torch.float64)
    with torch.no_grad():
        y, new_state = layer.step(x_t, state)
        y_ref, ref_state = reference_slstm_step(layer, x_t, state)
    assert new_state.keys() == ref_state.keys()
    for j, (out, ref) in enumerate(zip([y, *slstm_state_tensors(new_state)], [y_ref, *slstm_state_tensors(ref_state)])):
        assert out.shape == ref.shape and out.dtype == torch.float64
        if out.numel():
            assert_close(f"output {j}", out, ref)


@pytest.mark.parametrize("config", SLSTM_CONFIGS, ids=str)
def test_slstm_fused_step_equals_composed_float32(config):
    gen = generator("slstm-fused-step-composed", config)
    layer, B, E = make_slstm(config, gen, torch.float32)
    layer64 = copy.deepcopy(layer).double()
    for state in (None, prefilled_state(layer, gen, B, E, torch.float32)):
        x_t = randn(gen, B, E)
        with torch.no_grad():
            y, fused_state = layer.step(x_t, state)
            state64 = None if state is None else {k: v.double() if isinstance(v, torch.Tensor) else
                                                  tuple(t.double() for t in v) for k, v in state.items()}
            y64, state64 = layer64.step(x_t.double(), state64)
        with torch.enable_grad():
            y_ref, composed_state = layer.step(x_t.requires_grad_(), state)
        assert y_ref.requires_grad  # the composed path ran
        assert fused_state.keys() == composed_state.keys()
        for j, (out, composed, truth) in enumerate(zip([y, *slstm_state_tensors(fused_state)],
                                                       [y_ref, *slstm_state_tensors(composed_state)],
                                                       [y64, *slstm_state_tensors(state64)])):
            assert out.shape == composed.shape and out.dtype == composed.dtype, j
            if out.numel():
                assert_close(f"output {j}", out, truth, composed.detach())


def slstm_op_args(dtype=torch.float32, config=(3, 32, 4, 4)):
    layer, B, E = make_slstm(config, generator("slstm-op-args"), dtype)
    state = prefilled_state(layer, generator("slstm-op-args-state"), B, E, dtype)
    args = dict(x=randn(generator("slstm-op-args-x"), B, E, dtype=dtype), conv_buffer=state.get("conv"),
                conv_weight=layer.conv.conv.weight if layer.conv else None,
                conv_bias=layer.conv.conv.bias if layer.conv else None, gate_weight=layer.gate_weight,
                R=layer.cell.R, b=layer.cell.b, state=state["slstm"], norm_weight=layer.norm.weight)
    return {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in args.items()}


def test_slstm_layer_step_strided_inputs_equal_contiguous():
    args = slstm_op_args()
    x = args["x"]
    variants = [dict(args, x=torch.cat((x, x), 1)[:, :x.shape[1]],
                     conv_buffer=args["conv_buffer"].transpose(1, 2).contiguous().transpose(1, 2),
                     state=tuple(t.transpose(-1, -2).contiguous().transpose(-1, -2) for t in args["state"])),
                dict(args, x=torch.stack((x, x), -1).flatten(1)[:, ::2])]
    with torch.no_grad():
        expected = ops.slstm_layer_step(**args)
        for variant in variants:
            assert not variant["x"].is_contiguous()
            got = ops.slstm_layer_step(**variant)
            torch.testing.assert_close([got[0], got[1], *got[2]], [expected[0], expected[1], *expected[2]],
                                       rtol=0, atol=0)


def bad_slstm_calls():
    args = slstm_op_args()
    h, c, n, m = args["state"]
    return [
        ("x rank", dict(x=args["x"][None]), "x must have shape"),
        ("x dtype", dict(x=args["x"].bfloat16()), "x must be float32 or float64"),
        ("gate_weight heads", dict(gate_weight=args["gate_weight"][1:]), "NH \\* DH = D"),
        ("gate_weight gates", dict(gate_weight=args["gate_weight"][:, 1:]), "gate_weight must have shape"),
        ("R", dict(R=args["R"][:, 1:]), "R must have shape"),
        ("b dtype", dict(b=args["b"].double()), "b must be Float"),
        ("state h", dict(state=(h[1:], c, n, m)), "state h must have shape"),
        ("state m dtype", dict(state=(h, c, n, m.double())), "state m must be Float"),
        ("state tuple", dict(state=(h, c, n)), "state must be a tuple"),
        ("conv all or none", dict(conv_bias=None), "all or none"),
        ("conv_weight", dict(conv_weight=args["conv_weight"][1:]), "conv_weight must have shape"),
        ("conv_buffer", dict(conv_buffer=args["conv_buffer"][:, 1:]), "conv_buffer must have shape"),
        ("norm_weight", dict(norm_weight=args["norm_weight"][1:]), "norm_weight must have shape"),
        ("norm_eps", dict(norm_eps=float("inf")), "norm_eps must be finite"),
        ("empty batch", dict(x=args["x"][:0]), "x is empty"),
        ("meta state", dict(state=(h, c.to("meta"), n, m)), "one device"),
    ], args


@pytest.mark.parametrize("case", [c[0] for c in bad_slstm_calls()[0]])
def test_slstm_layer_step_bad_inputs_raise_clear_errors(case):
    cases, args = bad_slstm_calls()
    ((_, override, message),) = [c for c in cases if c[0] == case]
    with pytest.raises((RuntimeError, TypeError), match=rf"^slstm_layer_step: .*{message}"):
        ops.slstm_layer_step(**dict(args, **override))


@pytest.mark.parametrize("name", ["mlstm_layer_step", "slstm_layer_step"])
def test_layer_step_ops_compile_fullgraph(name):
    """torch.compile(fullgraph=True) traces the fused steps through their fake implementations and
    computes what eager mode does."""
    if name == "mlstm_layer_step":
        layer, B, E = make_mlstm(MLSTM_CONFIGS[0], generator("compile", name), torch.float32)
    else:
        layer, B, E = make_slstm(SLSTM_CONFIGS[0], generator("compile", name), torch.float32)
    x_t = randn(generator("compile-x", name), B, E)
    with torch.no_grad():
        state = layer.step(x_t)[1]
        eager = layer.step(x_t, state)
        torch._dynamo.reset()
        compiled = torch.compile(layer.step, fullgraph=True, backend="aot_eager")(x_t, state)
    torch.testing.assert_close(compiled, eager)


@pytest.mark.parametrize("name", ["mlstm_layer_step", "slstm_layer_step"])
def test_layer_step_ops_bitwise_equal_across_thread_counts(name):
    """Threads own batch rows (mLSTM) or heads (sLSTM): any thread count gives the same bits."""
    args = mlstm_op_args(B=5) if name == "mlstm_layer_step" else slstm_op_args(config=(5, 32, 4, 4))
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 3):
            torch.set_num_threads(count)
            with torch.no_grad():
                y, buffer, state = getattr(ops, name)(**args)
            results.append([y, buffer, *state])
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)


# Both layers: token by token through the fused step against forward, and when the fused op runs.
LAYERS = {"mlstm": (make_mlstm, MLSTM_CONFIGS, state_tensors, "mlstm_layer_step"),
          "slstm": (make_slstm, SLSTM_CONFIGS, slstm_state_tensors, "slstm_layer_step")}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind, config", [(kind, c) for kind, spec in LAYERS.items() for c in spec[1][:3]], ids=str)
def test_fused_steps_equal_forward(kind, config, dtype):
    make, _, tensors_of, _ = LAYERS[kind]
    gen = generator(f"{kind}-fused-steps-forward", config, dtype)
    layer, B, E = make(config, gen, dtype)
    x = randn(gen, B, 9, E, dtype=dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    with torch.no_grad():
        y, state = layer(x)
        step_state, ys = None, []
        for t in range(x.shape[1]):
            y_t, step_state = layer.step(x[:, t], step_state)
            ys.append(y_t)
    # Relative over the tensor: a 3-wide head's norm amplifies single roundings.
    assert rel_err(torch.stack(ys, 1), y) < (1e-5 if dtype == torch.float32 else 1e-10)
    for a, b in zip(tensors_of(step_state), tensors_of(state)):
        torch.testing.assert_close(a, b, **tol)


@pytest.mark.parametrize("kind", LAYERS)
def test_step_takes_fused_op_only_without_autograd(kind, monkeypatch):
    make, configs, _, op_name = LAYERS[kind]
    gen = generator(f"{kind}-fused-step-dispatch")
    layer, B, E = make(configs[0], gen, torch.float32)
    calls = []
    fused = getattr(ops, op_name)
    monkeypatch.setattr(ops, op_name, lambda *a, **k: calls.append(1) or fused(*a, **k))
    x_t = randn(gen, B, E)
    with torch.no_grad():
        layer.step(x_t)
    assert len(calls) == 1
    y, _ = layer.step(x_t)  # grad mode, parameters requiring grad: the composed ops, differentiable
    y.sum().backward()
    assert len(calls) == 1 and all(p.grad is not None for p in layer.parameters())
    layer.requires_grad_(False)
    layer.step(x_t)  # grad mode, but nothing requires grad
    assert len(calls) == 2
    layer.step(x_t.requires_grad_())
    assert len(calls) == 2
