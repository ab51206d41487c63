"""Timing, statistics, device ceilings and reports (table, JSON, CSV) for the cases of cases.py.

Measuring (/work/shared/perf-anchors.md): warm-up, then repeated timed calls on random data, and the
median with min, max and IQR. CPU: time.perf_counter around each call at a fixed thread count.
GPU: CUDA events around each call, with the L2 cache flushed before each. The repeat counts share
the preset's time budget, so a run takes about that long whatever the suites hold.
"""
from __future__ import annotations

import csv
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

import xlstm_cuda

from . import perf_model
from .cases import SUITES, Case

PHASES = ("fwd", "fwd_bwd")


@dataclass(frozen=True)
class Preset:
    budget_s: float  # timed seconds for the whole run, shared by all measurements
    warmup_s: float  # per measurement, after at least two calls
    min_reps: int
    max_reps: int


PRESETS = {
    "tiny": Preset(budget_s=0.0, warmup_s=0.0, min_reps=2, max_reps=2),
    "quick": Preset(budget_s=12.0, warmup_s=0.05, min_reps=5, max_reps=10_000),
    "default": Preset(budget_s=50.0, warmup_s=0.2, min_reps=5, max_reps=10_000),
    "full": Preset(budget_s=240.0, warmup_s=0.5, min_reps=5, max_reps=100_000),
}


class CpuTimer:
    def __call__(self, call, reps: int) -> list[float]:
        """Milliseconds taken by each of reps calls."""
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1e3)
        return times

    def peak_memory(self, call) -> None:
        return None  # no allocator statistics on the CPU


class CudaTimer:
    L2_FLUSH_BYTES = 256 * 2**20  # larger than any current GPU's L2 cache

    def __init__(self, device: torch.device):
        self.flush_buffer = torch.empty(self.L2_FLUSH_BYTES, dtype=torch.uint8, device=device)

    def __call__(self, call, reps: int) -> list[float]:
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
        for start, end in events:
            self.flush_buffer.zero_()  # so that no call finds the previous one's data in L2
            start.record()
            call()
            end.record()
        torch.cuda.synchronize()
        return [start.elapsed_time(end) for start, end in events]

    def peak_memory(self, call) -> int:
        """Bytes allocated by one call at its peak, beyond what was held before it."""
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        held = torch.cuda.memory_allocated()
        call()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - held


def summarize(times_ms: list[float]) -> dict:
    q1, _, q3 = statistics.quantiles(times_ms, n=4, method="inclusive")
    return dict(median_ms=statistics.median(times_ms), min_ms=min(times_ms), max_ms=max(times_ms),
                iqr_ms=q3 - q1, reps=len(times_ms))


def measure(call, timer, budget_s: float, preset: Preset) -> dict:
    """Warm up (first calls allocate, fill caches, start thread pools), then time calls until budget_s of
    wall-clock time is spent, within the preset's bounds on the count. The calls go in chunks of about
    a tenth of the budget, so that calls slower than the warm-up's (a loaded machine) do not overrun it."""
    gc.collect()
    gc.disable()  # no collector pauses inside timed calls
    try:
        warm = []
        while len(warm) < 2 or sum(warm) < preset.warmup_s * 1e3:
            warm += timer(call, 1)
        chunk = int(budget_s * 1e2 / max(statistics.median(warm), 1e-6))
        times, deadline = [], time.perf_counter() + budget_s
        while len(times) < preset.min_reps or (len(times) < preset.max_reps and time.perf_counter() < deadline):
            times += timer(call, max(1, min(chunk, preset.max_reps - len(times))))
    finally:
        gc.enable()
    return summarize(times) | dict(peak_mem_bytes=timer.peak_memory(call))


def tensors_of(tree) -> list[torch.Tensor]:
    """The tensors in a nest of tuples and lists, as ops return them."""
    if isinstance(tree, torch.Tensor):
        return [tree]
    return [t for item in tree for t in tensors_of(item)]


