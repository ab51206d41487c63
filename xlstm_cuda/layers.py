"""torch.nn modules around the kernels: thin wrappers, each a literal reading of the spec's layer."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import ops


__all__ = ["CausalConvSiLU", "HeadwiseLinear", "MultiHeadNorm", "check_input", "fused_step_applies", "mLSTMCell",
           "mLSTMLayer", "powerlaw_forget_bias", "sLSTMCell", "sLSTMLayer"]


def check_input(owner: str, x, dims: int, embedding_dim: int) -> None:
    """A clear error for a module's input that is not a floating-point (B, S, D) sequence (dims 3)
    or (B, D) token (dims 2) with D = embedding_dim and no empty dimension; owner names the module."""
    shape = "(B, S, D)" if dims == 3 else "(B, D)"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{owner}: x must be a tensor {shape}, got {type(x).__name__}")
    if x.dim() != dims or x.shape[-1] != embedding_dim or x.numel() == 0:
        raise ValueError(f"{owner}: x must be {shape} with D = {embedding_dim} and no empty dimension, "
                         f"got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{owner}: x must be a floating-point tensor, got {x.dtype}")


def fused_step_applies(layer: nn.Module, weight: torch.Tensor, x_t: torch.Tensor, state: dict) -> bool:
    """Whether a layer's step may take its fused CPU op (an inference fast path, no autograd): x_t
    on the CPU in the dtype of the layer's `weight` (its parameters share it: the op checks each),
    float32 or float64, and no gradient wanted through the step (grad mode off, or nothing
    involved requires grad). Otherwise the composed ops run."""
    if x_t.device.type != "cpu" or x_t.dtype not in (torch.float32, torch.float64) or weight.dtype != x_t.dtype \
            or weight.device.type != "cpu":
        return False
    if not torch.is_grad_enabled():
        return True
    tensors = [x_t, *layer.parameters()]
    for value in state.values():
        tensors.extend(value if isinstance(value, (tuple, list)) else [value])
    return not any(t is not None and t.requires_grad for t in tensors)


class CausalConvSiLU(nn.Module):
    """SiLU of a depthwise causal convolution over time, (B, S, D) -> (B, S, D): one fused kernel
    (ops.causal_conv1d_silu). Its step form keeps the last kernel_size - 1 inputs as state."""

    def __init__(self, dim: int, kernel_size: int = 4):
        super().__init__()
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(dim, dim, kernel_size, groups=dim, bias=True)  # holds the parameters

    def forward(self, x: torch.Tensor, buffer: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, S, D), buffer (B, kernel_size - 1, D) of earlier inputs (zeros when None). Returns
        the output and the new buffer."""
        K = self.kernel_size
        y = ops.causal_conv1d_silu(x, self.conv.weight[:, 0], self.conv.bias, buffer)
        if x.shape[1] >= K - 1:
            new_buffer = x[:, x.shape[1] - (K - 1):]
        else:
            earlier = buffer if buffer is not None else x.new_zeros(x.shape[0], K - 1, x.shape[2])
            new_buffer = torch.cat([earlier[:, x.shape[1]:], x], dim=1)
        return y, new_buffer


