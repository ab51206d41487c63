"""The xLSTM 7B architecture end to end: prefill and decode tokens/s of xLSTMLarge against transformers'
xLSTMForCausalLM (its native PyTorch backend) and the reference xlstm_large.xLSTMLarge (mlstm_kernels'
native kernels; on CUDA also its Triton kernels), with the same weights, in one run. Beside each
figure its floor on this machine: for prefill the dense FLOPs at the float32 matmul rate measured in
the run, for decode the bytes of weights and state read (and the state written) per step at the
measured read bandwidth (each the best of several calls). A decode step only streams its weights
in, so the read rate bounds it: copy bandwidth (printed too) counts bytes read and written, and
this project's VMs copy at 1.3-1.5x the rate at which they read alone; counted once, it is below
the read rate and would make a beatable floor. The models are timed in turn, round
by round, and each figure is the median of its rounds, so that a change in the machine's load
falls on all of them alike.

    python -m xlstm_cuda.bench.cases_large [--shape small|7b-like|all] [--device cpu|cuda] [--threads N]
                                           [--reps N] [--json PATH]

Shapes (vocabulary 50304, 4 heads, 4 blocks): "small", embedding 256 and a 2048-token prompt (the
cells' share is largest); "7b-like", embedding 1024 and a 512-token prompt (the dense projections
dominate). Decode: B = 1 and B = 16, 16 steps after a 16-token prompt; ours also reports how much
the process's resident memory grew over 128 generated tokens (it should not). Ours runs the fused
weight mode (from_pretrained(..., weight_mode="fused")), the baselines their default single mode.
Ours is xLSTMLarge's own init; the baselines get its weights. The suite "large" of the harness (python -m xlstm_cuda.bench --suite large) times the prefills.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from ..integrations.transformers import to_transformers
from ..models.xlstm_large import xLSTMLarge, xLSTMLargeConfig
from .cases import Baseline, Case, suite

SHAPES = {"small": dict(embedding_dim=256, prompt=2048), "7b-like": dict(embedding_dim=1024, prompt=512)}
TINY = dict(embedding_dim=128, prompt=24, vocab_size=101)  # the harness's "tiny" preset (its tests)
VOCAB, HEADS, BLOCKS, DECODE_PROMPT, DECODE_STEPS, BATCHES = 50304, 4, 4, 16, 16, (1, 16)


def make_models(embedding_dim: int, vocab_size: int, device: torch.device) -> dict:
    """Ours (random weights, fused mode) and, with the same weights, transformers' model and the
    reference's, all float32 in eval mode. A baseline whose package is missing maps to the reason."""
    config = xLSTMLargeConfig(embedding_dim=embedding_dim, num_heads=HEADS, num_blocks=BLOCKS, vocab_size=vocab_size)
    single = xLSTMLarge(config).eval().to(device)
    models = {"xlstm_cuda": single.with_weight_mode("fused").eval()}
    try:
        models["transformers (native)"] = to_transformers(single).eval().to(device)
    except ImportError as error:
        models["transformers (native)"] = f"not installed ({error})"
    try:
        from xlstm.xlstm_large import model as reference
    except ImportError as error:
        reference = None
        models["xlstm reference (native)"] = f"not installed ({error})"
    kernels = [("native", "chunkwise--native_autograd", "native_sequence__native", "native")]
    if device.type == "cuda":
        kernels.append(("triton", "chunkwise--triton_limit_chunk", "native_sequence__triton", "triton"))
    for name, chunkwise, sequence, step in kernels if reference is not None else []:
        ref_config = reference.xLSTMLargeConfig(
            embedding_dim=embedding_dim, num_heads=HEADS, num_blocks=BLOCKS, vocab_size=vocab_size,
            ffn_proj_factor=config.ffn_proj_factor, chunkwise_kernel=chunkwise, sequence_kernel=sequence,
            step_kernel=step, mode="inference", return_last_states=True, autocast_kernel_dtype="float32")
        ref = reference.xLSTMLarge(ref_config).eval().to(device)
        ref.load_state_dict(single.state_dict())
        models[f"xlstm reference ({name})"] = ref
    return models


def prefill_fn(name: str, model, ids: torch.Tensor):
    """The full forward over a prompt, as each model is called; returns the logits (all positions)."""
    if name.startswith("transformers"):
        return lambda: model(ids, use_cache=True).logits
    return lambda: model(ids)[0]


