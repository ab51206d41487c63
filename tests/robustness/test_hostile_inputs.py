"""Hostile inputs for every op and both layers (issue #14): gate pre-activations of +-1e4, +-inf and
NaN, q, k, v of magnitude 1e4, S = 65536 (memory: test_memory.py), and the NaN / inf policy of
README.md ("NaN and inf"):

- a NaN or infinity in batch row b of an input reaches row b's outputs and input gradients at most,
  never another row's (forward and backward, CPU and emulated CUDA kernels); parameter gradients
  (R, b, the conv and projection weights, ...) sum over rows and take it up;
- the gate limits the math defines are honoured: mLSTM i = -inf (the token is not written),
  f = +inf (nothing forgotten), f = -inf (everything forgotten); sLSTM i = -inf (also on a first
  step, where the stabiliser makes i' = 1 whatever raw_i), f = +-inf;
- i = +inf has no stabilised state (m = +inf): NaN from that row's next step on.
"""
import pytest
import torch

import xlstm_cuda
from xlstm_cuda import reference
from conftest import BACKENDS, generator

INF = float("inf")


def randn(gen, *shape, scale=1.0, shift=0.0):
    return torch.randn(*shape, generator=gen, dtype=torch.float64) * scale + shift


# Every op: its inputs for B batch rows (float64, converted per test) and, per input, the dimension
# that is the batch (None: a parameter, shared by the rows). Outputs all have the batch first.
def step_case(gen, B):
    return [randn(gen, B, 2, 8), randn(gen, B, 2, 8), randn(gen, B, 2, 12), randn(gen, B, 2, scale=2.0),
            randn(gen, B, 2, shift=2.0), randn(gen, B, 2, 8, 12), randn(gen, B, 2, 8), randn(gen, B, 2)], [0] * 8


def chunkwise_case(gen, B):
    S = 11
    return [randn(gen, B, 2, S, 8), randn(gen, B, 2, S, 8), randn(gen, B, 2, S, 12), randn(gen, B, 2, S, scale=2.0),
            randn(gen, B, 2, S, shift=2.0), randn(gen, B, 2, 8, 12), randn(gen, B, 2, 8), randn(gen, B, 2)], [0] * 8


def slstm_case(gen, B):
    DH = 8
    return [randn(gen, B, 5, 2, 4, DH, scale=2.0), randn(gen, 2, DH, 4, DH, scale=DH ** -0.5), randn(gen, 2, 4, DH),
            randn(gen, B, 2, DH), randn(gen, B, 2, DH), randn(gen, B, 2, DH).abs() + 0.5,
            randn(gen, B, 2, DH)], [0, None, None, 0, 0, 0, 0]


def conv_case(gen, B):
    x, initial = randn(gen, B, 9, 12), randn(gen, B, 3, 12)
    return [x, randn(gen, 12, 4, scale=0.5), randn(gen, 12), initial], [0, None, None, 0]


def headwise_case(gen, B):  # 4 x 4 blocks, 16 features: the CPU kernel's vector path for the layers' blocks
    return [randn(gen, B, 5, 16), randn(gen, 4, 4, 4, scale=0.5)], [0, None]


def gate_case(gen, B):
    return [randn(gen, B, 5, 3, 4, scale=2.0), randn(gen, B, 5, 12), randn(gen, B, 5, 12), randn(gen, 12, shift=1.0),
            randn(gen, 12)], [0, 0, 0, None, None]


def call_step(ops, x):
    return ops.mlstm_step(*x[:5], tuple(x[5:]))


def call_chunkwise(ops, x):
    return ops.mlstm_chunkwise(*x[:5], tuple(x[5:]), chunk_size=4)


def call_slstm(ops, x):
    return ops.slstm(*x[:3], tuple(x[3:]))


OPS = {
    "mlstm_step": (step_case, call_step),
    "mlstm_chunkwise": (chunkwise_case, call_chunkwise),
    "slstm": (slstm_case, call_slstm),
    "causal_conv1d_silu": (conv_case, lambda ops, x: ops.causal_conv1d_silu(*x)),
    "headwise_linear": (headwise_case, lambda ops, x: ops.headwise_linear(*x)),
    "mlstm_output_gate": (gate_case, lambda ops, x: ops.mlstm_output_gate(*x)),
}


def flat_outputs(out):
    return [t for t in torch.utils._pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]


