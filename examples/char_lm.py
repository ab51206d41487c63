"""Train a character-level xLSTM language model on a small text, on the CPU, in minutes.

The default text is the source of five of Python's own modules (argparse, calendar, difflib,
pprint, textwrap: about 300 kB shipped with every Python, under the PSF licence); --text takes any
UTF-8 files instead. Shows a tqdm progress bar, writes a loss plot
(loss.png), checkpoints with save_pretrained (checkpoint/), reloads the checkpoint with
from_pretrained and samples from it.

    python examples/char_lm.py --out char_lm_out            # minutes on 2 cores
    python examples/char_lm.py --steps 5 --out /tmp/smoke   # a smoke test
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from xlstm_cuda import xLSTMLMModel, xLSTMLMModelConfig

DEFAULT_TEXTS = [Path(__import__(name).__file__) for name in ("argparse", "calendar", "difflib", "pprint", "textwrap")]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", type=Path, nargs="+", default=DEFAULT_TEXTS,
                        help="default: argparse.py, calendar.py, difflib.py, pprint.py, textwrap.py of this Python")
    parser.add_argument("--out", type=Path, default=Path("char_lm_out"))
    parser.add_argument("--overwrite", action="store_true", help="reuse an --out directory that is not empty")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--embedding-dim", type=int, default=128)
    parser.add_argument("--num-blocks", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--sample-tokens", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    for name in ("steps", "batch_size", "seq_len", "embedding_dim", "num_blocks", "eval_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:
        parser.error(f"--out {args.out} is not empty: pass --overwrite to replace its files")
    return args


def batches(data: torch.Tensor, batch_size: int, seq_len: int, gen: torch.Generator) -> torch.Tensor:
    """Random windows of seq_len + 1 characters: inputs and next-character targets."""
    starts = torch.randint(0, len(data) - seq_len - 1, (batch_size,), generator=gen)
    return torch.stack([data[s:s + seq_len + 1] for s in starts.tolist()])


def loss_on(model, windows: torch.Tensor) -> torch.Tensor:
    logits = model(windows[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten())


def main(argv=None) -> int:
    args = parse_args(argv)
    from tqdm import tqdm

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    text = "\n".join(path.read_text(encoding="utf-8") for path in args.text)
    chars = sorted(set(text))
    encode = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([encode[c] for c in text])
    split = int(0.9 * len(data))
    train_data, val_data = data[:split], data[split:]
    if len(val_data) <= args.seq_len + 1:
        raise SystemExit(f"--text: {len(text)} characters is too short for --seq-len {args.seq_len}")
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    config = xLSTMLMModelConfig(
        mlstm_block={"mlstm": {"num_heads": 4}}, slstm_block={"slstm": {"num_heads": 4}},
        num_blocks=args.num_blocks, slstm_at=[1], embedding_dim=args.embedding_dim, vocab_size=len(chars),
        context_length=args.seq_len, tie_weights=True)
    model = xLSTMLMModel(config)
    decay, no_decay = model.get_weight_decay_optim_groups()
    optimiser = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, 0.95))
    warmup = max(1, args.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (
        1 + math.cos(math.pi * min(s, args.steps) / args.steps)) + 0.05)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{', '.join(p.name for p in args.text)}: {len(text)} characters, {len(chars)} distinct; model: {sum(p.numel() for p in model.parameters())} "
          f"parameters, blocks {['sLSTM' if k else 'mLSTM' for k in config.block_map]}", flush=True)
    history = {"step": [], "train": [], "val_step": [], "val": []}
    progress = tqdm(range(1, args.steps + 1), desc="train", unit="step", mininterval=2.0)
    for step in progress:
        model.train()
        loss = loss_on(model, batches(train_data, args.batch_size, args.seq_len, gen))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        history["step"].append(step)
        history["train"].append(loss.item())
        if step % args.eval_every == 0 or step == args.steps:
            model.eval()
            with torch.no_grad():
                val = loss_on(model, batches(val_data, args.batch_size, args.seq_len, gen)).item()
            history["val_step"].append(step)
            history["val"].append(val)
            progress.set_postfix(train=f"{loss.item():.3f}", val=f"{val:.3f}")
            model.save_pretrained(args.out / "checkpoint", overwrite=True)  # this run's own checkpoint
    progress.close()
    (args.out / "history.json").write_text(json.dumps(history))
    plot_losses(history, args.out / "loss.png")

    reloaded = xLSTMLMModel.from_pretrained(args.out / "checkpoint").eval()
    prompt = "def "
    idx = torch.tensor([[encode.get(c, 0) for c in prompt]])
    sample = reloaded.generate(idx, args.sample_tokens, temperature=0.8, top_k=20,
                               generator=torch.Generator().manual_seed(args.seed))
    completion = "".join(chars[i] for i in sample[0].tolist())
    (args.out / "sample.txt").write_text(completion)
    print(f"final loss: train {history['train'][-1]:.3f}, validation {history['val'][-1]:.3f} (nats per character)")
    print(f"wrote {args.out / 'loss.png'}, {args.out / 'checkpoint'}, {args.out / 'sample.txt'}")
    print("sample from the reloaded checkpoint:\n" + completion)
    return 0


def plot_losses(history: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(history["step"], history["train"], label="train", alpha=0.7)
    ax.plot(history["val_step"], history["val"], "o-", label="validation")
    ax.set(xlabel="step", ylabel="cross-entropy (nats / character)", title="xLSTM character LM")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