def decode_fn(name: str, model, batch: int, device: torch.device):
    """DECODE_STEPS greedy steps (forward of one token + argmax) after a DECODE_PROMPT-token prompt."""
    gen = torch.Generator().manual_seed(batch)
    prompt = torch.randint(0, model.config.vocab_size, (batch, DECODE_PROMPT), generator=gen).to(device)
    if name.startswith("transformers"):
        cache = model(prompt, use_cache=True).cache
        step = lambda token: model(token, cache=cache, use_cache=True).logits  # noqa: E731
    else:  # ours returns a new state (not kept here: every step costs the same), the reference updates its own
        _, state = model(prompt)
        step = lambda token: model(token, state)[0]  # noqa: E731

    def run():
        token = prompt[:, -1:]
        for _ in range(DECODE_STEPS):
            token = step(token)[:, -1].argmax(-1, keepdim=True)
    return run


def interleaved(calls: dict, reps: int, device: torch.device) -> dict:
    """Seconds per call of each of `calls` (name -> function): one warm-up call each, then reps
    rounds that call each once in turn, so that a change in the machine's load hits all alike.
    Returns name -> list of seconds."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for call in calls.values():
        call()
    times = {name: [] for name in calls}
    for _ in range(reps):
        for name, call in calls.items():
            sync()
            start = time.perf_counter()
            call()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def ceilings(device: torch.device, reps: int) -> dict:
    """float32 matmul FLOP/s (2048 x 1024 x 4096, a prefill projection's shape), copy bandwidth
    (bytes read + written copying a 256 MiB buffer) and read bandwidth (summing a 256 MiB float32
    buffer) on this device: the best of the calls (a floor is what the machine can do; other
    processes only ever slow it down)."""
    a, b = torch.randn(2048, 1024, device=device), torch.randn(1024, 4096, device=device)
    source = torch.ones(64 << 20, device=device)
    target = torch.empty_like(source)
    calls = dict(matmul=lambda: torch.mm(a, b), copy=lambda: target.copy_(source), read=lambda: source.sum())
    times = interleaved(calls, max(reps, 10), device)
    size = source.numel() * source.element_size()
    return dict(matmul_flops_per_s=2 * 2048 * 1024 * 4096 / min(times["matmul"]),
                copy_bytes_per_s=2 * size / min(times["copy"]), read_bytes_per_s=size / min(times["read"]))


def dense_weights(model: xLSTMLarge) -> tuple[int, int]:
    """(parameters, bytes) of the matrices a token multiplies by: every Linear (not the embedding)."""
    mats = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return sum(w.numel() for w in mats), sum(w.numel() * w.element_size() for w in mats)


def state_bytes(model: xLSTMLarge, batch: int) -> int:
    c = model.config
    per_block = batch * c.num_heads * (c.qk_head_dim * c.v_head_dim + c.qk_head_dim + 1) * 4
    return c.num_blocks * per_block


def rss_growth_mib(model: xLSTMLarge, tokens: int, device: torch.device) -> float:
    """Growth of the resident set between the 8th and the last of `tokens` generated tokens, MiB."""
    page = os.sysconf("SC_PAGE_SIZE")
    samples = []

    def record(_):
        samples.append(int(Path("/proc/self/statm").read_text().split()[1]) * page)

    prompt = torch.zeros(1, DECODE_PROMPT, dtype=torch.long, device=device)
    model.generate(prompt, max_new_tokens=tokens, temperature=0, streamer=record)
    return (max(samples[8:]) - samples[8]) / 2**20


def run(shapes: list[str], device: torch.device, reps: int) -> dict:
    """Measure every model at every shape; returns the report (also printed as it goes)."""
    ceiling = ceilings(device, reps)
    print(f"# device {device}, threads {torch.get_num_threads()}, load average {os.getloadavg()}; "
          f"float32 matmul {ceiling['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s, copy "
          f"{ceiling['copy_bytes_per_s'] / 1e9:.1f} GB/s, read {ceiling['read_bytes_per_s'] / 1e9:.1f} GB/s", flush=True)
    report = dict(device=str(device), threads=torch.get_num_threads(), ceilings=ceiling, shapes={})
    for shape in shapes:
        sizes = SHAPES[shape]
        with torch.inference_mode():
            models = make_models(sizes["embedding_dim"], VOCAB, device)
            ours = models["xlstm_cuda"]
            params, weight_bytes = dense_weights(ours)
            S = sizes["prompt"]
            ids = torch.randint(0, VOCAB, (1, S), generator=torch.Generator().manual_seed(0)).to(device)
            for name, model in models.items():
                if isinstance(model, str):
                    print(f"{shape} {name}: skipped, {model}", flush=True)
            measured = {name: model for name, model in models.items() if not isinstance(model, str)}
            rows = {name: {} for name in measured}
            metrics = [("prefill_tokens_per_s", S, lambda n, m: prefill_fn(n, m, ids))]
            metrics += [(f"decode_B{batch}_tokens_per_s", batch * DECODE_STEPS,
                         lambda n, m, batch=batch: decode_fn(n, m, batch, device)) for batch in BATCHES]
            for metric, tokens, make_call in metrics:
                times = interleaved({n: make_call(n, m) for n, m in measured.items()}, reps, device)
                for name, seconds in times.items():
                    rows[name][metric] = tokens / statistics.median(seconds)
                print(f"{shape} {metric}: " + ", ".join(f"{n} {rows[n][metric]:.1f}" for n in rows), flush=True)
            again = ceilings(device, reps)  # the best of before and after: the machine's load varies
            ceiling = {key: max(value, again[key]) for key, value in ceiling.items()}
            prefill_floor = S * 2 * params / ceiling["matmul_flops_per_s"]
            floors = {"prefill_tokens_per_s": S / prefill_floor}
            for batch in BATCHES:
                step_bytes = weight_bytes + 2 * state_bytes(ours, batch) + batch * ours.config.embedding_dim * 4
                floors[f"decode_B{batch}_tokens_per_s"] = batch * ceiling["read_bytes_per_s"] / step_bytes
            growth = rss_growth_mib(ours, 128, device) if device.type == "cpu" else None
        report["shapes"][shape] = dict(sizes, vocab=VOCAB, heads=HEADS, blocks=BLOCKS, dense_params=params,
                                       floors=floors, ceilings=ceiling, models=rows, load_average=os.getloadavg(),
                                       ours_rss_growth_mib_128_tokens=growth)
        print(format_shape(shape, report["shapes"][shape]), flush=True)
    return report


def format_shape(shape: str, result: dict) -> str:
    """A markdown table: tokens/s per model and metric, the floor, and transformers' / ours."""
    metrics = list(result["floors"])
    ceiling = result.get("ceilings")
    measured = (f"; floors at {ceiling['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s, {ceiling['read_bytes_per_s'] / 1e9:.1f} "
                "GB/s read" if ceiling else "")
    lines = [f"\n{shape}: embedding {result['embedding_dim']}, prompt {result['prompt']}, vocab {result['vocab']}, "
             f"{result['heads']} heads, {result['blocks']} blocks (tokens/s{measured})",
             "| model | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for name, row in result["models"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[m]:.1f}" for m in metrics) + " |")
    lines.append("| floor (this machine) | " + " | ".join(f"{result['floors'][m]:.1f}" for m in metrics) + " |")
    ours = result["models"]["xlstm_cuda"]
    lines.append("| ours / floor | " + " | ".join(f"{ours[m] / result['floors'][m]:.2f}" for m in metrics) + " |")
    for name, row in result["models"].items():
        if name != "xlstm_cuda":
            lines.append(f"| ours / {name} | " + " | ".join(f"{ours[m] / row[m]:.2f}" for m in metrics) + " |")
    if result["ours_rss_growth_mib_128_tokens"] is not None:
        lines.append(f"\nours: resident memory grew {result['ours_rss_growth_mib_128_tokens']:.1f} MiB over 128 "
                     "generated tokens")
    return "\n".join(lines)


