"""A static performance model of the CUDA kernels: estimates, not measurements.

For every CUDA kernel launch that a GPU benchmark case makes, the model takes the launch as the host
code makes it (grid, block, dynamic shared memory), the kernel's resource usage (registers from the
built module's `cuobjdump -res-usage` where it can be read, else the sm_90 ptxas figures recorded in
RESOURCES), the FLOPs and DRAM bytes the kernel moves, and what its SASS lets one thread keep in
flight, and bounds its time from below at a device's ceilings:

    occupancy      blocks per SM from threads, registers (8-register units, 256 per warp) and
                   shared memory (+1 KB reserved per block on sm_90); busy SMs = min(SMs, blocks)
    memory         bytes / min(HBM, busy SMs x 64 B/clk L2->SM fill), and the reads at least
                   read bytes / (bytes in flight / DRAM latency), bytes in flight = resident
                   threads x what one thread has outstanding (Little's law)
    compute        FLOPs / (FP32 peak x busy SMs / SMs x efficiency), efficiency < 1 where the SASS
                   shows another limit (the CUDA-core tile product's 1 LDS per 2 FFMA)
    issue          thread-instructions / (busy SMs x 128 per clk), for kernels bound by instructions
    time           launch + dependent DRAM round trips x latency + serial steps x step latency
                   + max(memory, compute, issue)

`python -m xlstm_cuda.bench.perf_model` prints it for the benchmark's GPU sizes on nominal H200
ceilings (no GPU needed); `python -m xlstm_cuda.bench --device cuda` prints each case's estimate
beside its measurement, on the ceilings measured in that run.
"""
from __future__ import annotations

import argparse
import math
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class Device:
    name: str
    sms: int = 132
    clock_hz: float = 1.98e9
    hbm_bytes_per_s: float = 4.3e12  # nominal 4.8; copies reach about 4.0-4.3
    fp32_flops_per_s: float = 67e12  # 132 SMs x 128 FFMA lanes x 2 x 1.98 GHz
    tensor_flops_per_s: float = 790e12  # dense bf16, what large matmuls reach
    dram_latency_s: float = 0.6e-6
    l2_latency_s: float = 0.15e-6  # about 300 cycles
    launch_s: float = 3e-6  # launch and completion of a small kernel, as CUDA events see it
    barrier_s: float = 0.05e-6  # a __syncthreads with its shared-memory round trip
    fill_bytes_per_clk_sm: int = 64  # L2 -> SM
    smem_bytes_per_clk_sm: int = 128
    regs_per_sm: int = 65536
    threads_per_sm: int = 2048
    smem_per_sm: int = 228 * 1024
    blocks_per_sm: int = 32


H200 = Device("H200 (nominal ceilings)")


@dataclass(frozen=True)
class Resources:
    registers: int
    static_smem: int = 0


# sm_90 ptxas figures (registers per thread; no kernel below spills or uses a stack frame), for the
# bf16 instances the GPU benchmark runs. The kernels of this branch's mlstm_step, causal conv,
# headwise and output gate: nvcc 13.0 -O3; the sLSTM and chunkwise kernels: the static review of
# commit 03d3d7a (/work/shared/gpu-static-review.md, section 1).
RESOURCES = {
    "mlstm_step_fwd": Resources(80),
    "mlstm_step_bwd": Resources(63),
    "causal_conv1d_silu_fwd": Resources(64),
    "causal_conv1d_silu_bwd": Resources(118),
    "headwise_linear_fwd": Resources(39),
    "headwise_linear_dx": Resources(32),
    "headwise_linear_dw": Resources(32),
    "mlstm_output_gate_fwd": Resources(40),
    "mlstm_output_gate_bwd": Resources(48),
    "slstm_fwd": Resources(48),  # kGlobal; the resident paths 84
    "slstm_bwd": Resources(64),
    "slstm_fwd_resident": Resources(84),
    "slstm_bwd_resident": Resources(84),
    "mlstm_chunkwise_fwd_states": Resources(128),
    "mlstm_chunkwise_fwd_outputs": Resources(72),
    "mlstm_chunkwise_bwd_states": Resources(120),
    "mlstm_chunkwise_bwd_intra": Resources(96),
    "cublas_matmul": Resources(0),  # modelled at the tensor cores' rate, not by occupancy
}
# The mangled-name fragment of each kernel's bf16 instance in the built module.
_MANGLED = {
    "mlstm_step_fwd": r"mlstm_step_fwd_kernelIN3c108BFloat16ELi4E",
    "mlstm_step_bwd": r"mlstm_step_bwd_kernelIN3c108BFloat16E",
    "causal_conv1d_silu_fwd": r"causal_conv1d_silu_fwd_kernelIN3c108BFloat16ELi4ELi4E",
    "causal_conv1d_silu_bwd": r"causal_conv1d_silu_bwd_kernelIN3c108BFloat16ELi4ELi4E",
    "headwise_linear_fwd": r"headwise_linear_fwd_kernelIN3c108BFloat16ELi4E",
    "headwise_linear_dx": r"headwise_linear_dx_kernelIN3c108BFloat16E",
    "headwise_linear_dw": r"headwise_linear_dw_kernelIN3c108BFloat16E",
    "mlstm_output_gate_fwd": r"mlstm_output_gate_fwd_kernelIN3c108BFloat16E",
    "mlstm_output_gate_bwd": r"mlstm_output_gate_bwd_kernelIN3c108BFloat16E",
}


