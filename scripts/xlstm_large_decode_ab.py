"""xLSTMLarge decode with the fused step ops (ops.xlstm_large_block_step, ops.xlstm_large_head)
and with them switched off (the composed modules), alternating in one process: the bench's own
models and decode loop (xlstm_cuda/bench/cases_large.py: fused weights, 16 greedy steps after a
16-token prompt), 7 rounds each, median and best in ms a step. A measurement, not a test; run
without the sanitizer runtime:
    PYTHONPATH=. python3 scripts/xlstm_large_decode_ab.py --threads 2 --embedding 256 --batch 1"""
import argparse
import statistics

import torch

from xlstm_cuda.bench.cases_large import DECODE_STEPS, VOCAB, decode_fn, interleaved, make_models
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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    with torch.inference_mode():
        run = decode_fn("xlstm_cuda", make_models(args.embedding, VOCAB, device)["xlstm_cuda"], args.batch, device)
        calls = {"fused": lambda: (use_fused_ops(True), run()), "composed": lambda: (use_fused_ops(False), run())}
        times = interleaved(calls, 7, device)
    use_fused_ops(True)
    for name, seconds in times.items():
        median, best = (t / DECODE_STEPS * 1e3 for t in (statistics.median(seconds), min(seconds)))
        print(f"embedding {args.embedding}, B = {args.batch}, threads {args.threads}, {name}: "
              f"{median:.2f} ms a step (best {best:.2f})")


if __name__ == "__main__":
    main()
