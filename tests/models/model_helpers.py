"""Shared by the model tests: small configs, reference package models, random parameters."""
from __future__ import annotations

import torch

from conftest import randn
from xlstm_cuda.models import xLSTMLMModel, xLSTMLMModelConfig


def reference_lm_config(embedding_dim=32, num_heads=2, num_blocks=4, slstm_at=(1,), vocab_size=37, context_length=32,
                        tie_weights=False, conv=4, feedforward=True, bias=False, slstm_heads=None, proj_factor=2.0):
    """A reference package config of a mixed stack (sLSTM blocks with the vanilla backend, which runs on the CPU)."""
    from xlstm.blocks.mlstm.block import mLSTMBlockConfig
    from xlstm.blocks.mlstm.layer import mLSTMLayerConfig
    from xlstm.blocks.slstm.block import sLSTMBlockConfig
    from xlstm.blocks.slstm.layer import sLSTMLayerConfig
    from xlstm.components.feedforward import FeedForwardConfig
    from xlstm.xlstm_lm_model import xLSTMLMModelConfig as ReferenceConfig

    mlstm = None
    if len(slstm_at) < num_blocks:
        mlstm = mLSTMBlockConfig(mlstm=mLSTMLayerConfig(num_heads=num_heads, conv1d_kernel_size=4, qkv_proj_blocksize=4,
                                                        proj_factor=proj_factor))
    slstm = None
    if slstm_at:
        slstm = sLSTMBlockConfig(
            slstm=sLSTMLayerConfig(num_heads=slstm_heads or num_heads, conv1d_kernel_size=conv, backend="vanilla",
                                   dtype="float32"),
            feedforward=FeedForwardConfig(proj_factor=1.3, act_fn="gelu") if feedforward else None)
    return ReferenceConfig(mlstm_block=mlstm, slstm_block=slstm, num_blocks=num_blocks, slstm_at=list(slstm_at),
                           embedding_dim=embedding_dim, vocab_size=vocab_size, context_length=context_length,
                           tie_weights=tie_weights, bias=bias)


def reference_lm(gen, **kwargs):
    """A reference xLSTMLMModel, its initialisation then random perturbations of every parameter
    (R starts at zero, which would hide the recurrence), in float32 eval mode."""
    from xlstm.xlstm_lm_model import xLSTMLMModel as ReferenceLM

    # Its initialisation draws from the global generator: seeded from gen, so that the instance
    # does not depend on what ran before.
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    model = ReferenceLM(reference_lm_config(**kwargs))
    model.reset_parameters()
    perturb(model, gen)
    return model.eval()


def perturb(model, gen, scale=0.2):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(randn(gen, *p.shape, scale=scale))


def small_lm(gen=None, embedding_dim=16, num_heads=2, num_blocks=3, slstm_at=(1,), vocab_size=29, **kwargs):
    """Ours, a small mixed stack; when gen is given, initialised from it (the global generator
    seeded from gen) and perturbed."""
    if gen is not None:
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    config = xLSTMLMModelConfig(
        mlstm_block={"mlstm": {"num_heads": num_heads, "chunk_size": 4}},
        slstm_block={"slstm": {"num_heads": num_heads}}, num_blocks=num_blocks, slstm_at=list(slstm_at),
        embedding_dim=embedding_dim, vocab_size=vocab_size, **kwargs)
    model = xLSTMLMModel(config)
    if gen is not None:
        perturb(model, gen)
    return model.eval()


def token_ids(gen, batch, length, vocab_size):
    return torch.randint(0, vocab_size, (batch, length), generator=gen)
