"""xLSTMLarge with the fused inference ops (ops.xlstm_large_block_step, ops.xlstm_large_head) and
with them switched off (the composed modules), alternating in one process: the bench's own models,
decode loop and prefill (xlstm_cuda/bench/cases_large.py: fused weights; decode: 16 greedy steps
after a 16-token prompt, in ms a step; prefill: the full forward over the shape's prompt, in ms),
7 rounds each, median and best. A measurement, not a test; run without the sanitizer runtime:
    PYTHONPATH=. python3 scripts/xlstm_large_fused_ab.py --threads 2 --embedding 256 --batch 1
    PYTHONPATH=. python3 scripts/xlstm_large_fused_ab.py --threads 2 --embedding 256 --prefill"""
import argparse
import statistics

import torch

from xlstm_cuda.bench.cases_large import (DECODE_STEPS, SHAPES, VOCAB, decode_fn, interleaved, make_models,
                                          prefill_fn)
from xlstm_cuda.models import xlstm_large

FUSED_BLOCK, FUSED_HEAD = xlstm_large.xLSTMLargeBlock._fused_step_weights, xlstm_large.fused_inference_applies


def use_fused_ops(on: bool) -> None:
    """The two dispatch decisions as they are, or always 'composed'."""
    xlstm_large.xLSTMLargeBlock._fused_step_weights = FUSED_BLOCK if on else (lambda self, x, state: None)
    xlstm_large.fused_inference_applies = FUSED_HEAD if on else (lambda x, weights, state=None: False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--embedding", type=int, default=256, help="256: the bench's small shape, 1024: 7B-like")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--prefill", action="store_true", help="time the prefill (B = 1) instead of decode steps")
    args = parser.parse_args()
    prompts = {s["embedding_dim"]: s["prompt"] for s in SHAPES.values()}
    if args.prefill and args.embedding not in prompts:
        parser.error(f"--prefill times the bench's shapes: --embedding must be one of {sorted(prompts)}")
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    with torch.inference_mode():
        model = make_models(args.embedding, VOCAB, device)["xlstm_cuda"]
        if args.prefill:
            prompt = prompts[args.embedding]
            ids = torch.randint(0, VOCAB, (1, prompt), generator=torch.Generator().manual_seed(0))
            run, unit, what = prefill_fn("xlstm_cuda", model, ids), 1, f"prefill of {prompt} tokens"
        else:
            run, unit, what = decode_fn("xlstm_cuda", model, args.batch, device), DECODE_STEPS, "a step"
        calls = {"fused": lambda: (use_fused_ops(True), run()), "composed": lambda: (use_fused_ops(False), run())}
        times = interleaved(calls, 7, device)
    use_fused_ops(True)
    for name, seconds in times.items():
        median, best = (t / unit * 1e3 for t in (statistics.median(seconds), min(seconds)))
        batch = "" if args.prefill else f"B = {args.batch}, "
        print(f"embedding {args.embedding}, {batch}threads {args.threads}, {name}: {median:.2f} ms {what} "
              f"(best {best:.2f})")


if __name__ == "__main__":
    main()