def phase_calls(fn, inputs: list[torch.Tensor]) -> dict:
    """The calls to time: the forward without autograd, and forward+backward through autograd from random
    upstream gradients to every floating-point input and every parameter fn's modules hold, as a training
    step computes them (None when fn has no differentiable output)."""
    def forward():
        with torch.no_grad():
            fn(*inputs)

    call_inputs = [x.detach().requires_grad_() if x.is_floating_point() else x for x in inputs]

    def differentiable_outputs():
        return [t for t in tensors_of(fn(*call_inputs)) if t.requires_grad]

    gen = torch.Generator().manual_seed(0)
    upstream = [torch.randn(t.shape, generator=gen).to(t) for t in differentiable_outputs()]

    def forward_backward():
        torch.autograd.backward(differentiable_outputs(), upstream)  # into .grad of inputs and parameters

    return dict(fwd=forward, fwd_bwd=forward_backward if upstream else None)


def measure_fn(fn, inputs, tokens: int, timer, budget_s: float, preset: Preset) -> dict:
    results = {}
    for phase, call in phase_calls(fn, inputs).items():
        if call is None:
            results[phase] = dict(skipped="no differentiable output")
            continue
        stats = measure(call, timer, budget_s, preset)
        results[phase] = stats | dict(tokens_per_s=tokens / (stats["median_ms"] * 1e-3))
    return results


def traffic_bytes(inputs: list[torch.Tensor], outputs: list[torch.Tensor]) -> dict:
    """Compulsory memory traffic: the forward reads each input and writes each output once; the backward
    reads the upstream gradients and the inputs and writes the input gradients."""
    read, written = (sum(t.numel() * t.element_size() for t in ts) for ts in (inputs, outputs))
    return dict(fwd=read + written, fwd_bwd=3 * read + 2 * written)


