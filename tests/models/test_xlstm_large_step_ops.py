"""xLSTM 7B's fused inference ops (CPU only: ops.xlstm_large_block_step, a decode step's block, and
ops.xlstm_large_head, a step's or a prompt's logits): against a float64 composition of
python_ref's cell and torch's maps, against xLSTMLarge's composed modules in float32 (both weight
modes), where the model takes them, the same bits on 1 and 3 threads, torch.compile, and clear
errors for bad inputs."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import generator, randn, rel_err
from xlstm_cuda import ops
from xlstm_cuda import reference as R
from xlstm_cuda.models.xlstm_large import xLSTMLarge, xLSTMLargeConfig

# (B, D, NH, DHQK, DHV, inner, weight parts, gate soft cap): odd sizes, the 7B head dims (256, 512),
# one head, single weights (4 q/k/v/o maps, 2 gate maps, 2 up maps) and fused ones, no cap.
BLOCK_CASES = [(1, 24, 3, 4, 8, 40, "fused", 15.0), (3, 17, 1, 5, 3, 9, "single", 2.0),
               (2, 32, 2, 256, 512, 64, "fused", 15.0), (5, 40, 4, 6, 10, 24, "single", None)]


def block_args(case, dtype, gen):
    """Random inputs of xlstm_large_block_step for one case: (args, kwargs), norms near 1."""
    B, D, NH, DK, DV, inner, parts, cap = case
    QK, V = NH * DK, NH * DV
    w = lambda *shape: randn(gen, *shape, dtype=dtype, scale=1 / math.sqrt(shape[-1]))  # noqa: E731
    norm = lambda n: randn(gen, n, dtype=dtype, scale=0.2, shift=1.0)  # noqa: E731
    if parts == "fused":
        qkvo, gates, up = [w(2 * QK + 2 * V, D)], [w(2 * NH, D)], [w(2 * inner, D)]
        biases = [randn(gen, 2 * NH, dtype=dtype)]
    else:
        qkvo, gates = [w(QK, D), w(QK, D), w(V, D), w(V, D)], [w(NH, D), w(NH, D)]
        biases, up = [randn(gen, NH, dtype=dtype), randn(gen, NH, dtype=dtype, shift=3.0)], [w(inner, D), w(inner, D)]
    state = (randn(gen, B, NH, DK, DV, dtype=dtype, scale=0.5), randn(gen, B, NH, DK, dtype=dtype, scale=0.5),
             randn(gen, B, NH, dtype=dtype))
    args = (randn(gen, B, D, dtype=dtype), norm(D), qkvo, gates, biases, norm(V), w(D, V), norm(D), up, w(D, inner),
            state)
    return args, dict(gate_soft_cap=cap, norm_eps=1e-5, eps=1e-6)


def reference_block_step(x, norm_mlstm, qkvo, gates, biases, head_norm, out, norm_ffn, up, down, state,
                         gate_soft_cap, norm_eps, eps):
    """The block's math (python_ref/xlstm_large.md) composed literally, in x's dtype."""
    B, NH = x.shape[0], state[0].shape[1]
    DK, DV = state[0].shape[2], state[0].shape[3]
    rms = lambda t, w: t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + norm_eps) * w  # noqa: E731
    a = rms(x, norm_mlstm)
    q, k, v, o = F.linear(a, torch.cat(qkvo)).split([NH * DK, NH * DK, NH * DV, NH * DV], dim=-1)
    gate = F.linear(a, torch.cat(gates), torch.cat(biases))
    if gate_soft_cap is not None:
        gate = gate_soft_cap * torch.tanh(gate / gate_soft_cap)
    i, f = gate.chunk(2, dim=-1)
    h, new_state = R.mlstm_step(q.view(B, NH, DK), k.view(B, NH, DK), v.view(B, NH, DV), i, f, state, eps)
    h = F.layer_norm(h, (DV,), eps=norm_eps).flatten(-2) * head_norm
    x = x + F.linear(torch.sigmoid(o) * h, out)
    g, z = F.linear(rms(x, norm_ffn), torch.cat(up)).chunk(2, dim=-1)
    return x + F.linear(F.silu(g) * z, down), new_state


@pytest.mark.parametrize("case", BLOCK_CASES, ids=str)
def test_block_step_matches_float64_reference(case):
    args, kwargs = block_args(case, torch.float64, generator("large-block-step", case))
    y, state = ops.xlstm_large_block_step(*args, **kwargs)
    y_ref, state_ref = reference_block_step(*args, **kwargs)
    assert rel_err(y, y_ref) < 1e-12
    for name, s, t in zip("Cnm", state, state_ref):
        assert rel_err(s, t) < 1e-12, name


@pytest.mark.parametrize("case", BLOCK_CASES, ids=str)
def test_block_step_float32_within_reference_error(case):
    """float32 within the spec's bound (1e-5) or 2x python_ref's own float32 error (against float64),
    whichever is larger."""
    args64, kwargs = block_args(case, torch.float64, generator("large-block-step-f32", case))
    args32 = [[t.float() for t in a] if isinstance(a, (list, tuple)) else a.float() for a in args64]
    y, state = ops.xlstm_large_block_step(*args32[:-1], tuple(args32[-1]), **kwargs)
    y64, state64 = reference_block_step(*args64, **kwargs)
    y32, state32 = reference_block_step(*args32[:-1], tuple(args32[-1]), **kwargs)
    for out, ref, same in zip((y, *state), (y64, *state64), (y32, *state32)):
        assert out.dtype == torch.float32
        assert rel_err(out, ref) <= max(2 * rel_err(same, ref), 1e-5)


@pytest.mark.parametrize("rows, D, V, cap", [(1, 24, 101, 30.0), (4, 33, 7, None), (16, 40, 257, 5.0),
                                           (17, 40, 257, 5.0), (200, 72, 1001, 30.0), (700, 8, 12000, 30.0)],
                         ids=["decode-1", "decode-4-no-cap", "decode-16", "gemm-17", "prompt-200", "huge-pages"])
def test_head_matches_float64_reference(rows, D, V, cap):
    """Both paths of the head: up to 16 rows streamed (skinny_linear), more as a GEMM; the last case's
    logits (34 MB in float32) are large enough to be allocated on huge pages."""
    gen = generator("large-head", rows, D, V)
    x, norm, head = randn(gen, rows, D, dtype=torch.float64), randn(gen, D, dtype=torch.float64, shift=1.0), \
        randn(gen, V, D, dtype=torch.float64, scale=3.0)
    ref = F.linear(x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * norm, head)
    ref = ref if cap is None else cap * torch.tanh(ref / cap)
    if rows * V * 8 < 64 << 20:
        logits = ops.xlstm_large_head(x, norm, head, 1e-5, cap)
        assert logits.shape == (rows, V) and rel_err(logits, ref) < 1e-12
    logits32 = ops.xlstm_large_head(x.float(), norm.float(), head.float(), 1e-5, cap)
    assert logits32.dtype == torch.float32 and logits32.shape == (rows, V) and rel_err(logits32, ref) < 1e-6


def random_model(weight_mode, dtype=torch.float32, **changes):
    """A small xLSTMLarge (D 96, 3 heads, head dims 16 and 32) with random weights."""
    config = xLSTMLargeConfig(embedding_dim=96, num_heads=3, num_blocks=2, vocab_size=101, weight_mode=weight_mode,
                              **changes)
    model = xLSTMLarge(config).eval()
    gen = generator("large-step-model", weight_mode, tuple(sorted(changes.items())))
    with torch.no_grad():  # the init leaves the gate weights at zero, which would hide them
        for name, p in model.named_parameters():
            p.copy_(randn(gen, *p.shape, scale=0.3 if p.dim() > 1 else 1.0, shift=1.0 if "norm" in name else 0.0))
    return model.to(dtype)


@pytest.mark.parametrize("weight_mode", ["single", "fused"])
@pytest.mark.parametrize("caps", [dict(), dict(gate_soft_cap=None, output_logit_soft_cap=None)], ids=["caps", "no-caps"])
def test_prompt_and_decode_steps_match_composed_modules(weight_mode, caps, monkeypatch):
    """A prompt's logits (the head op's GEMM path: 24 rows) and the steps after it under no_grad
    (the fused ops, float32) against the same with autograd on (the composed modules) in float64:
    logits and every state within the spec's float32 bound (1e-5) or 2x the composed modules' own
    float32 error, whichever is larger (their errors are of one size: the fused n erred 2.5e-6
    where the composed one erred 1.2e-6)."""
    model = random_model(weight_mode, norm_reduction_force_float32=False, **caps)
    model64 = copy.deepcopy(model).double()
    calls = []
    block_step, head = ops.xlstm_large_block_step, ops.xlstm_large_head
    monkeypatch.setattr(ops, "xlstm_large_block_step", lambda *a, **k: calls.append("block") or block_step(*a, **k))
    monkeypatch.setattr(ops, "xlstm_large_head", lambda *a, **k: calls.append("head") or head(*a, **k))
    x = torch.randint(0, 101, (3, 12), generator=generator("large-step-ids", weight_mode))
    with torch.no_grad():
        fused, fused_state = model(x[:, :8])
    composed, _ = model(x[:, :8])
    ref, state64 = model64(x[:, :8])
    assert rel_err(fused, ref) <= max(2 * rel_err(composed, ref), 1e-5)
    composed_state = fused_state
    for t in range(8, 12):
        token = x[:, t:t + 1]
        with torch.no_grad():
            fused, fused_state = model(token, fused_state)
        composed, composed_state = model(token, composed_state)
        ref, state64 = model64(token, state64)
        assert rel_err(fused, ref) <= max(2 * rel_err(composed, ref), 1e-5)
        for cells, composed_cells, ref_cells in zip(fused_state.cells, composed_state.cells, state64.cells):
            for s, c, r in zip(cells, composed_cells, ref_cells):
                assert rel_err(s, r) <= max(2 * rel_err(c, r), 1e-5)
    assert calls == ["head"] + ["block", "block", "head"] * 4


def test_model_takes_fused_ops_only_where_they_apply(monkeypatch):
    calls, heads = [], []
    block_step, head = ops.xlstm_large_block_step, ops.xlstm_large_head
    monkeypatch.setattr(ops, "xlstm_large_block_step", lambda *a, **k: calls.append(1) or block_step(*a, **k))
    monkeypatch.setattr(ops, "xlstm_large_head", lambda *a, **k: heads.append(a[0].shape[0]) or head(*a, **k))
    token = torch.tensor([[5], [7]])
    with torch.no_grad():
        random_model("fused")(token)  # no state: the zero state
        assert len(calls) == 2 and heads == [2]
        random_model("fused")(torch.tensor([[5, 6]]))  # a prompt: the chunkwise op, then the head's rows
        assert heads == [2, 2]
        random_model("fused", use_bias=True)(token)  # biases (the norms' too): not in the ops
        random_model("fused").bfloat16()(token)
        random_model("fused", dtype=torch.float64)(token)  # the norms would reduce in float32
        assert heads == [2, 2]
        random_model("fused")(token, attention_mask=torch.tensor([[1], [0]]))
        assert len(calls) == 2
        random_model("fused", dtype=torch.float64, norm_reduction_force_float32=False)(token)
        assert len(calls) == 4
    model = random_model("single")
    logits, _ = model(token)  # autograd records: the composed modules
    assert len(calls) == 4 and len(heads) == 4 and logits.requires_grad
    model.requires_grad_(False)
    model(token)  # grad mode, but nothing needs a gradient
    assert len(calls) == 6
    with torch.no_grad():
        _, state = model(token)
    assert len(calls) == 8
    C, n, m = (t.clone().requires_grad_() for t in state.cells[0])
    state.cells[0] = (C, n, m)
    logits, _ = model(token, state)  # a gradient wanted through block 0's state, hence block 1's input
    assert len(calls) == 8
    logits.sum().backward()
    assert all(t.grad is not None and bool(t.grad.abs().sum() > 0) for t in (C, n))


def test_generate_with_fused_steps_equals_composed(monkeypatch):
    """Greedy generation (fused decode steps) equals argmax decoding by the composed modules."""
    model = random_model("fused")
    prompt = torch.randint(0, 101, (2, 9), generator=generator("large-step-generate"))
    out = model.generate(prompt, max_new_tokens=12, temperature=0)
    tokens, (logits, state) = prompt, model(prompt)
    for _ in range(12):
        token = logits[:, -1].argmax(-1, keepdim=True)
        tokens = torch.cat((tokens, token), 1)
        logits, state = model(token, state)  # autograd on: composed
    assert torch.equal(out, tokens)


def test_bitwise_equal_across_thread_counts():
    """Products, cell and cap split over threads by the shapes alone: the same bits on 1 and 3."""
    args, kwargs = block_args((3, 256, 2, 64, 256, 320, "fused", 15.0), torch.float32,
                              generator("large-step-threads"))
    head = (args[0], args[1], randn(generator("large-step-head"), 20000, 256))
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 3):
            torch.set_num_threads(count)
            y, state = ops.xlstm_large_block_step(*args, **kwargs)
            results.append([y, *state, ops.xlstm_large_head(*head, 1e-6, 30.0)])
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(*results))


def test_compiles_fullgraph():
    args, kwargs = block_args(BLOCK_CASES[0], torch.float32, generator("large-step-compile"))

    def step(*a):
        y, state = ops.xlstm_large_block_step(*a, **kwargs)
        return ops.xlstm_large_head(y, a[1], a[6].t().contiguous(), 1e-6, 30.0) * 2, state

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    for got, want in zip(compiled(*args), step(*args)):
        torch.testing.assert_close(got, want)
    x, norm_mlstm, qkvo, gates, biases, head_norm, out, norm_ffn, up, down, state = args
    torch.library.opcheck(torch.ops.xlstm_cuda.xlstm_large_block_step.default,
                          (x, norm_mlstm, qkvo, gates, biases, head_norm, out, norm_ffn, up, down, *state,
                           kwargs["gate_soft_cap"], kwargs["norm_eps"], kwargs["eps"]))
    torch.library.opcheck(torch.ops.xlstm_cuda.xlstm_large_head.default,
                          (x, norm_mlstm, out.t().contiguous(), 1e-6, 30.0))


def bad_block_calls():
    args, kwargs = block_args(BLOCK_CASES[0], torch.float32, generator("large-step-bad"))
    names = ["x", "norm_mlstm_weight", "qkvo_weights", "gate_weights", "gate_biases", "multihead_norm_weight",
             "out_weight", "norm_ffn_weight", "up_weights", "down_weight", "state"]
    call = dict(zip(names, args), **kwargs)
    x, qkvo, out, C = call["x"], call["qkvo_weights"][0], call["out_weight"], call["state"][0]
    return [
        ("x rank", dict(x=x[0]), "x must have shape"),
        ("x dtype", dict(x=x.half()), "x must be float32 or float64"),
        ("empty x", dict(x=x[:0]), "x is empty"),
        ("norm size", dict(norm_mlstm_weight=call["norm_mlstm_weight"][:-1]), "norm_mlstm_weight must have shape"),
        ("norm dtype", dict(norm_ffn_weight=call["norm_ffn_weight"].double()), "norm_ffn_weight must be"),
        ("qkvo rows", dict(qkvo_weights=[qkvo[:-2]]), "qkvo_weights"),
        ("qkvo count", dict(qkvo_weights=[qkvo, qkvo]), "qkvo_weights must hold 1 weight"),
        ("qkvo columns", dict(qkvo_weights=[qkvo[:, :-1]]), "qkvo_weights must have shape"),
        ("transposed weight", dict(out_weight=out.t().contiguous().t()), "out_weight must be row-major"),
        ("gate count", dict(gate_weights=[]), "gate_weights must hold"),
        ("gate bias count", dict(gate_biases=[]), "gate_biases must hold one bias per gate weight"),
        ("heads", dict(gate_weights=[torch.cat((call["gate_weights"][0], call["gate_weights"][0][:4]))]),
         "heads, which must divide"),
        ("down columns", dict(down_weight=call["down_weight"][:, :-1]), "up_weights must have shape"),
        ("state C", dict(state=(C[:, :, :-1], *call["state"][1:])), "state C must have shape"),
        ("state m dtype", dict(state=(*call["state"][:2], call["state"][2].double())), "state m must be"),
        ("state type", dict(state=C), "state must be a tuple"),
        ("soft cap", dict(gate_soft_cap=-1.0), "gate_soft_cap must be positive"),
        ("norm eps", dict(norm_eps=math.nan), "norm_eps must be finite"),
        ("meta weight", dict(out_weight=out.to("meta")), "one device"),
    ], call


@pytest.mark.parametrize("case", [c[0] for c in bad_block_calls()[0]])
def test_block_step_bad_inputs_raise_clear_errors(case):
    cases, call = bad_block_calls()
    ((_, override, message),) = [c for c in cases if c[0] == case]
    with pytest.raises((RuntimeError, TypeError), match=rf"^xlstm_large_block_step: .*{message}"):
        ops.xlstm_large_block_step(**dict(call, **override))


@pytest.mark.parametrize("override, message", [
    (dict(x=torch.ones(2, 8, dtype=torch.long)), "x must be float32 or float64"),
    (dict(norm_weight=torch.ones(7)), "norm_weight must have shape"),
    (dict(head_weight=torch.ones(5, 8).t()), "head_weight must have shape"),
    (dict(head_weight=torch.ones(8, 5).t()), "head_weight must be row-major"),
    (dict(logit_soft_cap=0.0), "logit_soft_cap must be positive"),
], ids=["dtype", "norm", "shape", "layout", "cap"])
def test_head_bad_inputs_raise_clear_errors(override, message):
    call = dict(x=torch.ones(2, 8), norm_weight=torch.ones(8), head_weight=torch.ones(5, 8), norm_eps=1e-6,
                logit_soft_cap=30.0)
    with pytest.raises(RuntimeError, match=rf"^xlstm_large_head: .*{message}"):
        ops.xlstm_large_head(**dict(call, **override))
