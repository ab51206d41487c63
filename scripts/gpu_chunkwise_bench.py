"""The chunkwise mLSTM on a GPU at the anchor shapes (../shared/perf-anchors.md: NH 16, DHQK 128, DHV 256,
B·S = 65536 tokens, bf16): our tensor-core kernels (bf16, chunks 64 and 128), our CUDA-core kernels (the
float32 path, the same shapes), and TFLA (mlstm_kernels' mlstm_chunkwise__xl_chunk, chunk 128) where it is
installed; forward and forward + backward, as milliseconds and as TFLOP/s against the measured bf16 matmul
ceiling of this GPU. Writes a JSON report. Run by scripts/gpu_check.sh; a measurement, not a test.

Timing: CUDA events, warm-up first, the median of repeated runs, L2 flushed before each."""
import argparse
import json
import statistics
import sys
import time

import torch

import xlstm_cuda

SHAPES = [(8, 16, 8192, 128, 256), (1, 16, 65536, 128, 256)]  # (B, NH, S, DHQK, DHV)


def flops_forward(B, NH, S, DQK, DV, L):
    """perf-anchors.md: forward FLOPs per token and head; forward + backward is about 3.4 times that."""
    return B * S * NH * (4 * DQK * DV + 2 * DQK * DV / L + 2 * 0.5 * L * (DQK + DV))


def timed(fn, reps, flush):
    """Median milliseconds of fn() over reps runs, L2 flushed before each."""
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        flush.zero_()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def matmul_ceiling(flush):
    """bf16 TFLOP/s of a large square matmul: the tensor-core ceiling the kernels are measured against."""
    n = 8192
    a, b = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    ms = timed(lambda: a @ b, 20, flush)
    return 2 * n ** 3 / ms / 1e9


def inputs(B, NH, S, DQK, DV, dtype, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    r = lambda *s, shift=0.0: (torch.randn(*s, device="cuda", generator=g) + shift).to(dtype)  # noqa: E731
    return [r(B, NH, S, DQK), r(B, NH, S, DQK), r(B, NH, S, DV), r(B, NH, S), r(B, NH, S, shift=3.0)]


def candidates():
    """(name, dtype, chunk, fn(q, k, v, i, f) -> h)."""
    ours = lambda L: (lambda q, k, v, i, f: xlstm_cuda.mlstm_chunkwise(q, k, v, i, f, chunk_size=L)[0])  # noqa: E731
    found = [("ours tensor cores L64", torch.bfloat16, 64, ours(64)),
             ("ours tensor cores L128", torch.bfloat16, 128, ours(128)),
             ("ours CUDA cores (float32) L64", torch.float32, 64, ours(64))]
    try:
        from mlstm_kernels.torch.chunkwise import mlstm_chunkwise__xl_chunk
    except ImportError as error:
        print(f"TFLA unavailable: {error}", file=sys.stderr)
    else:
        found.append(("TFLA (mlstm_kernels xl_chunk) L128", torch.bfloat16, 128,
                      lambda q, k, v, i, f: mlstm_chunkwise__xl_chunk(q, k, v, i, f, chunk_size=128)))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", default="chunkwise_bench.json")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--budget", type=float, default=150.0, help="seconds; the shapes left after it are skipped "
                        "and reported as such")
    args = parser.parse_args()
    began = time.time()
    flush = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")
    ceiling = matmul_ceiling(flush)
    print(f"bf16 matmul ceiling: {ceiling:.0f} TFLOP/s ({torch.cuda.get_device_name()})")
    report = {"device": torch.cuda.get_device_name(), "matmul_tflops": ceiling, "paths": {
        d: xlstm_cuda._C.mlstm_chunkwise_cuda_path(d) for d in ("bfloat16", "float32")}, "rows": []}
    for B, NH, S, DQK, DV in SHAPES:
        for name, dtype, L, fn in candidates():
            row = dict(name=name, B=B, NH=NH, S=S, DHQK=DQK, DHV=DV, chunk=L, dtype=str(dtype))
            if time.time() - began > args.budget:
                row["skipped"] = "past the time budget"
                report["rows"].append(row)
                continue
            try:
                xs = inputs(B, NH, S, DQK, DV, dtype, seed=S)
                fwd = timed(lambda: fn(*xs), args.reps, flush)
                leaves = [x.requires_grad_(True) for x in xs]
                dh = torch.randn(B, NH, S, DV, device="cuda", dtype=dtype)
                both = timed(lambda: torch.autograd.grad(fn(*leaves), leaves, dh), args.reps, flush)
            except Exception as error:  # noqa: BLE001 - a failing candidate is reported, the others still run
                row["error"] = f"{type(error).__name__}: {error}"[:300]
                report["rows"].append(row)
                print(f"{name} at B={B} S={S}: {row['error']}")
                continue
            f = flops_forward(B, NH, S, DQK, DV, L)
            row.update(fwd_ms=fwd, fwd_bwd_ms=both, fwd_tflops=f / fwd / 1e9, fwd_bwd_tflops=3.4 * f / both / 1e9)
            row.update(fwd_of_ceiling=row["fwd_tflops"] / ceiling, fwd_bwd_of_ceiling=row["fwd_bwd_tflops"] / ceiling)
            report["rows"].append(row)
            print(f"{name:36s} B={B} S={S:6d}: fwd {fwd:8.2f} ms ({row['fwd_tflops']:6.1f} TFLOP/s, "
                  f"{100 * row['fwd_of_ceiling']:4.1f} %)  fwd+bwd {both:8.2f} ms ({row['fwd_bwd_tflops']:6.1f} "
                  f"TFLOP/s, {100 * row['fwd_bwd_of_ceiling']:4.1f} %)", flush=True)
            del xs, leaves, dh
            torch.cuda.empty_cache()
    with open(args.json, "w") as file:
        json.dump(report, file, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
