"""The xLSTM paper's formal-language experiment, parity: after each bit of a random bit string,
say whether the ones so far are odd. Train on short strings, test on longer ones. State tracking
needs memory mixing, which the sLSTM has (its recurrent matrix R) and the mLSTM does not: the
sLSTM model extrapolates to lengths it never saw, the mLSTM model stays near chance there.

Writes parity_accuracy.png (accuracy of the last bit's answer against the string length, for
both models) and results.json.

    python examples/parity.py --out parity_out             # about 3 minutes on 2 cores
    python examples/parity.py --steps 3 --out /tmp/smoke   # a smoke test
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from xlstm_cuda import xLSTMLMModel, xLSTMLMModelConfig

MODELS = {
    # xLSTM[0:1]: sLSTM blocks only; xLSTM[1:0]: mLSTM blocks only.
    "sLSTM": dict(slstm_block={"slstm": {"num_heads": 1}, "feedforward": None}, slstm_at="all"),
    "mLSTM": dict(mlstm_block={"mlstm": {"num_heads": 1}}),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("parity_out"))
    parser.add_argument("--overwrite", action="store_true", help="reuse an --out directory that is not empty")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train-max-len", type=int, default=24, help="training strings have 1 to this many bits")
    parser.add_argument("--test-lengths", type=int, nargs="+", default=[8, 16, 24, 32, 64, 128, 256])
    parser.add_argument("--test-size", type=int, default=256, help="strings per test length")
    parser.add_argument("--embedding-dim", type=int, default=32)
    parser.add_argument("--num-blocks", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    for name in ("steps", "batch_size", "train_max_len", "test_size", "embedding_dim", "num_blocks"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if min(args.test_lengths) < 1:
        parser.error("--test-lengths must be >= 1")
    if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:
        parser.error(f"--out {args.out} is not empty: pass --overwrite to replace its files")
    return args


def parity_batch(batch: int, length: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Bits (B, length) and the parity of each prefix (B, length)."""
    bits = torch.randint(0, 2, (batch, length), generator=gen)
    return bits, bits.cumsum(1) % 2


def train(name: str, args, gen: torch.Generator, progress) -> xLSTMLMModel:
    torch.manual_seed(args.seed)
    config = xLSTMLMModelConfig(num_blocks=args.num_blocks, embedding_dim=args.embedding_dim, vocab_size=2,
                                **MODELS[name])
    model = xLSTMLMModel(config).train()  # the LM's head over the two tokens answers 0 or 1
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    for step in range(args.steps):
        bits, parity = parity_batch(args.batch_size, int(torch.randint(1, args.train_max_len + 1, (1,), generator=gen)),
                                    gen)
        loss = F.cross_entropy(model(bits).flatten(0, 1), parity.flatten())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        progress.update(1)
        progress.set_postfix(model=name, loss=f"{loss.item():.3f}")
    return model.eval()


@torch.no_grad()
def accuracy(model, length: int, size: int, gen: torch.Generator) -> float:
    """How often the answer after the last bit is right."""
    bits, parity = parity_batch(size, length, gen)
    return (model(bits)[:, -1].argmax(-1) == parity[:, -1]).float().mean().item()


def main(argv=None) -> int:
    args = parse_args(argv)
    from tqdm import tqdm

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    args.out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(args.seed)
    results = {}
    with tqdm(total=args.steps * len(MODELS), desc="train", unit="step", mininterval=2.0) as bar:
        models = {name: train(name, args, gen, bar) for name in MODELS}
    for name, model in models.items():
        results[name] = {n: accuracy(model, n, args.test_size, gen) for n in args.test_lengths}
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    plot(results, args.train_max_len, args.out / "parity_accuracy.png")
    print(f"accuracy of the parity after the last bit (trained on 1 to {args.train_max_len} bits):")
    print("length  " + "  ".join(f"{n:>5}" for n in args.test_lengths))
    for name, accs in results.items():
        print(f"{name:<6}  " + "  ".join(f"{accs[n]:5.2f}" for n in args.test_lengths))
    print(f"wrote {args.out / 'parity_accuracy.png'}, {args.out / 'results.json'}")
    return 0


def plot(results: dict, train_max_len: int, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, accs in results.items():
        ax.plot(list(accs), list(accs.values()), "o-", label=name)
    ax.axvline(train_max_len, color="gray", linestyle="--", label="longest training string")
    ax.axhline(0.5, color="gray", linestyle=":", label="chance")
    ax.set(xscale="log", xlabel="string length (bits)", ylabel="accuracy", ylim=(0.3, 1.05),
           title="Parity: train short, test long")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
