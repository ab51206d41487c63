"""The layers' building blocks around the cells: the causal depthwise convolution + SiLU that
feeds both layers, and the block-diagonal (headwise) projections and output stage of the mLSTM layer."""

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


def headwise_linear(x, weight):
    """x: (..., G * I); weight: (G, O, I), one O x I matrix per block of I features.

    Block g of the output is weight[g] applied to block g of the input: a block-diagonal linear
    map. Returns (..., G * O).
    """
    G, O, I = weight.shape
    blocks = x.unflatten(-1, (G, I))  # (..., G, I)
    return torch.einsum("...gi,goi->...go", blocks, weight).flatten(-2)


def mlstm_output_gate(h, x_conv, z, norm_weight, skip, eps=1e-5):
    """The mLSTM layer's output stage: h, the cell output (..., NH, DH), normalised per head (a
    layer norm over each head's DH features, biased variance, no affine of its own) and flattened,
    scaled by the norm's weight, plus the learnable skip of the conv branch x_conv, gated by SiLU of
    the other branch z. x_conv, z: (..., NH * DH); norm_weight, skip: (NH * DH,). Returns (..., NH * DH)."""
    normed = F.layer_norm(h, h.shape[-1:], eps=eps).flatten(-2)
    return (normed * norm_weight + skip * x_conv) * F.silu(z)