@suite("large")
def large_cases(device: torch.device, dtype: torch.dtype, sizes: str) -> list[Case]:
    """The prefills of the shapes above (the tiny preset: a tiny model), ours against the baselines;
    forward only (under inference mode there is nothing to differentiate)."""
    if dtype != torch.float32:
        return []
    chosen = [("tiny", dict(TINY))] if sizes == "tiny" else \
        [(name, dict(s, vocab_size=VOCAB)) for name, s in SHAPES.items()] if sizes in ("default", "full") else []
    cases = []
    for name, s in chosen:
        models = make_models(s["embedding_dim"], s["vocab_size"], device)
        params, _ = dense_weights(models["xlstm_cuda"])

        def call(model_name, model):
            def fn(ids):
                with torch.inference_mode():
                    return prefill_fn(model_name, model, ids)()
            return fn

        ids = torch.randint(0, s["vocab_size"], (1, s["prompt"]), generator=torch.Generator().manual_seed(0))
        cases.append(Case(
            name=f"xLSTM 7B arch prefill ({name})", params=dict(D=s["embedding_dim"], S=s["prompt"], V=s["vocab_size"]),
            tokens=s["prompt"], flops_fwd=2 * params * s["prompt"], flops_fwd_bwd=0.0,
            make_inputs=lambda ids=ids: [ids.to(device)], kernel=call("xlstm_cuda", models["xlstm_cuda"]),
            baselines=[Baseline(n, None, m) if isinstance(m, str) else Baseline(n, call(n, m))
                       for n, m in models.items() if n != "xlstm_cuda"]))
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=[*SHAPES, "all"], default="all")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--reps", type=int, default=5, help="timed calls per figure (median)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    report = run(list(SHAPES) if args.shape == "all" else [args.shape], torch.device(args.device), args.reps)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
