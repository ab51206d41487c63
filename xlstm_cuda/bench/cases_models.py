"""The model suite: xLSTMLMModel's training step (forward, forward + backward) and greedy
generation (tokens per second) against the reference package's xLSTMLMModel of the same config and
weights, measured in the same run.

Generation: ours runs the prompt through the sequence kernels, then one step per new token; the
reference, whose forward returns no state, steps through the prompt and then the new tokens (its
step loop). Both decode greedily; tokens counts the new tokens."""
from __future__ import annotations

import importlib.util

import torch

from .cases import Baseline, Case, suite

# (B, S, embedding, heads, vocab, blocks, slstm_at, new tokens): the CPU target.
MODEL_SIZES = {
    "cpu": {"tiny": [(2, 3, 16, 2, 11, 2, (1,), 2)], "quick": [(8, 64, 128, 4, 256, 4, (1,), 16)],
            "default": [(8, 256, 128, 4, 256, 4, (1,), 64)], "full": [(8, 256, 128, 4, 256, 4, (1,), 64)]},
    "cuda": {"tiny": [(2, 3, 16, 2, 11, 2, (1,), 2)], "quick": [(16, 1024, 768, 4, 50304, 12, (3, 7), 64)],
             "default": [(16, 1024, 768, 4, 50304, 12, (3, 7), 128)],
             "full": [(16, 1024, 768, 4, 50304, 12, (3, 7), 128)]},
}


def model_config(E: int, NH: int, V: int, blocks: int, slstm_at: tuple, S: int, device: torch.device) -> dict:
    """The config both models are built from (the reference's field names)."""
    backend = "cuda" if device.type == "cuda" else "vanilla"
    return dict(mlstm_block=dict(mlstm=dict(num_heads=NH)),
                slstm_block=dict(slstm=dict(num_heads=NH, backend=backend, dtype="float32"),
                                 feedforward=dict(proj_factor=1.3, act_fn="gelu")),
                num_blocks=blocks, slstm_at=list(slstm_at), embedding_dim=E, vocab_size=V, context_length=S)


def reference_model(config: dict, device: torch.device, dtype: torch.dtype):
    """The reference xLSTMLMModel for config, or the reason it is not measured."""
    if importlib.util.find_spec("xlstm") is None:
        return None, "not installed"
    try:
        from xlstm.blocks.mlstm.block import mLSTMBlockConfig
        from xlstm.blocks.mlstm.layer import mLSTMLayerConfig
        from xlstm.blocks.slstm.block import sLSTMBlockConfig
        from xlstm.blocks.slstm.layer import sLSTMLayerConfig
        from xlstm.components.feedforward import FeedForwardConfig
        from xlstm.xlstm_lm_model import xLSTMLMModel, xLSTMLMModelConfig

        slstm = config["slstm_block"]
        fields = {k: v for k, v in config.items() if k not in ("mlstm_block", "slstm_block")}
        reference_config = xLSTMLMModelConfig(
            mlstm_block=mLSTMBlockConfig(mlstm=mLSTMLayerConfig(**config["mlstm_block"]["mlstm"])),
            slstm_block=sLSTMBlockConfig(slstm=sLSTMLayerConfig(**slstm["slstm"]),
                                         feedforward=FeedForwardConfig(**slstm["feedforward"])), **fields)
        model = xLSTMLMModel(reference_config)
        model.reset_parameters()
        return model.to(device, dtype).eval(), None
    except Exception as error:  # a baseline that cannot be built is reported, not fatal
        return None, f"does not build here: {type(error).__name__}: {error}"[:200]


def reference_generate(model, new_tokens: int):
    """Greedy decoding with the reference's step loop, through the prompt and the new tokens."""
    @torch.no_grad()
    def generate(idx):
        state, out = None, [idx]
        for t in range(idx.shape[1]):
            logits, state = model.step(idx[:, t:t + 1], state)
        for _ in range(new_tokens):
            token = logits[:, -1].argmax(-1, keepdim=True)
            out.append(token)
            logits, state = model.step(token, state)
        return torch.cat(out, 1)
    return generate


def _lm_flops(B: int, S: int, model) -> float:
    return 2.0 * B * S * sum(p.numel() for p in model.parameters())  # the projections; the cells add little


@suite("model")
def model_cases(device: torch.device, dtype: torch.dtype, preset: str) -> list[Case]:
    from ..models import xLSTMLMModel

    cases = []
    for B, S, E, NH, V, blocks, slstm_at, new in MODEL_SIZES[device.type].get(preset, []):
        config = model_config(E, NH, V, blocks, slstm_at, S, device)
        reference, skipped = reference_model(config, device, dtype)
        # The same weights for both: ours converted from the reference where it builds.
        ours = (xLSTMLMModel.from_reference(reference) if reference is not None else xLSTMLMModel(config))
        ours = ours.to(device, dtype).eval()

        def make_inputs(B=B, S=S, V=V):
            gen = torch.Generator().manual_seed(S + V)
            return [torch.randint(0, V, (B, S), generator=gen).to(device)]

        params = dict(B=B, S=S, E=E, NH=NH, V=V, blocks=blocks, slstm_at=",".join(map(str, slstm_at)))
        flops = _lm_flops(B, S, ours)
        cases.append(Case(
            name="xLSTMLMModel", params=params, tokens=B * S, flops_fwd=flops, flops_fwd_bwd=3 * flops,
            make_inputs=make_inputs, kernel=lambda idx, m=ours: m(idx),
            baselines=[Baseline("xlstm", (lambda idx, m=reference: m(idx)) if reference is not None else None,
                                skipped)]))
        cases.append(Case(
            name="generate", params=dict(params, new=new), tokens=B * new, flops_fwd=_lm_flops(B, S + new, ours),
            flops_fwd_bwd=0.0, make_inputs=make_inputs,
            kernel=lambda idx, m=ours, n=new: m.generate(idx, n, temperature=0),
            baselines=[Baseline("xlstm", reference_generate(reference, new) if reference is not None else None,
                                skipped)]))
    return cases
