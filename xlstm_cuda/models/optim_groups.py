"""The reference package's weight-decay groups: the weights of the projections (linear, conv,
headwise maps) decay; biases, norm scales, the mLSTM skip, the sLSTM recurrent weights and biases
do not; the embedding by config."""
from __future__ import annotations

from torch import nn

from ..layers import HeadwiseLinear, sLSTMLayer

DECAYING = (nn.Linear, nn.Conv1d, HeadwiseLinear)


def weight_decay_groups(module: nn.Module, embedding: nn.Embedding | None = None,
                        decay_embedding: bool = False) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(decay, no_decay): each trainable parameter in exactly one (tied weights once), the
    embedding's weight where decay_embedding puts it."""
    decay, no_decay, seen = [], [], set()
    for sub in module.modules():
        for name, param in sub.named_parameters(recurse=False):
            if id(param) in seen or not param.requires_grad:
                continue
            seen.add(id(param))
            if embedding is not None and param is embedding.weight:
                (decay if decay_embedding else no_decay).append(param)
            elif name == "weight" and isinstance(sub, DECAYING) or name == "gate_weight" and isinstance(sub, sLSTMLayer):
                decay.append(param)
            else:
                no_decay.append(param)
    return decay, no_decay


def group_names(module: nn.Module, groups) -> tuple[list[str], list[str]]:
    """The parameter names of each group."""
    names = {id(p): n for n, p in module.named_parameters()}
    return tuple([names[id(p)] for p in group] for group in groups)
