"""Sampling from an xLSTMLMModel: the prompt through the sequence kernels, then one step per token
with the fixed-size recurrent state (no cache that grows with the tokens)."""
from __future__ import annotations

import torch


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Token ids (B,) drawn from logits (B, V): argmax when temperature is 0, else softmax of
    logits / temperature restricted to the top_k most likely tokens and to the smallest set whose
    probability reaches top_p (nucleus)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # Drop a token when the tokens more likely than it already reach top_p (the first stays).
        drop_sorted = cumulative - sorted_logits.softmax(dim=-1) >= top_p
        logits = logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def _check_arguments(model, idx, max_new_tokens, temperature, top_k, top_p, eos_token_id) -> None:
    if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.shape[1] < 1:
        raise ValueError(f"generate: idx must be a (B, S) tensor of token ids with S >= 1, got "
                         f"{tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__}")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    if temperature < 0:
        raise ValueError(f"generate: temperature must be >= 0 (0: greedy), got {temperature}")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"generate: top_k must be an int >= 1 or None, got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"generate: top_p must be in (0, 1] or None, got {top_p!r}")
    if eos_token_id is not None and not 0 <= eos_token_id < model.config.vocab_size:
        raise ValueError(f"generate: eos_token_id {eos_token_id} is outside the vocabulary")


@torch.inference_mode()  # no autograd bookkeeping at all: less overhead per step than no_grad
def generate(model, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, eos_token_id: int | None = None, generator: torch.Generator | None = None,
             progress: bool = False) -> torch.Tensor:
    """Continue the prompts idx (B, S): (B, S + n) token ids, n <= max_new_tokens. Greedy when
    temperature is 0; top_k / top_p restrict the sampling (see sample_next); generator makes it
    reproducible. A sequence that emits eos_token_id is padded with it from then on, and the loop
    stops once all have. progress=True shows a tqdm bar. Runs in the model's current mode (call
    model.eval() first to switch dropout off)."""
    _check_arguments(model, idx, max_new_tokens, temperature, top_k, top_p, eos_token_id)
    B, S = idx.shape
    out = torch.empty(B, S + max_new_tokens, dtype=idx.dtype, device=idx.device)
    out[:, :S] = idx
    if max_new_tokens == 0:
        return out
    logits, state = model.last_logits(idx)
    finished = torch.zeros(B, dtype=torch.bool, device=idx.device)
    steps = range(max_new_tokens)
    if progress:
        from tqdm.auto import tqdm
        steps = tqdm(steps, desc="generate", unit="tok")
    for t in steps:
        token = sample_next(logits, temperature, top_k, top_p, generator).to(idx.dtype)
        if eos_token_id is not None:
            token = token.masked_fill(finished, eos_token_id)
            finished |= token == eos_token_id
        out[:, S + t] = token
        if eos_token_id is not None and bool(finished.all()):
            return out[:, :S + t + 1]
        if t + 1 < max_new_tokens:
            logits, state = model.step(token, state)
    return out