def module_resources() -> dict[str, Resources]:
    """RESOURCES, with the registers of the kernels found in the built module's sm_90 code where
    cuobjdump (triton's bundle, or CUDA's) can read it."""
    resources = dict(RESOURCES)
    tool = _cuobjdump()
    try:
        from .. import _C
    except ImportError:
        return resources
    if tool is None:
        return resources
    try:
        text = subprocess.run([tool, "-res-usage", "-arch", "sm_90", _C.__file__], capture_output=True, text=True,
                              timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return resources
    function = None
    for line in text.splitlines():
        if match := re.search(r"Function (\S+):", line):
            function = match.group(1)
        elif function and (match := re.search(r"REG:(\d+)", line)):
            for key, fragment in _MANGLED.items():
                if re.search(fragment, function):
                    resources[key] = Resources(int(match.group(1)))
            function = None
    return resources


def _cuobjdump() -> str | None:
    try:
        import triton
        bundled = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    return shutil.which("cuobjdump")


@dataclass(frozen=True)
class Launch:
    kernel: str  # a key of RESOURCES
    blocks: int
    threads: int
    smem: int  # dynamic shared memory per block, bytes
    flops: float
    read: float  # DRAM bytes
    write: float
    inflight_per_thread: float  # bytes of loads one thread has outstanding at once (from the SASS)
    round_trips: int = 1  # dependent DRAM round trips not overlapped with the streaming
    efficiency: float = 1.0  # of the FP32 peak, where the SASS shows a tighter limit
    instructions: float = 0.0  # thread-instructions, for issue-bound kernels
    serial_steps: int = 0  # dependent steps within the launch (the sLSTM's time steps)
    step_s: float = 0.0  # the least time of one such step
    tensor_cores: bool = False  # cuBLAS matmuls


def blocks_per_sm(launch: Launch, resources: Resources, device: Device) -> int:
    warps = math.ceil(launch.threads / 32)
    regs_per_warp = math.ceil(resources.registers * 32 / 256) * 256
    limits = [device.blocks_per_sm, device.threads_per_sm // (warps * 32),
              device.regs_per_sm // (regs_per_warp * warps)]
    smem = launch.smem + resources.static_smem
    if smem > 0:
        limits.append(device.smem_per_sm // (smem + 1024))
    return max(0, min(limits))


def estimate(launch: Launch, device: Device, resources: dict[str, Resources]) -> dict:
    """The launch's occupancy and lower-bound time (seconds), with the term that sets it."""
    per_sm = blocks_per_sm(launch, resources[launch.kernel], device) if not launch.tensor_cores else 1
    concurrent = per_sm * device.sms
    busy = min(device.sms, launch.blocks)
    fill = busy * device.fill_bytes_per_clk_sm * device.clock_hz
    stream_bw = min(device.hbm_bytes_per_s, fill)
    inflight = min(launch.blocks, concurrent) * launch.threads * launch.inflight_per_thread
    terms = {"memory": (launch.read + launch.write) / stream_bw}
    if launch.inflight_per_thread > 0:
        terms["loads in flight"] = launch.read / (inflight / device.dram_latency_s)
    if launch.flops:
        peak = device.tensor_flops_per_s if launch.tensor_cores else device.fp32_flops_per_s
        terms["compute"] = launch.flops / (peak * busy / device.sms * launch.efficiency)
    if launch.instructions:
        terms["issue"] = launch.instructions / (busy * 128 * device.clock_hz)
    bound = max(terms, key=terms.get)
    fixed = device.launch_s + launch.round_trips * device.dram_latency_s + launch.serial_steps * launch.step_s
    return dict(kernel=launch.kernel, blocks=launch.blocks, threads=launch.threads, smem=launch.smem,
                registers=resources[launch.kernel].registers, blocks_per_sm=per_sm,
                waves=math.ceil(launch.blocks / concurrent) if concurrent else math.inf, busy_sms=busy,
                flops=launch.flops, bytes=launch.read + launch.write, time_s=fixed + terms[bound],
                bound=bound if terms[bound] > fixed - device.launch_s else "latency")


# ---- the launches of each op, as its host code makes them --------------------------------------------

BF16 = 2
F32 = 4


def mlstm_step_launches(B: int, NH: int, DQK: int, DV: int, backward: bool) -> list[Launch]:
    rows, slices = B * NH, math.ceil(DV / 32)
    vec = 4 if DV % 4 == 0 else 1
    state = rows * DQK * DV * F32
    small_in = rows * (2 * DQK * BF16 + DQK * F32 + DV * BF16)
    fwd = Launch("mlstm_step_fwd", blocks=rows * slices, threads=256, smem=(2 * DQK + 256 * vec + 32) * F32,
                 flops=5.0 * rows * DQK * DV, read=state + slices * small_in,
                 write=state + rows * (DQK * F32 + DV * BF16),
                 inflight_per_thread=32 * F32,  # one sweep: 8 LDG.E.128 before the first store
                 round_trips=math.ceil(DQK / 256))
    if not backward:
        return [fwd]
    # The backward: a block per (b, h); its column pass holds 8 rows of C and dC' per thread
    # (16 LDG before 8 STG), the row pass re-reads both (from L2 at these sizes, counted as fill).
    bwd = Launch("mlstm_step_bwd", blocks=rows, threads=min(256, 32 * math.ceil(DV / 32)),
                 smem=(5 * DQK + 2 * DV + 96) * F32, flops=12.0 * rows * DQK * DV,
                 read=2 * state + small_in + rows * DV * BF16, write=state + rows * (2 * DQK * BF16 + DQK * F32),
                 inflight_per_thread=16 * F32, round_trips=3)
    return [fwd, bwd]


def conv_launches(B: int, S: int, D: int, K: int, backward: bool) -> list[Launch]:
    tiles_x, tiles_t = math.ceil(D / 128), math.ceil(S / 128)
    io = B * S * D * BF16
    fwd = Launch("causal_conv1d_silu_fwd", blocks=tiles_x * tiles_t * B, threads=256, smem=0,
                 flops=(2 * K + 5) * B * S * D, read=io * (1 + (K - 1) / 16), write=io,
                 inflight_per_thread=K * 4 * F32 + (K - 1) * 4 * BF16,
                 instructions=B * S * D / 4 * 200)  # the SASS loop body: ~200 per step of 4 channels (K=4)
    if not backward:
        return [fwd]
    span = S + K - 1
    bwd_tiles = math.ceil(span / 128) * B
    bwd = Launch("causal_conv1d_silu_bwd", blocks=tiles_x * bwd_tiles, threads=256, smem=4 * 256 * F32,
                 flops=(5 * K + 10) * B * S * D, read=2 * io * (1 + (K - 1) / 16),
                 write=io + bwd_tiles * (K + 1) * D * F32, inflight_per_thread=2 * 4 * BF16,
                 instructions=B * span * D / 4 * 300, round_trips=2)  # SASS loop: ~300 per step (K=4)
    return [fwd, bwd]


def headwise_launches(B: int, S: int, G: int, O: int, I: int, backward: bool) -> list[Launch]:
    rows = B * S
    x_bytes, y_bytes = rows * G * I * BF16, rows * G * O * BF16
    fwd = Launch("headwise_linear_fwd", blocks=math.ceil(G * O / 256) * math.ceil(S / 16) * B, threads=256,
                 smem=0, flops=2.0 * rows * G * O * I, read=x_bytes, write=y_bytes, inflight_per_thread=4 * BF16,
                 instructions=rows * G * O * (8 + 3 * I))  # per output: a guess from the C++, not the SASS
    if not backward:
        return [fwd]
    entries, tiles = G * O * I, math.ceil(S / 256) * B
    dx = Launch("headwise_linear_dx", blocks=math.ceil(G * I / 256) * math.ceil(S / 16) * B, threads=256, smem=0,
                flops=2.0 * rows * G * O * I, read=y_bytes, write=x_bytes, inflight_per_thread=BF16,
                instructions=rows * G * I * (8 + 4 * O))
    dw = Launch("headwise_linear_dw", blocks=math.ceil(entries / 256) * tiles, threads=256, smem=0,
                flops=2.0 * rows * entries, read=x_bytes + y_bytes, write=tiles * entries * F32,
                inflight_per_thread=2 * BF16, instructions=rows * entries * 6)
    return [fwd, dx, dw]


def output_gate_launches(rows: int, NH: int, DH: int, backward: bool) -> list[Launch]:
    """Grid (row tiles of 64, heads), a warp per row's head segment; h is read twice more for its
    statistics (from L1/L2), the backward's dĥ goes through shared memory."""
    D = NH * DH
    io = rows * D * BF16
    tiles = math.ceil(rows / 64)
    fwd = Launch("mlstm_output_gate_fwd", blocks=tiles * NH, threads=256, smem=0,
                 flops=16.0 * rows * D, read=3 * io, write=io, inflight_per_thread=3 * BF16,
                 instructions=rows * D * 50)
    if not backward:
        return [fwd]
    warps = min(8, (48 * 1024) // (3 * DH * F32))
    bwd = Launch("mlstm_output_gate_bwd", blocks=tiles * NH, threads=32 * warps, smem=warps * 3 * DH * F32,
                 flops=30.0 * rows * D, read=4 * io, write=3 * io + tiles * 2 * D * F32, inflight_per_thread=4 * BF16,
                 instructions=rows * D * 80)
    return [fwd, bwd]


def slstm_launches(B: int, S: int, NH: int, DH: int, backward: bool, device: Device) -> list[Launch]:
    """The sLSTM's persistent kernels: grid (NH, B/4), R on chip (DH <= 128) or streamed from L2,
    S dependent steps, each at least its recurrent product on one SM, R's transfer, two barriers
    and the exposed load of the step's x."""
    resident = DH <= 128
    threads = min(1024, 32 * math.ceil(4 * DH / 32))
    blocks = NH * math.ceil(B / 4)
    r_bytes = 4 * DH * DH * F32
    fma_s = 4 * 4 * DH * DH / 128 / device.clock_hz  # 4 batch rows x R per step on one SM's FP32 lanes
    transfer_s = r_bytes / ((device.smem_bytes_per_clk_sm if resident else device.fill_bytes_per_clk_sm)
                            * device.clock_hz)
    step_s = max(fma_s, transfer_s) + 2 * device.barrier_s + device.dram_latency_s
    x_bytes = B * S * NH * 4 * DH * BF16
    trace = 9 * B * S * NH * DH * F32
    kernel = "slstm_fwd_resident" if resident else "slstm_fwd"
    smem = (r_bytes if resident else 0) + 4 * 5 * DH * F32
    fwd = Launch(kernel, blocks=blocks, threads=threads, smem=min(smem, 227 * 1024), flops=8.0 * B * S * NH * DH * DH,
                 read=x_bytes + NH * r_bytes, write=B * S * NH * DH * BF16 + (trace if backward else 0),
                 inflight_per_thread=0, round_trips=0, serial_steps=S, step_s=step_s)
    if not backward:
        return [fwd]
    bwd = replace(fwd, kernel="slstm_bwd_resident" if resident else "slstm_bwd", read=trace + NH * r_bytes,
                  write=x_bytes, step_s=step_s + device.dram_latency_s + device.barrier_s)
    d_r = Launch("cublas_matmul", blocks=NH, threads=256, smem=0, flops=2.0 * B * S * NH * 4 * DH * DH,
                 read=x_bytes + trace / 9, write=NH * r_bytes, inflight_per_thread=0, round_trips=0,
                 tensor_cores=True)  # at::einsum over the trace
    return [fwd, bwd, d_r]


def chunkwise_launches(B: int, NH: int, S: int, DQK: int, DV: int, L: int, backward: bool,
                       device: Device) -> list[Launch]:
    """The CUDA-core chunkwise kernels (64 x 64 tiles, the n column padding DV + 1 to a whole tile),
    at half the FP32 peak: the tile product issues 1 LDS per 2 FFMA (static review, section 2.4).
    The state passes walk the chunks in order, each chunk's loads waiting for the previous one."""
    BH, chunks = B * NH, S // L
    padded = 64 * math.ceil((DV + 1) / 64)
    qk, v = BH * S * DQK * BF16, BH * S * DV * BF16
    starts = BH * chunks * DQK * DV * F32
    state_flops = 2.0 * BH * chunks * DQK * padded * L
    out_flops = 2.0 * BH * chunks * (L * L * DQK + L * L * padded + L * DQK * padded)
    state_smem, out_smem, intra_smem = 9856, 46976, (62080 if L <= 64 else 160384)
    states = Launch("mlstm_chunkwise_fwd_states", blocks=math.ceil(DQK / 64) * math.ceil((DV + 1) / 64) * BH,
                    threads=256, smem=state_smem, flops=state_flops, read=qk + v, write=starts, inflight_per_thread=0,
                    efficiency=0.5, serial_steps=chunks, step_s=device.dram_latency_s)
    outputs = Launch("mlstm_chunkwise_fwd_outputs", blocks=chunks * BH, threads=256, smem=out_smem, flops=out_flops,
                     read=2 * qk + v + starts, write=v, inflight_per_thread=0, efficiency=0.5)
    if not backward:
        return [states, outputs]
    dh_h = replace(outputs, read=outputs.read + v, write=BH * S * F32)
    bwd_states = replace(states, kernel="mlstm_chunkwise_bwd_states", read=qk + v)
    intra = Launch("mlstm_chunkwise_bwd_intra", blocks=chunks * BH, threads=256, smem=intra_smem,
                   flops=2.3 * out_flops, read=2 * qk + 2 * v + 2.5 * starts, write=2 * qk + v, inflight_per_thread=0,
                   efficiency=0.5)
    return [states, outputs, dh_h, bwd_states, intra]


def gemm(M: int, N: int, K: int) -> Launch:
    """A bf16 cuBLAS matmul (M x K) (K x N), at the tensor cores' rate."""
    return Launch("cublas_matmul", blocks=132, threads=256, smem=0, flops=2.0 * M * N * K,
                  read=(M * K + K * N) * BF16, write=M * N * BF16, inflight_per_thread=0, round_trips=0,
                  tensor_cores=True)


def case_launches(name: str, params: dict, backward: bool, device: Device) -> list[Launch] | None:
    """The launches of one benchmark case (cases.py), forward or forward + backward; None for cases
    the model does not cover."""
    p = params
    if name == "mlstm_step":
        return mlstm_step_launches(p["B"], p["NH"], p["DHQK"], p["DHV"], backward)
    if name == "slstm":
        return slstm_launches(p["B"], p["S"], p["NH"], p["DH"], backward, device)
    if name == "mlstm_chunkwise":
        return chunkwise_launches(p["B"], p["NH"], p["S"], p["DHQK"], p["DHV"], p["chunk"], backward, device)
    if name == "sLSTMLayer":
        B, S, E, NH = p["B"], p["S"], p["E"], p["NH"]
        DH = E // NH
        launches = conv_launches(B, S, E, 4, backward) + headwise_launches(B, S, 2 * NH, 2 * DH, DH, backward)
        return launches + slstm_launches(B, S, NH, DH, backward, device)
    if name == "mLSTMLayer":
        B, S, E, NH = p["B"], p["S"], p["E"], p["NH"]
        inner = 64 * math.ceil(2 * E / 64)
        DH, rows = inner // NH, B * S
        layers = [gemm(rows, 2 * inner, E), gemm(rows, E, inner), gemm(rows, 2 * NH, 3 * inner)]
        if backward:
            layers = layers + [replace(g, flops=2 * g.flops, read=2 * g.read, write=2 * g.write) for g in layers]
        return (layers + conv_launches(B, S, inner, 4, backward)
                + 3 * headwise_launches(B, S, inner // 4, 4, 4, backward)
                + chunkwise_launches(B, NH, S, DH, DH, 64, backward, device) + output_gate_launches(rows, NH, DH, backward))
    return None


def case_estimate(name: str, params: dict, device: Device = H200,
                  resources: dict[str, Resources] | None = None) -> dict | None:
    """{'fwd': seconds, 'fwd_bwd': seconds, 'launches': {...}} for a benchmark case, or None."""
    resources = resources or RESOURCES
    result = {}
    for phase, backward in (("fwd", False), ("fwd_bwd", True)):
        launches = case_launches(name, params, backward, device)
        if launches is None:
            return None
        rows = [estimate(launch, device, resources) for launch in launches]
        result[phase] = sum(row["time_s"] for row in rows)
        result[f"{phase}_launches"] = rows
    return result


def device_from_ceilings(ceilings: dict, name: str) -> Device:
    """The model's device at the ceilings a benchmark run measured (HBM copy, bf16 matmul)."""
    return replace(H200, name=f"{name} (measured ceilings)", hbm_bytes_per_s=ceilings["hbm_bytes_per_s"],
                   tensor_flops_per_s=ceilings["matmul_flops_per_s"])


# ---- the report -------------------------------------------------------------------------------------

def _gpu_cases(preset: str) -> list[tuple[str, dict]]:
    from .cases import LAYER_SIZES, MLSTM_LAYER_SIZES, MLSTM_SIZES, SLSTM_SIZES, STEP_SIZES
    cases = []
    for NH, DQK, DV, batches in STEP_SIZES["cuda"].get(preset, []):
        cases += [("mlstm_step", dict(B=B, NH=NH, DHQK=DQK, DHV=DV)) for B in batches]
    cases += [("slstm", dict(B=B, S=S, NH=NH, DH=DH)) for B, S, NH, DH in SLSTM_SIZES["cuda"].get(preset, [])]
    cases += [("mlstm_chunkwise", dict(B=B, NH=NH, S=S, DHQK=DQK, DHV=DV, chunk=L))
              for B, NH, S, DQK, DV, L in MLSTM_SIZES["cuda"].get(preset, [])]
    cases += [("sLSTMLayer", dict(B=B, S=S, E=E, NH=NH)) for B, S, E, NH in LAYER_SIZES["cuda"].get(preset, [])]
    cases += [("mLSTMLayer", dict(B=B, S=S, E=E, NH=NH)) for B, S, E, NH in MLSTM_LAYER_SIZES["cuda"].get(preset, [])]
    return cases


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.4g}"


def format_report(preset: str, device: Device, resources: dict[str, Resources]) -> str:
    lines = [f"xlstm_cuda static performance model: ESTIMATES (lower bounds), not measurements; {device.name}: "
             f"{device.sms} SMs, {device.hbm_bytes_per_s / 1e12:.2g} TB/s, FP32 {device.fp32_flops_per_s / 1e12:.3g} "
             f"TFLOP/s, tensor {device.tensor_flops_per_s / 1e12:.3g} TFLOP/s, DRAM latency "
             f"{device.dram_latency_s * 1e6:.2g} us, launch {device.launch_s * 1e6:.2g} us", ""]
    header = ["case", "shape", "phase", "kernel", "blocks", "threads", "regs", "smem B", "blocks/SM", "waves",
              "GFLOP", "MB", "bound by", "est. ms"]
    rows = []
    for name, params in _gpu_cases(preset):
        estimate_ = case_estimate(name, params, device, resources)
        shape = " ".join(f"{k}={v}" for k, v in params.items())
        for phase in ("fwd", "fwd_bwd"):
            for launch in estimate_[f"{phase}_launches"]:
                rows.append([name, shape, phase, launch["kernel"], str(launch["blocks"]), str(launch["threads"]),
                             str(launch["registers"]), str(launch["smem"]), str(launch["blocks_per_sm"]),
                             str(launch["waves"]), f"{launch['flops'] / 1e9:.3g}", f"{launch['bytes'] / 1e6:.4g}",
                             launch["bound"], _ms(launch["time_s"])])
            rows.append([name, shape, phase, "total", *[""] * 9, _ms(estimate_[phase])])
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xlstm_cuda.bench.perf_model", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="default", choices=["quick", "default", "full"],
                        help="the benchmark's GPU sizes to model (default: default)")
    parser.add_argument("--recorded", action="store_true",
                        help="use the recorded register counts even where the built module could be read")
    args = parser.parse_args(argv)
    resources = RESOURCES if args.recorded else module_resources()
    print(format_report(args.preset, H200, resources))
    return 0


if __name__ == "__main__":
    sys.exit(main())
