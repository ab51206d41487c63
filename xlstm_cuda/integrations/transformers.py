"""transformers' xLSTM (`xLSTMForCausalLM`, NX-AI's xLSTM 7B) on this library's ops.

- `use_xlstm_cuda_kernels(model)`: the loaded transformers model (or the reference package's
  `xlstm.xlstm_large.xLSTMLarge`) keeps its modules but runs its mLSTM cells on `ops.mlstm_chunkwise`
  and `ops.mlstm_step`, and its Linear layers' decode steps on `ops.skinny_linear`, so that its own
  forward and `generate` use them.
- `to_xlstm_large(model)` / `to_transformers(model)`: convert between transformers' model and ours;
  `state_from_cache(cache)` / `state_to_cache(state, cache)`: between its xLSTMCache and our state.

transformers is imported only by `to_transformers`; this module itself needs nothing but torch.
"""
from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from .. import ops
from ..components.linear import Linear
from ..models import xlstm_large_checkpoint as checkpoint
from ..models.xlstm_large import model_from_tensors, xLSTMLarge, xLSTMLargeConfig, xLSTMLargeState


class OpsBackend(nn.Module):
    """A drop-in for mlstm_kernels' `mLSTMBackend` (and transformers' `xLSTMBackend`): the mLSTM over
    q, k (B, NH, S, DHQK), v (B, NH, S, DHV), gate pre-activations i, f (B, NH, S) from the state
    (C, n, m (B, NH, 1)) in mlstm_kernels' convention (q scaled, so C and n are ours times √DHQK).
    Returns (h (B, NH, S, DHV), (C, n, m)) in that convention, float32 states."""

    def __init__(self, chunk_size: int = 64, eps: float = 1e-6):
        super().__init__()
        self.chunk_size, self.eps = chunk_size, eps

    def forward(self, q=None, k=None, v=None, i=None, f=None, c_initial=None, n_initial=None, m_initial=None,
                return_last_states=None, mode=None, *, query=None, key=None, value=None, igate=None, fgate=None):
        """Called as mlstm_kernels calls its backend (q, k, v, i, f) or as transformers' own layer does
        (query, key, value, igate, fgate); return_last_states and mode are accepted and ignored (the
        states are always returned)."""
        q, k, v = (a if a is not None else b for a, b in ((q, query), (k, key), (v, value)))
        i, f = (a if a is not None else b for a, b in ((i, igate), (f, fgate)))
        if any(t is None for t in (q, k, v, i, f)):
            raise TypeError("OpsBackend: q, k, v, i and f (or query, key, value, igate, fgate) are required")
        B, NH, S, DHQK = q.shape
        scale = DHQK ** -0.5
        given = [t is not None for t in (c_initial, n_initial, m_initial)]
        if any(given) and not all(given):
            raise ValueError("OpsBackend: pass all of c_initial, n_initial, m_initial or none")
        state = None
        if all(given):
            if m_initial.shape != (B, NH, 1):
                raise ValueError(f"OpsBackend: m_initial must have shape {[B, NH, 1]}, got {list(m_initial.shape)}")
            state_dtype = torch.float64 if q.dtype == torch.float64 else torch.float32
            state = (c_initial.to(state_dtype) * scale, n_initial.to(state_dtype) * scale,
                     m_initial[..., 0].to(state_dtype))
        if S == 1:
            h, (C, n, m) = ops.mlstm_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], i[:, :, 0], f[:, :, 0], state, self.eps)
            h = h[:, :, None]
        else:
            h, (C, n, m) = ops.mlstm_chunkwise(q, k, v, i, f, state, self.eps, self.chunk_size)
        return h, (C / scale, n / scale, m[..., None])


def use_xlstm_cuda_kernels(model: nn.Module) -> nn.Module:
    """Make a transformers `xLSTMForCausalLM` / `xLSTMModel` (or a reference `xlstm_large.xLSTMLarge`)
    run its mLSTM cells on this library's ops, in place; returns the model. Every submodule's
    `mlstm_backend` is replaced by an OpsBackend with that backend's chunk_size and eps, and every
    plain `nn.Linear` becomes a `components.Linear` (the same module, parameters and state dict;
    on the CPU its decode steps run ops.skinny_linear, everything else F.linear as before)."""
    layers = [module for module in model.modules() if isinstance(getattr(module, "mlstm_backend", None), nn.Module)]
    if not layers:
        raise ValueError(f"use_xlstm_cuda_kernels: {type(model).__name__} has no mLSTM layer with an mlstm_backend "
                         "(expected transformers' xLSTMForCausalLM or xlstm's xLSTMLarge)")
    config = getattr(model, "config", None)
    if hasattr(config, "qk_head_dim"):  # transformers: its cache rounds qk_dim up to a multiple of 64
        layer_dim = int(config.hidden_size * config.qk_dim_factor) // config.num_heads
        if config.qk_head_dim != layer_dim:
            raise ValueError(f"use_xlstm_cuda_kernels: transformers' cache would hold q/k heads of {config.qk_head_dim} "
                             f"but its layers compute {layer_dim} (hidden_size · qk_dim_factor is not a multiple of 64)")
    for layer in layers:
        backend_config = getattr(layer.mlstm_backend, "config", None)
        layer.mlstm_backend = OpsBackend(getattr(backend_config, "chunk_size", 64), getattr(backend_config, "eps", 1e-6))
    for module in model.modules():
        if type(module) is nn.Linear:  # exactly: a subclass (quantized, adapters) keeps its own forward
            module.__class__ = Linear
    return model


