"""python -m xlstm_cuda.bench: time the kernels against their baselines; table on stdout, JSON (and CSV) saved."""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

import torch

from . import harness
from .cases import SUITES, SWEEPS

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser = argparse.ArgumentParser(prog="python -m xlstm_cuda.bench", description=__doc__)
    parser.add_argument("--suite", choices=[*SUITES, "all"], default="all")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=default_device,
                        help=f"default: {default_device}")
    parser.add_argument("--dtype", choices=list(DTYPES), help="default: bfloat16 on cuda, float32 on cpu")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="preset", action="store_const", const="quick", help="fewer sizes, shorter")
    size.add_argument("--full", dest="preset", action="store_const", const="full", help="adds the anchor sizes")
    size.add_argument("--tiny", dest="preset", action="store_const", const="tiny", help=argparse.SUPPRESS)  # tests
    parser.add_argument("--sweep", choices=sorted(SWEEPS["tiny"]),
                        help="vary one dimension (sequence length, batch, head size) instead of the preset's sizes")
    parser.add_argument("--json", type=Path, help="default: bench_results/bench-<device>.json")
    parser.add_argument("--plot", type=Path, metavar="DIR",
                        help="write PNG charts there: time against each swept dimension, speedups (needs matplotlib)")
    parser.add_argument("--csv", type=Path)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch CPU threads (default: all cores available to this process)")
    parser.set_defaults(preset="default")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available here (torch.cuda.is_available() is False)")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        parser.error("--plot needs matplotlib: python3 -m pip install matplotlib")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype] if args.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    suites = list(SUITES) if args.suite == "all" else [args.suite]
    report = harness.run(suites, device, dtype, args.preset, args.threads, args.sweep)
    if not report["cases"]:
        print(f"no cases: {', '.join(suites)} has no sizes for sweep {args.sweep!r}", file=sys.stderr)
        return 2
    print(harness.format_table(report))
    json_path = args.json or Path("bench_results") / f"bench-{device.type}.json"
    harness.write_json(report, json_path)
    print(f"wrote {json_path}", file=sys.stderr)
    if args.csv:
        harness.write_csv(report, args.csv)
        print(f"wrote {args.csv}", file=sys.stderr)
    if args.plot:
        from .plots import write_plots
        for path in write_plots(report, args.plot):
            print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
