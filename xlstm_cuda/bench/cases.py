"""The benchmark cases, by suite.

A suite is a function (device, dtype, sizes) -> list[Case], registered with `@suite("name")`;
`sizes` names a size list: a preset of harness.PRESETS ("tiny" is for the tests) or a sweep
("sweep-seq", "sweep-batch", "sweep-head": one dimension varied, see SWEEPS; "tiny-sweep-..." for
the tests). A suite without that list returns no cases.
A case names its kernel and its baselines, all called alike on the same inputs; the harness times
each of them forward and forward+backward and reports the baselines' times as ratios.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Callable

import torch

from .. import ops
from .. import reference as python_ref

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
# Sweeps: the values one dimension takes, the others as in the default (or tiny) sizes.
SWEEPS = {
    "cpu": {"seq": (64, 128, 256, 512, 1024, 2048), "batch": (1, 2, 4, 8, 16, 32, 64), "head": (16, 32, 64, 128)},
    "cuda": {"seq": (256, 512, 1024, 2048, 4096, 8192), "batch": (1, 4, 16, 64, 256), "head": (32, 64, 128, 192, 256)},
    "tiny": {"seq": (1, 2, 3), "batch": (1, 2), "head": (2, 4)},
}
for _device, (_NH, _DHQK, _DHV, _batches) in (("cpu", SMALL_STEP), ("cuda", ANCHOR_STEP)):
    STEP_SIZES[_device]["sweep-batch"] = [(_NH, _DHQK, _DHV, SWEEPS[_device]["batch"])]
    STEP_SIZES[_device]["sweep-head"] = [(_NH, d, 2 * d, _batches[-1:]) for d in SWEEPS[_device]["head"]]
    STEP_SIZES[_device]["tiny-sweep-batch"] = [TINY_STEP[:3] + (SWEEPS["tiny"]["batch"],)]
    STEP_SIZES[_device]["tiny-sweep-head"] = [(2, d, 2 * d, (1,)) for d in SWEEPS["tiny"]["head"]]


def add_sweeps(sizes: dict, axes: dict[str, int]) -> None:
    """Sweep size lists for a suite whose sizes are tuples: axes maps a sweep to the tuple index it varies."""
    for device, presets in sizes.items():
        for prefix, base, values in (("", presets["default"][0], SWEEPS[device]),
                                     ("tiny-", presets["tiny"][0], SWEEPS["tiny"])):
            for axis, index in axes.items():
                presets[f"{prefix}sweep-{axis}"] = [base[:index] + (v,) + base[index + 1:] for v in values[axis]]


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
    for NH, DHQK, DHV, batch_sizes in STEP_SIZES[device.type].get(preset, []):
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


# ---- sLSTM: the fused op and the layer ---------------------------------------------------------------

# (B, S, NH, DH): the CPU target size of the sLSTM issue (embedding 128, 4 heads); on the GPU the
# FlashRNN anchor (B=16, T=1024, hidden 768) with two head sizes.
SLSTM_SIZES = {
    "cpu": {"tiny": [(2, 3, 2, 4)], "quick": [(8, 64, 4, 32)], "default": [(8, 256, 4, 32)],
            "full": [(8, 256, 4, 32), (8, 1024, 4, 32), (8, 256, 4, 128)]},
    "cuda": {"tiny": [(2, 3, 2, 4)], "quick": [(16, 1024, 12, 64)],
             "default": [(16, 1024, 12, 64), (16, 1024, 6, 128)],
             "full": [(16, 1024, 12, 64), (16, 1024, 6, 128), (16, 1024, 4, 192)]},
}
add_sweeps(SLSTM_SIZES, {"batch": 0, "seq": 1, "head": 3})


def _slstm_path(device: torch.device, DH: int) -> str:
    if device.type != "cuda":
        return "cpu"
    from .. import _C
    return _C.slstm_cuda_path(DH, False)


def _mlstm_chunkwise_path(device: torch.device, dtype: torch.dtype) -> str:
    if device.type != "cuda":
        return "cpu"
    from .. import _C
    return _C.mlstm_chunkwise_cuda_path(str(dtype).removeprefix("torch."))


def _lstm_baseline(width: int, device: torch.device, dtype: torch.dtype, take_input: Callable) -> Baseline:
    """torch.nn.LSTM (oneDNN on the CPU, cuDNN on the GPU) of the same total hidden size."""
    try:
        lstm = torch.nn.LSTM(width, width, batch_first=True).to(device, dtype)
    except RuntimeError as error:
        return Baseline("nn.LSTM", None, f"unavailable: {error}")
    return Baseline("nn.LSTM", lambda *inputs: lstm(take_input(*inputs))[0])


def _slstm_flops(B, S, NH, DH) -> float:
    return 2.0 * B * S * NH * DH * 4 * DH  # the recurrent matrix-vector products


@suite("slstm")
def slstm_cases(device: torch.device, dtype: torch.dtype, preset: str) -> list[Case]:
    cases = []
    for B, S, NH, DH in SLSTM_SIZES[device.type].get(preset, []):
        specs = [((B, S, NH, 4, DH), dtype, 0.0), ((NH, DH, 4, DH), torch.float32, 0.0),
                 ((NH, 4, DH), torch.float32, 0.0)]

        def make_inputs(specs=specs, seed=B * S + DH, DH=DH):
            x, R, b = random_inputs(seed, device, *specs)
            return [x, R * DH ** -0.5, b]

        flops = _slstm_flops(B, S, NH, DH)
        baselines = [
            Baseline("python_ref", lambda x, R, b: python_ref.slstm(x.float(), R, b)),
            _lstm_baseline(NH * DH, device, dtype, lambda x, R, b: x[..., 0, :].flatten(-2)),
        ]
        cases.append(Case(
            name="slstm", params=dict(B=B, S=S, NH=NH, DH=DH, path=_slstm_path(device, DH)), tokens=B * S,
            flops_fwd=flops, flops_fwd_bwd=3 * flops, make_inputs=make_inputs,
            kernel=lambda x, R, b: ops.slstm(x, R, b), baselines=baselines))
    return cases


# ---- mLSTM chunkwise -----------------------------------------------------------------------------

# (B, NH, S, DHQK, DHV, chunk): the CPU targets' head sizes (embedding 128, proj 2, 4 heads: 64) at
# S = 256 and 2048; on the GPU the TFLA anchor (NH=16, DHQK=128, DHV=256, 65536 tokens).
MLSTM_SIZES = {
    "cpu": {"tiny": [(1, 2, 5, 4, 8, 2)], "quick": [(8, 4, 256, 64, 64, 64)],
            "default": [(8, 4, 256, 64, 64, 64)],
            "full": [(8, 4, 256, 64, 64, 64), (8, 4, 2048, 64, 64, 64), (1, 4, 16384, 64, 64, 64)]},
    "cuda": {"tiny": [(1, 2, 5, 4, 8, 2)], "quick": [(8, 16, 8192, 128, 256, 128)],
             "default": [(8, 16, 8192, 128, 256, 128), (1, 16, 65536, 128, 256, 128)],
             "full": [(8, 16, 8192, 128, 256, 128), (1, 16, 65536, 128, 256, 128)]},
}
add_sweeps(MLSTM_SIZES, {"batch": 0, "seq": 2, "head": 3})


def _adapt_mlstm_kernels_chunkwise(fn: Callable) -> Callable:
    def call(q, k, v, i, f, chunk_size):
        return fn(q, k, v, i, f, chunk_size=chunk_size)
    return call


def _sdpa_baseline() -> Baseline:
    """Causal attention at the same q, k, v sizes (DHV as the value width)."""
    return Baseline("sdpa", lambda q, k, v, i, f, chunk_size:
                    torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True))


@suite("mlstm")
def mlstm_cases(device: torch.device, dtype: torch.dtype, preset: str) -> list[Case]:
    cases = []
    for B, NH, S, DQK, DV, L in MLSTM_SIZES[device.type].get(preset, []):
        specs = [((B, NH, S, DQK), dtype, 0.0), ((B, NH, S, DQK), dtype, 0.0), ((B, NH, S, DV), dtype, 0.0),
                 ((B, NH, S), dtype, 0.0), ((B, NH, S), dtype, 3.0)]
        baselines = [
            Baseline("python_ref", lambda q, k, v, i, f, chunk_size:
                     python_ref.mlstm_chunkwise(*(x.float() for x in (q, k, v, i, f)), chunk_size=chunk_size)),
            _sdpa_baseline(),
            optional_baseline("mlstm_kernels", "mlstm_kernels.torch.chunkwise",
                              "mlstm_chunkwise__xl_chunk" if device.type == "cuda" else "mlstm_chunkwise__native_custbw",
                              _adapt_mlstm_kernels_chunkwise),
        ]
        if S * S * B * NH <= 2**28:  # the quadratic form's S x S matrices, only where they fit
            baselines.insert(1, Baseline("python_ref_parallel", lambda q, k, v, i, f, chunk_size:
                                         python_ref.mlstm_parallel(*(x.float() for x in (q, k, v, i, f)))))
        # perf-anchors.md: forward FLOPs per token and head; forward + backward about 3.4 times that.
        flops = B * S * NH * (4 * DQK * DV + 2 * DQK * DV / L + 2 * 0.5 * L * (DQK + DV))
        cases.append(Case(
            name="mlstm_chunkwise", params=dict(B=B, NH=NH, S=S, DHQK=DQK, DHV=DV, chunk=L,
                                                path=_mlstm_chunkwise_path(device, dtype)), tokens=B * S,
            flops_fwd=flops, flops_fwd_bwd=3.4 * flops,
            make_inputs=lambda specs=specs, seed=S + DQK: random_inputs(seed, device, *specs),
            kernel=lambda q, k, v, i, f, L=L: ops.mlstm_chunkwise(q, k, v, i, f, chunk_size=L),
            baselines=[_bind_chunk(b, L) for b in baselines]))
    return cases


def _bind_chunk(baseline: Baseline, chunk_size: int) -> Baseline:
    if baseline.fn is None:
        return baseline
    return Baseline(baseline.name, lambda *inputs, fn=baseline.fn: fn(*inputs, chunk_size=chunk_size))


# (B, S, embedding, heads)
LAYER_SIZES = {
    "cpu": {"tiny": [(2, 3, 8, 2)], "quick": [(8, 64, 128, 4)], "default": [(8, 256, 128, 4)],
            "full": [(8, 256, 128, 4), (8, 1024, 128, 4)]},
    "cuda": {"tiny": [(2, 3, 8, 2)], "quick": [(16, 1024, 768, 12)], "default": [(16, 1024, 768, 12)],
             "full": [(16, 1024, 768, 12), (16, 1024, 768, 6)]},
}
add_sweeps(LAYER_SIZES, {"batch": 0, "seq": 1})
# The mLSTM issue's CPU targets: B = 8, embedding 128, 4 heads at S = 256 and 2048.
MLSTM_LAYER_SIZES = {
    "cpu": {"tiny": [(2, 3, 8, 2)], "quick": [(8, 64, 128, 4)], "default": [(8, 256, 128, 4)],
            "full": [(8, 256, 128, 4), (8, 2048, 128, 4)]},
    "cuda": {"tiny": [(2, 3, 8, 2)], "quick": [(16, 2048, 1024, 8)], "default": [(16, 2048, 1024, 8)],
             "full": [(16, 2048, 1024, 8), (4, 8192, 1024, 8)]},
}
add_sweeps(MLSTM_LAYER_SIZES, {"batch": 0, "seq": 1})


def _reference_layer(make: Callable, device: torch.device, dtype: torch.dtype) -> Baseline:
    """A layer of the reference package, built by make(xlstm dtype name), when it is installed."""
    if importlib.util.find_spec("xlstm") is None:
        return Baseline("xlstm", None, "not installed")
    try:
        name = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}[dtype]
        layer = make(name).to(device, dtype)
    except Exception as error:  # a baseline that cannot be built is reported, not fatal
        return Baseline("xlstm", None, f"does not build here: {type(error).__name__}: {error}"[:200])
    return Baseline("xlstm", lambda x: layer(x))


def _reference_slstm_layer(E: int, NH: int, device: torch.device, dtype: torch.dtype) -> Baseline:
    """The reference sLSTMLayer: its 'vanilla' (PyTorch loop) backend on the CPU, CUDA on the GPU."""
    def make(dtype_name):
        from xlstm.blocks.slstm.layer import sLSTMLayer, sLSTMLayerConfig
        return sLSTMLayer(sLSTMLayerConfig(embedding_dim=E, num_heads=NH, conv1d_kernel_size=4, dtype=dtype_name,
                                           backend="cuda" if device.type == "cuda" else "vanilla"))
    return _reference_layer(make, device, dtype)


def _reference_mlstm_layer(E: int, NH: int, S: int, device: torch.device, dtype: torch.dtype) -> Baseline:
    """The reference mLSTMLayer (its parallel form)."""
    def make(_):
        from xlstm.blocks.mlstm.layer import mLSTMLayer, mLSTMLayerConfig
        return mLSTMLayer(mLSTMLayerConfig(embedding_dim=E, num_heads=NH, context_length=S))
    return _reference_layer(make, device, dtype)


@suite("layer")
def layer_cases(device: torch.device, dtype: torch.dtype, preset: str) -> list[Case]:
    from ..layers import mLSTMLayer, sLSTMLayer

    cases = []
    for B, S, E, NH in LAYER_SIZES[device.type].get(preset, []):
        layer = sLSTMLayer(E, NH).to(device, dtype)
        baselines = [_reference_slstm_layer(E, NH, device, dtype),
                     _lstm_baseline(E, device, dtype, lambda x: x)]
        flops = _slstm_flops(B, S, NH, E // NH) + 2.0 * B * S * 4 * E * E // NH  # recurrence + gate projections
        cases.append(Case(
            name="sLSTMLayer", params=dict(B=B, S=S, E=E, NH=NH, path=_slstm_path(device, E // NH)),
            tokens=B * S, flops_fwd=flops, flops_fwd_bwd=3 * flops,
            make_inputs=lambda B=B, S=S, E=E, seed=S + E: random_inputs(seed, device, ((B, S, E), dtype, 0.0)),
            kernel=lambda x, layer=layer: layer(x)[0], baselines=baselines))
    for B, S, E, NH in MLSTM_LAYER_SIZES[device.type].get(preset, []):
        layer = mLSTMLayer(E, NH).to(device, dtype)
        inner, DH = layer.inner, layer.inner // NH
        flops = B * S * (2 * E * 2 * inner + 2 * inner * E + NH * (4 * DH * DH + 2 * 32 * 2 * DH))
        cases.append(Case(
            name="mLSTMLayer", params=dict(B=B, S=S, E=E, NH=NH), tokens=B * S, flops_fwd=flops,
            flops_fwd_bwd=3 * flops,
            make_inputs=lambda B=B, S=S, E=E, seed=S + E + 1: random_inputs(seed, device, ((B, S, E), dtype, 0.0)),
            kernel=lambda x, layer=layer: layer(x)[0],
            baselines=[_reference_mlstm_layer(E, NH, S, device, dtype), _lstm_baseline(E, device, dtype, lambda x: x)]))
    return cases


from . import cases_large  # noqa: E402,F401  (registers the "large" suite: the xLSTM 7B architecture)
from . import cases_models  # noqa: E402,F401  (registers the model suite)