def measure_ceilings(device: torch.device, timer, preset: Preset) -> dict:
    """What the device reaches on a large device-to-device copy and a large bf16 matmul."""
    budget_s = min(2.0, preset.budget_s / 20)
    source = torch.empty(2**30, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    copy = measure(lambda: target.copy_(source), timer, budget_s, preset)
    size = 8192
    a, b = (torch.randn(size, size, dtype=torch.bfloat16, device=device) for _ in range(2))
    matmul = measure(lambda: torch.mm(a, b), timer, budget_s, preset)
    return dict(hbm_bytes_per_s=2 * source.numel() / (copy["median_ms"] * 1e-3),  # read + write
                matmul_flops_per_s=2 * size**3 / (matmul["median_ms"] * 1e-3),
                method=f"copy of {source.numel() >> 20} MiB; bf16 matmul {size}x{size}x{size}")


def run_case(case: Case, timer, budget_s: float, preset: Preset, ceilings: dict | None) -> dict:
    inputs = case.make_inputs()
    with torch.no_grad():
        outputs = tensors_of(case.kernel(*inputs))
    ours = measure_fn(case.kernel, inputs, case.tokens, timer, budget_s, preset)
    result = dict(name=case.name, params=case.params, tokens=case.tokens, **ours, baselines={})
    for baseline in case.baselines:
        if baseline.fn is None:
            result["baselines"][baseline.name] = dict(skipped=baseline.skipped)
            continue
        try:
            theirs = measure_fn(baseline.fn, inputs, case.tokens, timer, budget_s, preset)
        except Exception as error:  # a third-party baseline whose API moved is reported, not fatal
            result["baselines"][baseline.name] = dict(skipped=f"failed: {type(error).__name__}: {error}")
            continue
        theirs["ratio"] = {phase: theirs[phase]["median_ms"] / ours[phase]["median_ms"]
                           for phase in PHASES if "median_ms" in theirs[phase] and "median_ms" in ours[phase]}
        result["baselines"][baseline.name] = theirs
    result["ceiling_fraction"] = None
    if ceilings is not None:
        traffic = traffic_bytes(inputs, outputs)
        flops = dict(fwd=case.flops_fwd, fwd_bwd=case.flops_fwd_bwd)
        result["ceiling_fraction"] = {
            phase: dict(hbm=traffic[phase] / (ours[phase]["median_ms"] * 1e-3) / ceilings["hbm_bytes_per_s"],
                        matmul=flops[phase] / (ours[phase]["median_ms"] * 1e-3) / ceilings["matmul_flops_per_s"],
                        bytes=traffic[phase], flops=flops[phase])
            for phase in PHASES if "median_ms" in ours[phase]}
        result["model"] = model_estimate(case, ceilings)
    return result


def model_estimate(case: Case, ceilings: dict) -> dict | None:
    """The static performance model's lower bound for the case (perf_model.py), at the measured
    ceilings, in ms per phase; None for cases it does not cover."""
    estimate = perf_model.case_estimate(case.name, case.params,
                                        perf_model.device_from_ceilings(ceilings, "this GPU"))
    return None if estimate is None else {phase: estimate[phase] * 1e3 for phase in PHASES}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """The source tree's commit, marked -dirty when tracked files differ from it."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                              text=True, check=True).stdout.strip()
    try:
        return git("rev-parse", "HEAD") + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def machine_info(device: torch.device) -> dict:
    info = dict(date=datetime.now(timezone.utc).isoformat(timespec="seconds"), host=platform.node(),
                cpu=cpu_model(), cpu_count=os.cpu_count(), threads=torch.get_num_threads(),
                load_average=os.getloadavg(),  # other processes' load makes CPU timings unreliable
                python=platform.python_version(), torch=torch.__version__, git_commit=git_commit(),
                build_info=xlstm_cuda.build_info())
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def run(suites: list[str], device: torch.device, dtype: torch.dtype, preset_name: str, threads: int,
        sweep: str | None = None) -> dict:
    """Measure every case of the suites (the preset's sizes, or a sweep's: "seq", "batch", "head");
    progress on stderr; returns the report (see write_json)."""
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        sizes = (f"{'tiny-' if preset_name == 'tiny' else ''}sweep-{sweep}") if sweep else preset_name
        return _run(suites, device, dtype, preset_name, sizes)
    finally:
        torch.set_num_threads(threads_before)  # run() may be called in-process, by the tests


def _run(suites: list[str], device: torch.device, dtype: torch.dtype, preset_name: str, sizes: str) -> dict:
    preset = PRESETS[preset_name]
    cases = [(name, case) for name in suites for case in SUITES[name](device, dtype, sizes)]
    header = dict(machine_info(device), device=str(device), dtype=str(dtype).removeprefix("torch."),
                  suites=suites, preset=preset_name, sizes=sizes)
    timer = CudaTimer(device) if device.type == "cuda" else CpuTimer()
    ceilings = header["ceilings"] = measure_ceilings(device, timer, preset) if device.type == "cuda" else None
    n_measurements = sum(len(PHASES) * (1 + sum(b.fn is not None for b in case.baselines)) for _, case in cases)
    budget_s = preset.budget_s / max(n_measurements, 1)
    results = []
    for index, (suite_name, case) in enumerate(cases, 1):
        result = dict(suite=suite_name, device=header["device"], dtype=header["dtype"],
                      **run_case(case, timer, budget_s, preset, ceilings))
        results.append(result)
        print(f"[{index}/{len(cases)}] {result['name']} {shape_of(result)}: "
              f"fwd {time_cell(result['fwd'])} ms, fwd+bwd {time_cell(result['fwd_bwd'])} ms", file=sys.stderr,
              flush=True)
    header["load_average_end"] = os.getloadavg()
    return dict(header=header, cases=results)


# ---- reports ------------------------------------------------------------------------------------------

def shape_of(result: dict) -> str:
    return " ".join(f"{key}={value}" for key, value in result["params"].items())


def time_cell(stats: dict) -> str:
    return f"{stats['median_ms']:.4g}" if "median_ms" in stats else "-"


def si(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def pair(values: list[float | None], fmt) -> str:
    """A forward and a forward+backward figure in one cell."""
    return " / ".join("-" if value is None else fmt(value) for value in values)


def format_table(report: dict) -> str:
    cases = report["cases"]
    baseline_names = list(dict.fromkeys(name for result in cases for name in result["baselines"]))
    on_gpu = report["header"]["ceilings"] is not None
    columns = ["case", "device", "dtype", "shape", "fwd ms", "fwd+bwd ms", "tokens/s fwd / fwd+bwd",
               *(f"vs {name}" for name in baseline_names),
               *(["% HBM", "% matmul", "model ms fwd / fwd+bwd"] if on_gpu else [])]
    rows = []
    for result in cases:
        row = [result["name"], result["device"], result["dtype"], shape_of(result), time_cell(result["fwd"]),
               time_cell(result["fwd_bwd"]), pair([result[p].get("tokens_per_s") for p in PHASES], si)]
        for name in baseline_names:
            baseline = result["baselines"].get(name)
            if baseline is None or "skipped" in baseline:
                row.append("-" if baseline is None else "skipped")
            else:
                row.append(pair([baseline["ratio"].get(p) for p in PHASES], lambda r: f"{r:.3g}x"))
        if on_gpu:
            fractions = [result["ceiling_fraction"].get(p) for p in PHASES]
            for ceiling in ("hbm", "matmul"):
                row.append(pair([f and f[ceiling] for f in fractions], lambda x: f"{100 * x:.3g}"))
            model = result.get("model")
            row.append("-" if model is None else pair([model[p] for p in PHASES], lambda ms: f"{ms:.4g}"))
        rows.append(row)
    widths = [max(len(line[c]) for line in [columns, *rows]) for c in range(len(columns))]
    text_columns = 4  # left-aligned; the figures are right-aligned

    def line(cells):
        return "  ".join(cell.ljust(w) if c < text_columns else cell.rjust(w)
                         for c, (cell, w) in enumerate(zip(cells, widths))).rstrip()

    header = report["header"]
    lines = [f"xlstm_cuda bench: {header['preset']} preset, {header.get('gpu', header['cpu'])}, "
             f"CPU threads: {header['threads']}, load average {header['load_average'][0]:.2f}, "
             f"torch {header['torch']}, commit {header['git_commit']}"]
    if on_gpu:
        ceilings = header["ceilings"]
        lines.append(f"measured ceilings: {ceilings['hbm_bytes_per_s'] / 1e9:.0f} GB/s, "
                     f"{ceilings['matmul_flops_per_s'] / 1e12:.0f} TFLOP/s ({ceilings['method']})")
    lines += [line(columns), line(["-" * w for w in widths]), *map(line, rows), ""]
    lines.append("times: medians; 'vs X': X's median time / ours, forward / forward+backward (above 1: ours is faster)")
    if on_gpu:
        lines.append("% HBM, % matmul: compulsory memory traffic and model FLOPs per median time, "
                     "as % of the measured ceilings")
        lines.append("model ms: the static performance model's lower bound (python -m xlstm_cuda.bench.perf_model) "
                     "at the measured ceilings, an estimate")
    skipped = {f"{name}: skipped ({baseline['skipped']})" for result in cases
               for name, baseline in result["baselines"].items() if "skipped" in baseline}
    lines += sorted(skipped)
    if header["load_average_end"][0] > header["cpu_count"] + 1:  # more than this run's own threads
        lines.append(f"warning: load average {header['load_average_end'][0]:.2f} on {header['cpu_count']} CPUs "
                     "at the end of the run: other processes competed for the CPUs, the times are unreliable")
    return "\n".join(lines)


def write_json(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def write_csv(report: dict, path: Path) -> None:
    """One row per case, with every field of the JSON case as a dotted column."""
    rows = [flatten(result) for result in report["cases"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
        writer.writeheader()
        writer.writerows(rows)
