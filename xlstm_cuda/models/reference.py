"""Weights from the reference package (xlstm 2.0.6) into ours. What differs there:

- its sLSTM module named `fgate` computes the input gate and `igate` the forget gate (the spec);
- its sLSTM recurrent kernel and bias live in a backend-specific internal layout, read through the
  cell's own int2ext conversions (the "external" layout is ours: R (NH, DH_in, 4, DH_out), b (NH, 4, DH));
- its LayerNorms (block norms, group norms, post-blocks norm) hold the scale minus one
  (`residual_weight`): ours hold the scale;
- its mLSTM gates are two Linear maps (igate, fgate), ours one with the input gates first.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from torch import nn

from .config import xLSTMBlockStackConfig, xLSTMLMModelConfig


def _norm_scale(norm: nn.Module, get: Callable, where: str, offset: bool) -> torch.Tensor:
    if getattr(norm, "weight", None) is None or getattr(norm, "bias", None) is not None:
        raise ValueError(f"{where}: only norms with a scale and no bias convert (this one: weight "
                         f"{getattr(norm, 'weight', None) is not None}, bias {getattr(norm, 'bias', None) is not None})")
    scale = get(norm.weight)
    return scale + 1.0 if offset and getattr(norm, "residual_weight", False) else scale


def _linear(ours: dict, prefix: str, linear: nn.Module, get: Callable) -> None:
    ours[prefix + "weight"] = get(linear.weight)
    if getattr(linear, "bias", None) is not None:
        ours[prefix + "bias"] = get(linear.bias)


def _mlstm_layer(ours: dict, p: str, layer: nn.Module, get: Callable, offset: bool, where: str) -> None:
    _linear(ours, p + "up.", layer.proj_up, get)
    _linear(ours, p + "conv.conv.", layer.conv1d.conv, get)
    for name in "qkv":
        _linear(ours, f"{p}{name}.", getattr(layer, f"{name}_proj"), get)
    cell = layer.mlstm_cell
    ours[p + "gates.weight"] = torch.cat([get(cell.igate.weight), get(cell.fgate.weight)])
    ours[p + "gates.bias"] = torch.cat([get(cell.igate.bias), get(cell.fgate.bias)])
    ours[p + "norm.weight"] = _norm_scale(cell.outnorm, get, where + ".mlstm_cell.outnorm", offset)
    ours[p + "skip"] = get(layer.learnable_skip)
    _linear(ours, p + "down.", layer.proj_down, get)


def _slstm_layer(ours: dict, p: str, layer: nn.Module, get: Callable, offset: bool, where: str) -> None:
    if layer.config.conv1d_kernel_size > 0:
        _linear(ours, p + "conv.conv.", layer.conv1d.conv, get)
    # The i, f, z, o slots of the cell's input are fed by fgate, igate, zgate, ogate there.
    ours[p + "gate_weight"] = torch.stack([get(getattr(layer, g).weight) for g in ("fgate", "igate", "zgate", "ogate")], 1)
    cell = layer.slstm_cell
    ours[p + "cell.R"] = cell._recurrent_kernel_int2ext(get(cell._recurrent_kernel_))
    ours[p + "cell.b"] = cell._bias_int2ext(get(cell._bias_))
    ours[p + "norm.weight"] = _norm_scale(layer.group_norm, get, where + ".group_norm", offset)


def stack_tensors(stack: nn.Module, get: Callable, offset: bool = True, prefix: str = "") -> dict[str, torch.Tensor]:
    """Our xLSTMBlockStack's state dict entries (under prefix) from a reference stack, reading
    each reference parameter through get (its data, or its gradient: offset=False then, as the
    norms' offsets have no gradient)."""
    ours = {}
    for i, block in enumerate(stack.blocks):
        p, where = f"{prefix}blocks.{i}.", f"reference block {i}"
        ours[p + "xlstm_norm.weight"] = _norm_scale(block.xlstm_norm, get, where + ".xlstm_norm", offset)
        if block.config.mlstm is not None:
            _mlstm_layer(ours, p + "xlstm.", block.xlstm, get, offset, where)
        else:
            _slstm_layer(ours, p + "xlstm.", block.xlstm, get, offset, where)
        if block.ffn is not None:
            ours[p + "ffn_norm.weight"] = _norm_scale(block.ffn_norm, get, where + ".ffn_norm", offset)
            _linear(ours, p + "ffn.proj_up.", block.ffn.proj_up, get)
            _linear(ours, p + "ffn.proj_down.", block.ffn.proj_down, get)
    if not isinstance(stack.post_blocks_norm, nn.Identity):
        ours[prefix + "post_blocks_norm.weight"] = _norm_scale(stack.post_blocks_norm, get, "post_blocks_norm", offset)
    return ours


def lm_tensors(lm: nn.Module, get: Callable, offset: bool = True) -> dict[str, torch.Tensor]:
    """Our xLSTMLMModel's state dict entries from a reference xLSTMLMModel (see stack_tensors)."""
    ours = stack_tensors(lm.xlstm_block_stack, get, offset, prefix="xlstm_block_stack.")
    ours["token_embedding.weight"] = get(lm.token_embedding.weight)
    if not lm.config.tie_weights:
        ours["lm_head.weight"] = get(lm.lm_head.weight)
    return ours


def _detached(param: torch.Tensor) -> torch.Tensor:
    return param.detach().float().cpu()


def _load(model: nn.Module, tensors: dict[str, torch.Tensor], source: nn.Module):
    targets = model.tensors_to_save()
    if set(targets) != set(tensors):
        raise ValueError(f"from_reference: the reference model's parameters do not map onto ours: missing "
                         f"{sorted(set(targets) - set(tensors))}, unexpected {sorted(set(tensors) - set(targets))}")
    state = model.state_dict()
    with torch.no_grad():
        for name, tensor in tensors.items():
            if tensor.shape != state[name].shape:
                raise ValueError(f"from_reference: {name} converts to shape {tuple(tensor.shape)}, ours is "
                                 f"{tuple(state[name].shape)}")
            state[name].copy_(tensor)
    reference_param = next(source.parameters())
    return model.to(reference_param.device).train(source.training)


def _check_reference(module: nn.Module, attributes: tuple[str, ...], kind: str) -> None:
    if not isinstance(module, nn.Module) or not all(hasattr(module, a) for a in ("config", *attributes)):
        raise TypeError(f"from_reference: expected a reference package (xlstm) {kind}, got {type(module).__name__}")


def stack_from_reference(module: nn.Module):
    """Our xLSTMBlockStack with the config and weights of the reference's xLSTMBlockStack."""
    from .stack import xLSTMBlockStack

    _check_reference(module, ("blocks", "post_blocks_norm"), "xLSTMBlockStack")
    # A stack inside a reference LM holds the LM's config: the stack's fields of it.
    fields = {f.name: getattr(module.config, f.name) for f in dataclasses.fields(xLSTMBlockStackConfig)}
    model = xLSTMBlockStack(xLSTMBlockStackConfig.from_dict(fields))
    return _load(model, stack_tensors(module, _detached), module)


def lm_from_reference(module: nn.Module):
    """Our xLSTMLMModel with the config and weights of the reference's xLSTMLMModel."""
    from .lm import xLSTMLMModel

    _check_reference(module, ("xlstm_block_stack", "token_embedding", "lm_head"), "xLSTMLMModel")
    model = xLSTMLMModel(xLSTMLMModelConfig.from_dict(module.config))
    return _load(model, lm_tensors(module, _detached), module)
