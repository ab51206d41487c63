"""Accuracy where the input is ill-conditioned (issue #14): float32 kernels within the spec's bound or
within 2x the error of python_ref run in float32, whichever is larger, both measured against python_ref
in float64, over many seeds.

The chunkwise case is the one a new user hit: B=1, NH=2, DHQK=7, DHV=40, chunk 64, no initial state,
i ~ N(0, 9), f ~ N(2, 9), at S = 64, 65 and 129 (a ragged last chunk). The cumulative log forget gate
a_t of a chunk reaches |a| ~ 30-60 there, and the kernels used to round a_t and b_t = i_t - a_t to
float: every gate weight exp(b_u - mx_t) then carried ulp(|b|) ~ 4e-6 of error, up to 8x python_ref's
own float32 error. They now carry a, b and the running max as Split values (csrc/common/numerics.h,
csrc/ops/mlstm_chunkwise/math.h) and stay below python_ref's error on average.

The sLSTM case: gate pre-activations of +-1e4. A float32 pre-activation raw = x + h R + b of that
size holds h R + b only to ulp(1e4) / 2 ~ 5e-4, and the gates are exponentials of differences of
such values, so every float32 evaluation errs by ~1e-4 relative in h (python_ref's too: the
bound is 2x its error). The kernels added each product of h R into x + b, one rounding at 1e4
per product: ~2.7x python_ref's error (median over seeds). They now form (h R + b) + x: x last.

The bound, and why it is not one float32 run of python_ref: the errors that remain sit at single
steps where a sum cancels. In the chunkwise case at S = 65 (seed 0) it is step 39 of head 0, whose
q·n is 76x smaller than the sum of its terms' magnitudes (0.0077 against 0.58, above the floor
exp(-m) = 0.0034): any float32 evaluation loses ~76 ulps there, and which of them it loses depends
on the order of its sums. python_ref in float32 erred 8.5e-6 at that step, the CPU kernel 1.7e-5 and
the emulated CUDA kernel 2.4e-5 (whole h: 4.7e-6, 7.3e-6 and 1.02e-5). One rounding of the
reference is one sample of an error that varies several times from one rounding of the inputs to
the next. So where a kernel's error exceeds 2x python_ref's on the inputs, "python_ref's float32
error" is the largest of its errors on the inputs and on 8 copies of them moved by one float32 ulp
(conftest.moved_by_one_ulp), the statistic of the fuzz tests' verify(); the kernels must stay within
2x that (verify() allows 4x). At gates of 1e4 an ulp of the input is 6e-4, the size of the
pre-activation's rounding that no float32 sLSTM avoids.
"""
import pytest
import torch

from xlstm_cuda import reference
from conftest import BACKENDS, generator, moved_by_one_ulp, rel_err

CHUNKWISE_SEEDS = {"cpu": 16, "emulation": 4}


ROUNDINGS = 8  # copies of the inputs moved by one ulp, besides the inputs themselves


def bound(err_same, grad):
    """The spec's float32 bound or 2x the float32 reference's error, whichever is larger."""
    return max(1e-4 if grad else 1e-5, 2 * err_same)


def run(fn, inputs, dtype, upstream, grads=True):
    leaves = [t.detach().to(dtype).requires_grad_(grads) for t in inputs]
    outs = fn(*leaves)
    if not grads:
        return outs, ()
    return outs, torch.autograd.grad(outs, leaves, [u.to(dtype) for u in upstream])


def float32_errors(ref, inputs, upstream, ref64, got, grad, key, grads=True):
    """python_ref's float32 error on inputs (float64 tensors holding float32 values), per output and
    gradient (in the order of run's results, as got, the kernel's, and grad, whether each is a
    gradient): its error on the inputs, or, where the kernel's misses the bound by that, the largest over
    the inputs and ROUNDINGS copies of them moved by one ulp, each against ref64 (python_ref in float64
    on the inputs themselves)."""
    errors = None
    for k in range(ROUNDINGS + 1):
        moved = inputs if k == 0 else [moved_by_one_ulp(t, torch.float32, generator("ulp", key, k)) for t in inputs]
        outs, gs = run(ref, moved, torch.float32, upstream, grads)
        these = [rel_err(r32, r64) for r32, r64 in zip((*outs, *gs), ref64)]
        errors = these if errors is None else [max(a, b) for a, b in zip(errors, these)]
        if k == 0 and all(rel_err(g, r64) < bound(e, is_grad) for g, r64, e, is_grad in zip(got, ref64, errors, grad)):
            break
    return errors