def forward_backward(call, inputs, dtypes, device, upstream_gen_seed):
    """Outputs and gradients of every input (states: float32; the last input of slstm's state, m,
    takes no gradient: the stabiliser is a constant)."""
    leaves = [t.to(device=device, dtype=dt).requires_grad_(True) for t, dt in zip(inputs, dtypes)]
    outs = flat_outputs(call(leaves))
    gen = torch.Generator().manual_seed(upstream_gen_seed)
    upstream = [torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o) for o in outs]
    grads = torch.autograd.grad(outs, leaves, upstream, allow_unused=True)
    return outs, grads


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("op", list(OPS))
def test_bad_value_in_one_row_stays_in_that_row(backend, op):
    make, call = OPS[op]
    B = 3
    gen = generator("row isolation", op)
    inputs, batch_dims = make(gen, B)
    bound = lambda x: call(backend.ops, x)  # noqa: E731
    dtypes = [torch.float32] * len(inputs)
    clean_outs, clean_grads = forward_backward(bound, inputs, dtypes, backend.device, 1)
    bad_values = (float("nan"), INF, -INF)
    for index, batch_dim in enumerate(batch_dims):
        if batch_dim is None:
            continue
        # The emulation (slow under the sanitizers) takes one bad value per input, in turn.
        for bad in bad_values if backend.name == "cpu" else bad_values[index % 3:index % 3 + 1]:
            poisoned = [t.clone() for t in inputs]
            poisoned[index].select(batch_dim, 1).view(-1)[0] = bad  # row 1 of 3
            outs, grads = forward_backward(bound, poisoned, dtypes, backend.device, 1)
            where = f"{op}: {bad} in input {index}, row 1"
            for o, c in zip(outs, clean_outs):
                for row in (0, 2):
                    assert torch.equal(o[row], c[row]), f"{where}: output changed in row {row}"
            for g, c, dim in zip(grads, clean_grads, batch_dims):
                if g is None or dim is None:  # parameters: the sum over rows takes the bad value up
                    continue
                for row in (0, 2):
                    assert torch.equal(g.select(dim, row), c.select(dim, row)), f"{where}: gradient, row {row}"


def close(out, ref, tol):
    """Elementwise |out - ref| <= tol * (1 + |ref|), both finite."""
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    assert torch.isfinite(out).all() and torch.isfinite(ref).all()
    err = ((out - ref).abs() / (1 + ref.abs())).max().item()
    assert err < tol, f"error {err:.3g}"


def mlstm_reference(q, k, v, i, f, state):
    return reference.mlstm_recurrent(q, k, v, i, f, state)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("gate,value", [("i", -INF), ("f", INF), ("f", -INF)])
def test_mlstm_gate_limits(backend, gate, value):
    """A token with i = -inf writes nothing, f = +inf forgets nothing, f = -inf forgets everything:
    finite and equal to the step form in float64 (python_ref), for the chunkwise and the step op."""
    gen = generator("mlstm gate limit", gate, value)
    inputs, _ = chunkwise_case(gen, 2)
    q, k, v, i, f = inputs[:5]
    state = tuple(inputs[5:])
    x = {"i": i, "f": f}[gate]
    x[:, :, 3] = value  # token 3: inside the first chunk of 4
    x[0, 1, 9] = value  # and in the ragged last chunk of one row
    h64, st64 = mlstm_reference(q, k, v, i, f, state)
    args = [t.float().to(backend.device) for t in (q, k, v, i, f)]
    st32 = tuple(t.float().to(backend.device) for t in state)
    h, st = backend.ops.mlstm_chunkwise(*args, st32, chunk_size=4)
    close(h, h64, 1e-4)
    for a, b in zip(st, st64):
        close(a, b, 1e-4)
    leaves = [t.requires_grad_(True) for t in args]
    h, st = backend.ops.mlstm_chunkwise(*leaves, st32, chunk_size=4)
    grads = torch.autograd.grad(h.sum() + st[0].sum(), leaves)
    assert all(torch.isfinite(g).all() for g in grads), "non-finite gradients"
    st = st32
    for t in range(q.shape[2]):
        h_t, st = backend.ops.mlstm_step(*(a[:, :, t] for a in args), st)
        close(h_t, h64[:, :, t], 1e-4)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("gate,value", [("i", -INF), ("f", INF), ("f", -INF)])
