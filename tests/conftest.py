"""Shared test helpers: backends, seeded inputs and the spec's error bounds (../shared/xlstm-spec.md)."""
import os
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import hypothesis.core
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import xlstm_cuda  # noqa: E402


@dataclass(frozen=True)
class Backend:
    name: str
    ops: object  # a KernelOps
    device: str

    def __str__(self):
        return self.name


def _backends():
    found = [Backend("cpu", xlstm_cuda.ops._kernels, "cpu")]
    try:
        from xlstm_cuda import sim
    except ImportError as error:
        if os.environ.get("XLSTM_TESTS_WITHOUT_EMULATION") != "1":
            raise ImportError(f"{error}\n(the tests need the emulation build; set XLSTM_TESTS_WITHOUT_EMULATION=1 "
                              "to run without it)") from error
    else:
        found.append(Backend("emulation", sim.ops, "cpu"))
    if torch.cuda.is_available():
        found.append(Backend("cuda", xlstm_cuda.ops._kernels, "cuda"))
    return found


def pytest_addoption(parser):
    parser.addoption("--nightly", action="store_true",
                     help="the fuzz tests' nightly profile (tests/ops/test_fuzz.py): >= 10 000 examples")


# The fuzz tests' profiles (tests/ops/test_fuzz.py), examples per (op, backend) test: a few hundred
# in all in CI, >= 10 000 with --nightly. No database and no derandomizing: unless --hypothesis-seed
# is given, a session draws its seed, and prints it when a test fails.
for _profile, _examples in (("ci", 25), ("nightly", 900)):
    settings.register_profile(_profile, max_examples=_examples, database=None, derandomize=False, deadline=None,
                              print_blob=True, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.data_too_large,
                                                                      HealthCheck.filter_too_much])


def pytest_configure(config):
    settings.load_profile("nightly" if config.getoption("--nightly") else "ci")
    if hypothesis.core.global_force_seed is None:
        hypothesis.core.global_force_seed = int.from_bytes(os.urandom(4), "little")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if exitstatus != 0:
        seed = hypothesis.core.global_force_seed
        terminalreporter.write_line(f"hypothesis seed of this run: {seed} (rerun with --hypothesis-seed={seed})")


BACKENDS = _backends()
# The CUDA kernels, wherever they can run here.
CUDA_SOURCE_BACKENDS = [b for b in BACKENDS if b.name != "cpu"]
# The input dtypes every op takes.
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def numerics_matrix(shapes, **flags):
    """Parametrises a numeric test over every backend x dtype x shape (and each named flag's values)."""
    def decorate(test):
        for name, values in flags.items():
            test = pytest.mark.parametrize(name, values)(test)
        for name, values in (("shape", shapes), ("dtype", DTYPES), ("backend", BACKENDS)):
            test = pytest.mark.parametrize(name, values, ids=str)(test)
        return test

    return decorate


def generator(*key) -> torch.Generator:
    """A generator seeded from the test's parameters: fresh inputs per case, reproducible."""
    return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


def moved_by_one_ulp(t: torch.Tensor, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    """t in dtype, every value moved by one ulp of dtype up or down at random: another rounding of t
    that is as valid as the first. The errors of a reference run on a few of these are the spread of
    what any evaluation in dtype gets, against which ill-conditioned results are judged."""
    ulp = torch.finfo(dtype).eps
    return (t.double() * (1 + ulp * (torch.randint(0, 2, t.shape, generator=gen) * 2 - 1))).to(dtype)


def randn(gen, *shape, dtype=torch.float32, device="cpu", scale=1.0, shift=0.0):
    return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale + shift).to(device=device, dtype=dtype)


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    return ((out - ref).norm() / ref.norm().clamp_min(1e-300)).item()


def assert_close(name, out, ref64, ref_same_dtype=None, *, grad=False):
    """The spec's bounds against xlstm_cuda.reference (python_ref) in float64: float32 < 1e-5 (forward) / 1e-4 (gradients);
    bf16 / fp16 inputs < 1e-2 and no worse than 2x the reference run in that dtype (`ref_same_dtype`).
    An output that is ill-conditioned by construction (a gradient that is O(eps), say), where
    the reference in the same dtype misses the bound itself, must be no worse than 2x the reference."""
    assert torch.isfinite(out).all(), f"{name}: non-finite values"
    err = rel_err(out, ref64)
    same_err = rel_err(ref_same_dtype, ref64) if ref_same_dtype is not None else 0.0
    low_precision = ref_same_dtype is not None and ref_same_dtype.dtype in (torch.bfloat16, torch.float16)
    base = 1e-2 if low_precision else {torch.float64: 1e-10, torch.float32: 1e-4 if grad else 1e-5}[out.dtype]
    if same_err > base:
        bound = 2 * same_err
    else:
        bound = min(base, max(2 * same_err, 1e-5)) if low_precision else base
    assert err < bound, f"{name}: relative error {err:.3g} >= {bound:.3g} (the reference in the same dtype: {same_err:.3g})"


def assert_all_close(names, outs, refs64, refs_same, *, grad=False):
    """assert_close for each named output (or gradient, with grad=True)."""
    for name, out, ref, same in zip(names, outs, refs64, refs_same):
        assert_close(f"grad {name}" if grad else name, out, ref, same, grad=grad)


def assert_matches_reference(gen, op, reference, inputs, names):
    """op(*inputs) and the gradients of all inputs against reference(*inputs) run in float64 and in
    the output's dtype (every input converted), at the spec's bounds. Returns op's output."""
    leaves = [t.requires_grad_(True) for t in inputs]
    y = op(*leaves)
    dy = randn(gen, *y.shape, dtype=y.dtype, device=y.device)
    grads = torch.autograd.grad(y, leaves, dy)
    refs = {}
    for dtype in (torch.float64, y.dtype):
        ref_leaves = [t.detach().cpu().to(dtype).requires_grad_(True) for t in leaves]
        ref_y = reference(*ref_leaves)
        refs[dtype] = ref_y, torch.autograd.grad(ref_y, ref_leaves, dy.cpu().to(dtype))
    assert_all_close(["y"], [y], [refs[torch.float64][0]], [refs[y.dtype][0]])
    assert_all_close(names, grads, refs[torch.float64][1], refs[y.dtype][1], grad=True)
    return y
