"""The benchmark cases, by suite.

A suite is a function (device, dtype, preset) -> list[Case], registered with `@suite("name")`;
the presets are harness.PRESETS ("tiny" is for the tests).
A case names its kernel and its baselines, all called alike on the same inputs; the harness times
each of them forward and forward+backward and reports the baselines' times as ratios.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Callable

import torch

import python_ref

from .. import ops

@dataclass
class Baseline:
    name: str
    fn: Callable | None  # called like the case's kernel; None when skipped
    skipped: str | None = None  # why it is not measured


@dataclass
class Case:
    name: str
    params: dict  # the sizes
    tokens: int  # tokens processed by one call
    flops_fwd: float  # model FLOP counts, for the fraction of the measured TFLOP/s ceiling
    flops_fwd_bwd: float
    make_inputs: Callable[[], list[torch.Tensor]]
    kernel: Callable
    baselines: list[Baseline]


SUITES: dict[str, Callable[[torch.device, torch.dtype, str], list[Case]]] = {}


def suite(name: str):
    def register(make_cases):
        SUITES[name] = make_cases
        return make_cases
    return register


def optional_baseline(name: str, module: str, attribute: str, adapt: Callable) -> Baseline:
    """A baseline from a package that may be absent: skipped, saying why, rather than an error."""
    package = module.split(".")[0]
    if importlib.util.find_spec(package) is None:
        return Baseline(name, None, "not installed")
    try:
        fn = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        return Baseline(name, None, f"{package} is installed but {module}.{attribute} does not load: {error}")
    return Baseline(name, adapt(fn))


def random_inputs(seed: int, device: torch.device, *specs: tuple[tuple[int, ...], torch.dtype, float]):
    """Random normal tensors (shape, dtype, shift), drawn on the CPU so they do not depend on the device."""
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(shape, generator=gen) + shift).to(device, dtype) for shape, dtype, shift in specs]


# ---- mLSTM generation step -------------------------------------------------------------------------

ANCHOR_STEP = (8, 256, 512, (1, 16, 64, 256))  # NH, DHQK, DHV, batch sizes: the step anchor of perf-anchors.md
SMALL_STEP = (4, 64, 128, (1, 8, 64))
TINY_STEP = (2, 8, 16, (1, 2))
STEP_SIZES = {
    "cpu": {"tiny": [TINY_STEP], "quick": [(4, 64, 128, (1, 8))],
            "default": [SMALL_STEP], "full": [SMALL_STEP, ANCHOR_STEP]},
    "cuda": {"tiny": [TINY_STEP], "quick": [(8, 256, 512, (1, 256))],
             "default": [ANCHOR_STEP], "full": [ANCHOR_STEP]},
}


def _in_state_dtype(step: Callable) -> Callable:
    """A reference that computes in its inputs' dtype, run as the kernel does with a float32 state
    on low-precision inputs (in their own dtype they would meet the float32 state in one matmul)."""
    def call(q, k, v, i, f, C, n, m):
        h, state = step(*(x.to(C.dtype) for x in (q, k, v, i, f)), C, n, m)
        return h.to(q.dtype), state
    return call


def _kernel_step(q, k, v, i, f, C, n, m):
    return ops.mlstm_step(q, k, v, i, f, (C, n, m))


def _python_ref_step(q, k, v, i, f, C, n, m):
    return python_ref.mlstm_step(q, k, v, i, f, (C, n, m))


def _adapt_xlstm(fn: Callable) -> Callable:
    # xlstm.blocks.mlstm.backends: sequence-shaped (B, NH, 1, D) q, k, v, which it squeezes in place
    # (hence the copies), (B, NH, 1, 1) gates and m, (B, NH, DHQK, 1) n.
    def step(q, k, v, i, f, C, n, m):
        q, k, v = (x[:, :, None].clone() for x in (q, k, v))
        return fn(C, n[..., None], m[..., None, None], q, k, v, i[..., None, None], f[..., None, None], eps=1e-6)
    return _in_state_dtype(step)


def _adapt_mlstm_kernels(fn: Callable) -> Callable:
    # mlstm_kernels.torch.recurrent: (B, NH, 1) gates and m; casts between dtypes itself.
    def step(q, k, v, i, f, C, n, m):
        return fn(q, k, v, i[..., None], f[..., None], C, n, m[..., None], eps=1e-6)
    return step


@suite("step")
def step_cases(device: torch.device, dtype: torch.dtype, preset: str) -> list[Case]:
    baselines = [
        Baseline("python_ref", _in_state_dtype(_python_ref_step)),
        optional_baseline("xlstm", "xlstm.blocks.mlstm.backends", "recurrent_step_stabilized_simple", _adapt_xlstm),
        optional_baseline("mlstm_kernels", "mlstm_kernels.torch.recurrent", "mlstm_recurrent_step__native",
                          _adapt_mlstm_kernels),
    ]
    if device.type == "cuda":
        baselines.append(optional_baseline("mlstm_kernels_triton", "mlstm_kernels.torch.recurrent",
                                           "mlstm_recurrent_step__triton", _adapt_mlstm_kernels))
    cases = []
    for NH, DHQK, DHV, batch_sizes in STEP_SIZES[device.type][preset]:
        for B in batch_sizes:
            # Per head and token: the update f*C + i*k*v^T (3 FLOPs a state entry) and the readout q^T C (2);
            # the backward does about twice that.
            flops_fwd = 5.0 * B * NH * DHQK * DHV
            state = torch.float32
            specs = [((B, NH, DHQK), dtype, 0.0), ((B, NH, DHQK), dtype, 0.0), ((B, NH, DHV), dtype, 0.0),
                     ((B, NH), dtype, 0.0), ((B, NH), dtype, 3.0),  # forget gates mostly open, as when trained
                     ((B, NH, DHQK, DHV), state, 0.0), ((B, NH, DHQK), state, 0.0), ((B, NH), state, 0.0)]
            cases.append(Case(
                name="mlstm_step", params=dict(B=B, NH=NH, DHQK=DHQK, DHV=DHV), tokens=B,
                flops_fwd=flops_fwd, flops_fwd_bwd=3 * flops_fwd,
                make_inputs=lambda specs=specs, seed=B: random_inputs(seed, device, *specs),
                kernel=_kernel_step, baselines=baselines))
    return cases