def test_slstm_gate_limits(backend, gate, value):
    """sLSTM raw_i = -inf (the first step too, from the zero state), raw_f = +-inf: finite, and equal
    to python_ref in float64 at a finite stand-in for the infinity (python_ref itself makes NaN of
    exp(-inf - -inf) on a first step)."""
    gen = generator("slstm gate limit", gate, value)
    x, R, b = slstm_case(gen, 2)[0][:3]
    slot = {"i": 0, "f": 1}[gate]
    x[:, 0, :, slot, 1] = value
    x[:, 3, 1, slot] = value
    stand_in = x.clone()
    stand_in[stand_in == value] = 1e30 if value > 0 else -1e30
    h64, st64 = reference.slstm(stand_in, R, b)
    leaves = [t.float().requires_grad_(True) for t in (x, R, b)]
    h, st = backend.ops.slstm(*leaves)
    close(h, h64, 1e-4)
    for a, ref in zip(st[:3], st64[:3]):
        close(a, ref, 1e-4)
    grads = torch.autograd.grad(h.sum() + st[1].sum(), leaves)
    assert all(torch.isfinite(g).all() for g in grads), "non-finite gradients"


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_huge_gates_and_inputs_stay_finite(backend):
    """Gates of +-1e4 (random signs) with q, k, v of magnitude 1e4: finite outputs and gradients from
    both cells, as the stabiliser promises, and close to python_ref in float64."""
    gen = generator("huge inputs")
    for op in ("mlstm_step", "mlstm_chunkwise", "slstm"):
        make, call = OPS[op]
        inputs, _ = make(gen, 2)
        if op == "slstm":
            inputs[0][:, :, :, :2] = 1e4 * torch.sign(inputs[0][:, :, :, :2])
        else:
            for g in (3, 4):
                inputs[g] = 1e4 * torch.sign(inputs[g])
            for x in range(3):
                inputs[x] = 1e4 * inputs[x]
        outs, grads = forward_backward(lambda x: call(backend.ops, x), inputs, [torch.float32] * len(inputs),
                                       backend.device, 2)
        assert all(torch.isfinite(o).all() for o in outs), f"{op}: non-finite outputs"
        assert all(g is None or torch.isfinite(g).all() for g in grads), f"{op}: non-finite gradients"


def test_other_ops_and_layers_take_huge_inputs():
    """The layers' parts and both layers with inputs of magnitude 1e4: finite outputs and gradients."""
    gen = generator("huge inputs, parts")
    for op in ("causal_conv1d_silu", "headwise_linear", "mlstm_output_gate"):
        make, call = OPS[op]
        inputs, _ = make(gen, 2)
        inputs[0] = 1e4 * inputs[0]
        outs, grads = forward_backward(lambda x: call(xlstm_cuda.ops, x), inputs, [torch.float32] * len(inputs),
                                       "cpu", 3)
        assert all(torch.isfinite(o).all() for o in outs), f"{op}: non-finite outputs"
        assert all(torch.isfinite(g).all() for g in grads), f"{op}: non-finite gradients"
    torch.manual_seed(14)
    for layer in (xlstm_cuda.sLSTMLayer(16, num_heads=2), xlstm_cuda.mLSTMLayer(16, num_heads=2, chunk_size=8)):
        x = (1e4 * torch.randn(2, 13, 16, generator=gen)).requires_grad_(True)
        y, _ = layer(x)
        assert torch.isfinite(y).all(), f"{type(layer).__name__}: non-finite outputs"
        y.sum().backward()
        assert torch.isfinite(x.grad).all(), f"{type(layer).__name__}: non-finite input gradient"
        assert all(torch.isfinite(p.grad).all() for p in layer.parameters()), f"{type(layer).__name__}: parameters"


@pytest.mark.parametrize("layer_type", ["sLSTMLayer", "mLSTMLayer"])
def test_layer_bad_row_stays_in_that_row(layer_type):
    torch.manual_seed(15)
    layer = getattr(xlstm_cuda, layer_type)(16, num_heads=2)
    gen = generator("layer row isolation", layer_type)
    x = torch.randn(3, 13, 16, generator=gen)
    for bad in (float("nan"), INF, -INF):
        clean = x.clone().requires_grad_(True)
        y_clean, _ = layer(clean)
        (dx_clean,) = torch.autograd.grad(y_clean.sum(), clean)
        poisoned = x.clone()
        poisoned[1, 4, 3] = bad
        poisoned.requires_grad_(True)
        y, _ = layer(poisoned)
        (dx,) = torch.autograd.grad(y.sum(), poisoned)
        for row in (0, 2):
            assert torch.equal(y[row], y_clean[row]), f"{layer_type}: {bad} in row 1 changed row {row}"
            assert torch.equal(dx[row], dx_clean[row]), f"{layer_type}: {bad} in row 1 changed row {row}'s gradient"