def to_xlstm_large(model: nn.Module, weight_mode: str | None = None) -> xLSTMLarge:
    """Our xLSTMLarge with the weights (copied) and config of a transformers `xLSTMForCausalLM`;
    weight_mode "single" / "fused" converts (default: the model's)."""
    if not (hasattr(model, "config") and hasattr(model, "backbone") and hasattr(model, "lm_head")):
        raise TypeError(f"to_xlstm_large: expected transformers' xLSTMForCausalLM, got {type(model).__name__}")
    config = xLSTMLargeConfig.from_transformers_dict(model.config.to_dict(), f"{type(model).__name__}.config")
    tensors = {}
    for name, tensor in model.state_dict().items():
        ours = checkpoint.name_from_transformers(name)
        if ours is None:
            raise ValueError(f"to_xlstm_large: unexpected tensor {name!r}")
        tensors[ours] = tensor.detach().clone()
    stored = replace(config, weight_mode=checkpoint.weight_mode_of(tensors))
    target = replace(config, weight_mode=weight_mode or stored.weight_mode)
    return model_from_tensors(target, checkpoint.convert_weight_mode(tensors, stored, target.weight_mode)).train(
        model.training)


def to_transformers(model: xLSTMLarge):
    """transformers' `xLSTMForCausalLM` with the weights (copied) and config of our xLSTMLarge."""
    from transformers import xLSTMConfig, xLSTMForCausalLM

    if not isinstance(model, xLSTMLarge):
        raise TypeError(f"to_transformers: expected an xLSTMLarge, got {type(model).__name__}")
    values = model.config.to_transformers_dict()
    del values["architectures"], values["model_type"]
    with torch.device("meta"):
        hf = xLSTMForCausalLM(xLSTMConfig(**values))
    state = {checkpoint.name_to_transformers(name): t.detach().clone() for name, t in model.state_dict().items()}
    hf.load_state_dict(state, assign=True)
    return hf.train(model.training)


def state_from_cache(cache) -> xLSTMLargeState:
    """Our state from a transformers `xLSTMCache` (its rnn_state per block: C and n times √DHQK,
    m (B, NH, 1), in the model's dtype), as float32 tensors of our convention (new tensors)."""
    rnn_state = getattr(cache, "rnn_state", None)
    if not isinstance(rnn_state, dict):
        raise TypeError(f"state_from_cache: expected transformers' xLSTMCache, got {type(cache).__name__}")
    cells = []
    for block in range(len(rnn_state)):
        C, n, m = rnn_state[block]
        scale = C.shape[-2] ** -0.5
        cells.append((C.float() * scale, n.float() * scale, m[..., 0].float()))
    return xLSTMLargeState(cells)


def state_to_cache(state: xLSTMLargeState, cache) -> None:
    """Write our state into a transformers `xLSTMCache` of matching shapes, in place (converted to
    mlstm_kernels' convention and the cache's dtype)."""
    if not isinstance(state, xLSTMLargeState) or not isinstance(getattr(cache, "rnn_state", None), dict):
        raise TypeError("state_to_cache: expected an xLSTMLargeState and transformers' xLSTMCache")
    if len(cache.rnn_state) != len(state.cells):
        raise ValueError(f"state_to_cache: the cache has {len(cache.rnn_state)} blocks, the state {len(state.cells)}")
    for block, (C, n, m) in enumerate(state.cells):
        theirs = cache.rnn_state[block]
        if theirs[0].shape != C.shape:
            raise ValueError(f"state_to_cache: block {block}'s C has shape {list(C.shape)}, the cache's "
                             f"{list(theirs[0].shape)}")
        scale = C.shape[-2] ** -0.5
        for target, value in zip(theirs, (C / scale, n / scale, m[..., None])):
            target.copy_(value)


__all__ = ["OpsBackend", "state_from_cache", "state_to_cache", "to_transformers", "to_xlstm_large",
           "use_xlstm_cuda_kernels"]