def check(names, got, ref64, errors_same, grad):
    for name, out, r64, err_same in zip(names, got, ref64, errors_same):
        assert torch.isfinite(out).all(), f"{name}: non-finite values"
        err = rel_err(out, r64)
        assert err < bound(err_same, grad), f"{name}: error {err:.3g}, python_ref in float32 up to {err_same:.3g}"


def chunkwise_case(gen, S):
    q, k = (torch.randn(1, 2, S, 7, generator=gen, dtype=torch.float64) for _ in range(2))
    v = torch.randn(1, 2, S, 40, generator=gen, dtype=torch.float64)
    i = 3.0 * torch.randn(1, 2, S, generator=gen, dtype=torch.float64)
    f = 2.0 + 3.0 * torch.randn(1, 2, S, generator=gen, dtype=torch.float64)
    return [t.float().double() for t in (q, k, v, i, f)]  # float32 values: the kernels' and references' inputs agree


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("S", [64, 65, 129])
def test_chunkwise_wide_gates(backend, S):
    def kernel(*a):
        h, st = backend.ops.mlstm_chunkwise(*a, chunk_size=64)
        return (h, *st)

    def ref(*a):
        h, st = reference.mlstm_chunkwise(*a, chunk_size=64)
        return (h, *st)

    for seed in range(CHUNKWISE_SEEDS[backend.name]):
        gen = generator("ill-conditioned chunkwise", S, seed)
        inputs = chunkwise_case(gen, S)
        shapes = [(1, 2, S, 40), (1, 2, 7, 40), (1, 2, 7), (1, 2)]
        upstream = [torch.randn(*s, generator=gen, dtype=torch.float64) for s in shapes]
        outs, grads = run(kernel, [t.to(backend.device) for t in inputs], torch.float32,
                          [u.to(backend.device) for u in upstream])
        outs64, grads64 = run(ref, inputs, torch.float64, upstream)
        errors = float32_errors(ref, inputs, upstream, (*outs64, *grads64), (*outs, *grads), [False] * 4 + [True] * 5,
                                ("chunkwise", S, seed))
        check([f"seed {seed} {n}" for n in ("h", "C", "n", "m")], outs, outs64, errors[:4], grad=False)
        check([f"seed {seed} grad {n}" for n in "qkvif"], grads, grads64, errors[4:], grad=True)


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_slstm_gates_of_1e4(backend):
    B, S, NH, DH = 2, 24, 2, 8
    for seed in range(6 if backend.name == "cpu" else 2):
        gen = generator("ill-conditioned slstm", seed)
        x = torch.randn(B, S, NH, 4, DH, generator=gen, dtype=torch.float64)
        sign = torch.randint(0, 2, (B, S, NH, 2, DH), generator=gen).double() * 2 - 1
        x[:, :, :, :2] += 1e4 * sign  # i and f
        R = torch.randn(NH, DH, 4, DH, generator=gen, dtype=torch.float64) * DH ** -0.5
        b = torch.randn(NH, 4, DH, generator=gen, dtype=torch.float64)
        x, R, b = (t.float().double() for t in (x, R, b))
        shapes = [(B, S, NH, DH)] + [(B, NH, DH)] * 3
        upstream = [torch.randn(*s, generator=gen, dtype=torch.float64) for s in shapes]

        def kernel(*a):
            h, st = backend.ops.slstm(*a)
            return (h, *st[:3])

        def ref(*a):
            h, st = reference.slstm(*a)
            return (h, *st[:3])

        outs, grads = run(kernel, [x, R, b], torch.float32, upstream)
        outs64, _ = run(ref, [x, R, b], torch.float64, upstream, grads=False)
        errors = float32_errors(ref, [x, R, b], upstream, outs64, outs, [False] * 4, ("slstm", seed), grads=False)
        check([f"seed {seed} {n}" for n in ("h", "h_T", "c_T", "n_T")], outs, outs64, errors, grad=False)
        # python_ref's own backward overflows at gates of 1e4 (inf * 0 in autograd of its exponentials,
        # in float64 too), so these gradients have no reference to be judged against: finite is what
        # is checked here; the sLSTM's gradients at ordinary gates are checked in tests/ops.
        for name, g in zip(("x", "R", "b"), grads):
            assert torch.isfinite(g).all(), f"seed {seed} grad {name}: non-finite values"
