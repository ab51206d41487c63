"""Causal depthwise convolution over time followed by SiLU: the input stage of both xLSTM layers."""

import torch
import torch.nn.functional as F


def causal_conv1d_silu(x, weight, bias, initial=None):
    """x: (B, S, D); weight: (D, K), one filter per feature; bias: (D,);
    initial: optional (B, K - 1, D), the inputs before x (zeros: a fresh sequence).

    Output t sees inputs t - K + 1 .. t: y[:, t] = silu(bias + sum_k weight[:, k] * xp[:, t + k])
    with xp = [initial | x] along time. Returns (B, S, D).
    """
    B, S, D = x.shape
    K = weight.shape[1]
    if initial is None:
        initial = x.new_zeros(B, K - 1, D)
    padded = torch.cat([initial, x], dim=1).transpose(1, 2)  # (B, D, S + K - 1)
    pre = F.conv1d(padded, weight.unsqueeze(1), bias, groups=D)  # cross-correlation: taps k -> t + k
    return F.silu(pre).transpose(1, 2)