class HeadwiseLinear(nn.Module):
    """Block-diagonal linear map: features split into blocks of block_size, each mapped by its own
    block_size x block_size matrix; one pass over the rows (ops.headwise_linear)."""

    def __init__(self, dim: int, block_size: int, bias: bool = False):
        super().__init__()
        if dim % block_size:
            raise ValueError(f"dim {dim} is not divisible by the block size {block_size}")
        self.block_size = block_size
        self.weight = nn.Parameter(torch.empty(dim // block_size, block_size, block_size))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None
        nn.init.normal_(self.weight, std=math.sqrt(2 / (5 * block_size)))

    def forward(self, x: torch.Tensor, heads: int = 1) -> torch.Tensor:
        """x (..., dim) -> (..., dim); with heads > 1, x (B, S, dim) -> (B, heads, S, dim / heads)."""
        y = ops.headwise_linear(x, self.weight, heads)
        if self.bias is None:
            return y
        return y + (self.bias if heads == 1 else self.bias.view(heads, 1, -1))


class MultiHeadNorm(nn.Module):
    """Group norm with one group per head: normalise each head's features, then a learnable scale."""

    def __init__(self, num_heads: int, head_dim: int, eps: float = 1e-5):
        super().__init__()
        self.num_heads, self.eps = num_heads, eps
        self.weight = nn.Parameter(torch.ones(num_heads * head_dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h (..., NH, DH) -> (..., NH * DH): each head's features normalised (bf16 / fp16 in float32,
        then back to h's dtype), then scaled. The mLSTM layer applies it inside ops.mlstm_output_gate."""
        # float32 and float64 h take no casts: a generation step pays for every op dispatch, even a no-op's.
        x = h.float() if h.dtype in (torch.bfloat16, torch.float16) else h
        y = F.layer_norm(x, h.shape[-1:], eps=self.eps)
        return (y if y.dtype == h.dtype else y.to(h.dtype)).flatten(-2) * self.weight


def powerlaw_forget_bias(num_heads: int, head_dim: int, block_idx: int = 0, num_blocks: int = 1) -> torch.Tensor:
    """The reference package's "powerlaw_blockdependent" forget-gate bias, (NH, DH): for unit j of a
    head, -(-5 + 12 (j / (DH - 1)) ** (0.3 + 1.3 block_idx / (num_blocks - 1)))."""
    ratio = block_idx / (num_blocks - 1) if num_blocks > 1 else 0.0
    j = torch.arange(head_dim, dtype=torch.float64) / max(head_dim - 1, 1)
    return (-(-5.0 + 12.0 * j ** (0.3 + 1.3 * ratio))).float().expand(num_heads, head_dim).clone()


class sLSTMCell(nn.Module):
    """The sLSTM recurrence on given gate pre-activations, with its recurrent weights R and bias b.
    forward(x_gates (B, S, NH, 4, DH), state=None) -> (h (B, S, NH, DH), state (h, c, n, m))."""

    def __init__(self, num_heads: int, head_dim: int, bias_init: str = "powerlaw_blockdependent",
                 block_idx: int = 0, num_blocks: int = 1):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.R = nn.Parameter(torch.zeros(num_heads, head_dim, 4, head_dim))
        self.b = nn.Parameter(torch.zeros(num_heads, 4, head_dim))
        if bias_init == "powerlaw_blockdependent":
            with torch.no_grad():
                self.b[:, 1] = powerlaw_forget_bias(num_heads, head_dim, block_idx, num_blocks)
        elif bias_init != "zeros":
            raise ValueError(f"unknown bias_init {bias_init!r}: use 'powerlaw_blockdependent' or 'zeros'")

    def forward(self, x_gates: torch.Tensor, state: ops.SlstmState | None = None):
        return ops.slstm(x_gates, self.R, self.b, state)


class sLSTMLayer(nn.Module):
    """The sLSTM layer of the spec: a causal depthwise conv + SiLU feeds the i and f gate
    projections, z and o read the input directly; per-head gate projections; the fused sLSTM
    recurrence; a multi-head group norm.

    forward(x (B, S, D), state=None) -> (y (B, S, D), state); step(x_t (B, D), state) -> (y_t, state).
    state is a dict: "conv" (B, kernel - 1, D) and "slstm" (h, c, n, m)."""

    def __init__(self, embedding_dim: int, num_heads: int = 4, conv1d_kernel_size: int = 4,
                 bias_init: str = "powerlaw_blockdependent", dropout: float = 0.0, block_idx: int = 0,
                 num_blocks: int = 1):
        super().__init__()
        if embedding_dim % num_heads:
            raise ValueError(f"embedding_dim {embedding_dim} is not divisible by num_heads {num_heads}")
        self.embedding_dim, self.num_heads = embedding_dim, num_heads
        self.head_dim = embedding_dim // num_heads
        self.conv = CausalConvSiLU(embedding_dim, conv1d_kernel_size) if conv1d_kernel_size > 0 else None
        # Per-head gate projections [head, gate i/f/z/o, out unit, in unit]: block-diagonal maps.
        self.gate_weight = nn.Parameter(torch.empty(num_heads, 4, self.head_dim, self.head_dim))
        nn.init.normal_(self.gate_weight, std=math.sqrt(2 / (5 * self.head_dim)))
        self.cell = sLSTMCell(num_heads, self.head_dim, bias_init, block_idx, num_blocks)
        self.norm = MultiHeadNorm(num_heads, self.head_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, state: dict | None = None) -> tuple[torch.Tensor, dict]:
        check_input("sLSTMLayer", x, 3, self.embedding_dim)
        return self._sequence(x, state or {})

    def _sequence(self, x: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """forward on a checked x: step's token is a sequence of one."""
        if self.conv is not None:
            x_conv, conv_buffer = self.conv(x, state.get("conv"))
        else:
            x_conv, conv_buffer = x, None
        # i and f read the convolved input, z and o the input itself: with the two sources side by
        # side per head, [head, source, unit], the gate projections are one headwise map of 2 NH
        # groups (DH -> 2 DH each) whose output is x_gates in the op's layout (B, S, NH, 4, DH).
        B, S, _ = x.shape
        NH, DH = self.num_heads, self.head_dim
        sources = torch.stack((x_conv.view(B, S, NH, DH), x.view(B, S, NH, DH)), dim=3)
        x_gates = ops.headwise_linear(sources.view(B, S, 2 * NH * DH), self.gate_weight.view(2 * NH, 2 * DH, DH))
        h, cell_state = self.cell(x_gates.view(B, S, NH, 4, DH), state.get("slstm"))
        y = self.dropout(self.norm(h))
        new_state = {"slstm": cell_state}
        if conv_buffer is not None:
            new_state["conv"] = conv_buffer
        return y, new_state

    def step(self, x_t: torch.Tensor, state: dict | None = None) -> tuple[torch.Tensor, dict]:
        """One token: x_t (B, D)."""
        check_input("sLSTMLayer", x_t, 2, self.embedding_dim)
        state = state or {}
        if fused_step_applies(self, self.gate_weight, x_t, state):
            return self._fused_step(x_t, state)
        y, state = self._sequence(x_t.unsqueeze(1), state)
        return y.squeeze(1), state

    def _fused_step(self, x_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """step on the CPU without autograd: one fused op (ops.slstm_layer_step), the same math,
        state and outputs. Parameters read from the modules' dicts, as in mLSTMLayer._fused_step."""
        modules = self._modules
        conv, cell, norm = self.conv, modules["cell"]._parameters, modules["norm"]  # conv: None without one
        B = x_t.shape[0]
        conv_inputs = (None, None, None)
        if conv is not None:
            buffer = state.get("conv")
            if buffer is None:
                buffer = x_t.new_zeros(B, conv.kernel_size - 1, self.embedding_dim)
            conv_parameters = conv._modules["conv"]._parameters
            conv_inputs = (buffer, conv_parameters["weight"], conv_parameters["bias"])
        cell_state = state.get("slstm")
        if cell_state is None:
            cell_state = tuple(x_t.new_zeros(4, B, self.num_heads, self.head_dim).unbind(0))
        y, buffer, cell_state = ops.slstm_layer_step(x_t, *conv_inputs, self._parameters["gate_weight"], cell["R"],
                                                     cell["b"], cell_state, norm._parameters["weight"], norm.eps)
        new_state = {"slstm": cell_state}
        if buffer is not None:
            new_state["conv"] = buffer
        return modules["dropout"](y), new_state


class mLSTMCell(nn.Module):
    """The mLSTM on given q, k, v and gate inputs: chunkwise over a sequence, the fused step for one
    token. forward(q, k, v, i, f, state=None) with q, k (B, NH, S, DHQK), v (B, NH, S, DHV), i, f
    (B, NH, S) -> (h (B, NH, S, DHV), state (C, n, m)); step takes one token (no S dimension)."""

    def __init__(self, chunk_size: int = 64, eps: float = 1e-6):
        super().__init__()
        self.chunk_size, self.eps = chunk_size, eps

    def forward(self, q, k, v, i, f, state: ops.MlstmState | None = None):
        return ops.mlstm_chunkwise(q, k, v, i, f, state, self.eps, self.chunk_size)

    def step(self, q, k, v, i, f, state: ops.MlstmState | None = None):
        return ops.mlstm_step(q, k, v, i, f, state, self.eps)


class mLSTMLayer(nn.Module):
    """The mLSTM layer of the spec (pre up-projection block): up-projection to two branches of
    width inner = proj_factor * D rounded up to a multiple of 64; on one, a causal depthwise conv +
    SiLU feeds q and k (block-diagonal projections), v reads it before the conv; the gates i, f are
    linear maps of concat(q, k, v) to one value per head; the mLSTM; multi-head group norm, a
    learnable skip of the conv branch, gated by SiLU of the other branch; down-projection.

    forward(x (B, S, D), state=None) -> (y (B, S, D), state); step(x_t (B, D), state) -> (y_t, state).
    state is a dict: "conv" (B, kernel - 1, inner) and "mlstm" (C, n, m)."""

    def __init__(self, embedding_dim: int, num_heads: int = 4, proj_factor: float = 2.0,
                 conv1d_kernel_size: int = 4, qkv_proj_blocksize: int = 4, dropout: float = 0.0,
                 bias: bool = False, chunk_size: int = 64):
        super().__init__()
        inner = math.ceil(proj_factor * embedding_dim / 64) * 64
        if inner % (num_heads * qkv_proj_blocksize):
            raise ValueError(f"inner width {inner} is not divisible into {num_heads} heads of whole "
                             f"{qkv_proj_blocksize}-wide projection blocks")
        self.embedding_dim, self.num_heads, self.inner = embedding_dim, num_heads, inner
        self.up = nn.Linear(embedding_dim, 2 * inner, bias=bias)
        self.conv = CausalConvSiLU(inner, conv1d_kernel_size)
        self.q, self.k, self.v = (HeadwiseLinear(inner, qkv_proj_blocksize, bias) for _ in range(3))
        self.gates = nn.Linear(3 * inner, 2 * num_heads)  # i for the first num_heads outputs, then f
        self.cell = mLSTMCell(chunk_size)
        self.norm = MultiHeadNorm(num_heads, inner // num_heads)
        self.skip = nn.Parameter(torch.ones(inner))
        self.down = nn.Linear(inner, embedding_dim, bias=bias)
        self.dropout = nn.Dropout(dropout)
        with torch.no_grad():
            self.gates.weight.zero_()
            nn.init.normal_(self.gates.bias[:num_heads], std=0.1)
            self.gates.bias[num_heads:] = torch.linspace(3.0, 6.0, num_heads)

    def _gate_inputs(self, x_conv: torch.Tensor, x_m: torch.Tensor) -> torch.Tensor:
        """self.gates(concat(q, k, v)), (B, S, 2 NH), computed from what q, k and v are made of: the
        gate weights composed with the headwise projections (tiny) give one map of the conv branch
        and one of x_m, so the 3 * inner wide concatenation is never built."""
        parts = self.gates.weight.split(self.inner, dim=1)  # (2 NH, inner) per source: q, k, v

        def composed(weight: torch.Tensor, proj: HeadwiseLinear) -> torch.Tensor:
            G, O, _ = proj.weight.shape
            return torch.einsum("rgo,goi->rgi", weight.unflatten(1, (G, O)), proj.weight).flatten(1)

        bias = self.gates.bias
        for weight, proj in zip(parts, (self.q, self.k, self.v)):
            if proj.bias is not None:
                bias = bias + weight @ proj.bias
        from_conv = composed(parts[0], self.q) + composed(parts[1], self.k)
        return torch.addmm(bias, x_conv.flatten(0, -2), from_conv.t()).add_(
            x_m.flatten(0, -2) @ composed(parts[2], self.v).t()).unflatten(0, x_conv.shape[:-1])

    def forward(self, x: torch.Tensor, state: dict | None = None) -> tuple[torch.Tensor, dict]:
        check_input("mLSTMLayer", x, 3, self.embedding_dim)
        state = state or {}
        # The up-projection's halves as two maps: the backward of one map's split would copy both
        # halves' gradients into one tensor; apart, only x's two gradients are added.
        up_m, up_z = self.up.weight.chunk(2)
        bias_m, bias_z = self.up.bias.chunk(2) if self.up.bias is not None else (None, None)
        x_m, z = F.linear(x, up_m, bias_m), F.linear(x, up_z, bias_z)
        x_conv, conv_buffer = self.conv(x_m, state.get("conv"))
        # q, k, v come head-major, (B, NH, S, DH): the layout the cell computes in.
        q, k, v = (proj(src, self.num_heads) for proj, src in ((self.q, x_conv), (self.k, x_conv), (self.v, x_m)))
        if self.num_heads == 1:  # headwise_linear returns the plain (B, S, inner) layout for one head
            q, k, v = (t.unsqueeze(1) for t in (q, k, v))
        i, f = self._gate_inputs(x_conv, x_m).transpose(1, 2).chunk(2, dim=1)  # (B, NH, S) each
        h, mlstm_state = self.cell(q, k, v, i, f, state.get("mlstm"))
        # The multi-head norm, its scale, the skip and the SiLU(z) gate in one pass that reads h
        # head-major where the cell wrote it and writes (B, S, inner) rows (ops.mlstm_output_gate).
        gated = ops.mlstm_output_gate(h.transpose(1, 2), x_conv, z, self.norm.weight, self.skip, self.norm.eps)
        y = self.down(gated)
        return self.dropout(y), {"conv": conv_buffer, "mlstm": mlstm_state}

    def step(self, x_t: torch.Tensor, state: dict | None = None) -> tuple[torch.Tensor, dict]:
        """One token: x_t (B, D); the fused step kernel, O(1) memory in the tokens seen. forward's
        math at S = 1 in fewer ops, since a token's cost is mostly per-op overhead: no time
        dimension, and q, k, v as one headwise map (the three weights side by side) whose output
        is the concat(q, k, v) that the gates read."""
        check_input("mLSTMLayer", x_t, 2, self.embedding_dim)
        state = state or {}
        if fused_step_applies(self, self.up.weight, x_t, state):
            return self._fused_step(x_t, state)
        x_m, z = self.up(x_t).chunk(2, dim=-1)
        x_conv, conv_buffer = self.conv(x_m.unsqueeze(1), state.get("conv"))
        x_conv = x_conv[:, 0]
        projections = (self.q, self.k, self.v)
        qkv = ops.headwise_linear(torch.cat((x_conv, x_conv, x_m), dim=-1),
                                  torch.cat([proj.weight for proj in projections]))
        if self.q.bias is not None:
            qkv = qkv + torch.cat([proj.bias for proj in projections])
        i, f = self.gates(qkv).chunk(2, dim=-1)  # (B, NH) each
        q, k, v = qkv.view(x_t.shape[0], 3, self.num_heads, -1).unbind(1)
        h, mlstm_state = self.cell.step(q, k, v, i, f, state.get("mlstm"))
        y = self.down(ops.mlstm_output_gate(h, x_conv, z, self.norm.weight, self.skip, self.norm.eps))
        return self.dropout(y), {"conv": conv_buffer, "mlstm": mlstm_state}

    def _fused_step(self, x_t: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """step on the CPU without autograd: one fused op between the two projections
        (ops.mlstm_layer_step), the same math, state and outputs. Parameters and submodules are
        read from the modules' own dicts (what nn.Module.__getattr__ returns): that fallback costs
        about 0.6 µs a lookup, and this step makes ~35 of them a token."""
        modules = self._modules
        conv, q, k, v, norm = (modules[name] for name in ("conv", "q", "k", "v", "norm"))
        conv_parameters, gate_parameters = conv._modules["conv"]._parameters, modules["gates"]._parameters
        B = x_t.shape[0]
        buffer = state.get("conv")
        if buffer is None:
            buffer = x_t.new_zeros(B, conv.kernel_size - 1, self.inner)
        cell_state = state.get("mlstm")
        if cell_state is None:
            DH = self.inner // self.num_heads
            cell_state = (x_t.new_zeros(B, self.num_heads, DH, DH), x_t.new_zeros(B, self.num_heads, DH),
                          x_t.new_zeros(B, self.num_heads))
        out, buffer, cell_state = ops.mlstm_layer_step(
            modules["up"](x_t), buffer, conv_parameters["weight"], conv_parameters["bias"],
            *(proj._parameters["weight"] for proj in (q, k, v)), *(proj._parameters.get("bias") for proj in (q, k, v)),
            gate_parameters["weight"], gate_parameters["bias"], cell_state, norm._parameters["weight"],
            self._parameters["skip"], norm.eps, modules["cell"].eps)
        return modules["dropout"](modules["down"](out)), {"conv": buffer, "mlstm": cell_state}
