"""The xLSTM 7B architecture ("xLSTM Large", NX-AI's checkpoint), on this library's mLSTM ops.

A stack of mLSTM-only blocks, each x + mLSTM(RMSNorm(x)), then x + SwiGLU(RMSNorm(x)); an output
RMSNorm; the LM head; logits soft-capped. The math, the weight names and the checkpoint layouts are
those of transformers' `xLSTMForCausalLM` and of the reference package's `xlstm.xlstm_large`
(see python_ref/xlstm_large.md); the cells run on `ops.mlstm_chunkwise` over a prompt (in slices of at
most `max_inference_chunksize` tokens, so that memory stays bounded) and on `ops.mlstm_step` per
generated token.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable, Literal

import torch
from torch import nn

from .. import ops
from ..components.linear import Linear
from ..components.rms_norm import MultiHeadLayerNorm, RMSNorm
from ..components.soft_cap import soft_cap, soft_cap_
from ..components.swiglu import SwiGLU

WeightMode = Literal["single", "fused"]
CellState = tuple[torch.Tensor, torch.Tensor, torch.Tensor]

# Gate pre-activations that leave the cell state as it is (a padding position): the input gate
# exp(i - m) is 0 and the forget gate exp(log σ(f)) is 1 in every float format, since the soft-capped
# gates of real tokens keep m >= -gate_soft_cap. Finite, so that no inf - inf can arise in a kernel.
NEUTRAL_I, NEUTRAL_F = -1e4, 1e4

# Fields of the reference's xLSTMLargeConfig that only choose its kernels (ours are fixed): read from
# its config files and ignored.
REFERENCE_KERNEL_FIELDS = frozenset({"chunkwise_kernel", "sequence_kernel", "step_kernel", "mode",
                                     "return_last_states", "autocast_kernel_dtype", "inference_state_dtype"})


@dataclass
class xLSTMLargeConfig:
    """The architecture's sizes and constants, with the reference package's field names and defaults.

    qk_dim = int(embedding_dim · qk_dim_factor) and v_dim = int(embedding_dim · v_dim_factor) are split
    over num_heads heads; the SwiGLU's inner width is embedding_dim · ffn_proj_factor rounded up to a
    multiple of ffn_round_up_to_multiple_of. eps is the cell normaliser's, norm_eps the norms'.
    chunk_size is the chunkwise op's (at most 128 on CUDA); max_inference_chunksize (transformers' field)
    bounds the tokens one forward pass hands to the cells at once. The cell states are float32.
    The token ids (transformers' fields, None in the reference) are kept for checkpoints; generate()
    takes its stop tokens explicitly (e.g. eos_token_id=model.config.eos_token_id)."""

    embedding_dim: int
    num_heads: int
    num_blocks: int
    vocab_size: int
    use_bias: bool = False
    norm_eps: float = 1e-6
    norm_reduction_force_float32: bool = True
    add_out_norm: bool = True
    qk_dim_factor: float = 0.5
    v_dim_factor: float = 1.0
    chunk_size: int = 64
    eps: float = 1e-6
    ffn_proj_factor: float = 2.6667
    ffn_round_up_to_multiple_of: int = 64
    gate_soft_cap: float | None = 15.0
    output_logit_soft_cap: float | None = 30.0
    weight_mode: WeightMode = "single"
    max_inference_chunksize: int = 16384
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None

    def __post_init__(self):
        for name in ("embedding_dim", "num_heads", "num_blocks", "vocab_size", "chunk_size",
                     "ffn_round_up_to_multiple_of", "max_inference_chunksize"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"xLSTMLargeConfig: {name} must be a positive int, got {value!r}")
        for name in ("qk_dim_factor", "v_dim_factor", "ffn_proj_factor"):
            if not getattr(self, name) > 0:
                raise ValueError(f"xLSTMLargeConfig: {name} must be positive, got {getattr(self, name)!r}")
        for name in ("norm_eps", "eps"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"xLSTMLargeConfig: {name} must be non-negative, got {getattr(self, name)!r}")
        for name in ("gate_soft_cap", "output_logit_soft_cap"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"xLSTMLargeConfig: {name} must be positive or None, got {value!r}")
        if self.weight_mode not in ("single", "fused"):
            raise ValueError(f"xLSTMLargeConfig: weight_mode must be 'single' or 'fused', got {self.weight_mode!r}")
        for name, dim in (("qk_dim", self.qk_dim), ("v_dim", self.v_dim)):
            if dim < self.num_heads or dim % self.num_heads:
                raise ValueError(f"xLSTMLargeConfig: {name} = {dim} (embedding_dim {self.embedding_dim} · "
                                 f"{name}_factor) is not divisible into num_heads = {self.num_heads} heads")

    @property
    def qk_dim(self) -> int:
        return int(self.embedding_dim * self.qk_dim_factor)

    @property
    def v_dim(self) -> int:
        return int(self.embedding_dim * self.v_dim_factor)

    @property
    def qk_head_dim(self) -> int:
        return self.qk_dim // self.num_heads

    @property
    def v_head_dim(self) -> int:
        return self.v_dim // self.num_heads

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "xLSTMLargeConfig":
        """A config from the reference's field names; kernel-choice fields of the reference are ignored,
        any other unknown field is an error naming `source`."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known - REFERENCE_KERNEL_FIELDS)
        if unknown:
            raise ValueError(f"{source}: unknown xLSTMLargeConfig field(s) {unknown}")
        return cls(**{key: value for key, value in values.items() if key in known})

    @classmethod
    def from_transformers_dict(cls, values: dict, source: str = "config.json") -> "xLSTMLargeConfig":
        """A config from transformers' xLSTMConfig (as `to_dict()` or config.json has it)."""
        if values.get("model_type", "xlstm") != "xlstm":
            raise ValueError(f"{source}: model_type is {values.get('model_type')!r}, not 'xlstm'")
        if values.get("tie_word_embeddings", False):
            raise ValueError(f"{source}: tie_word_embeddings=True is not supported (xLSTM 7B has its own LM head)")
        renamed = dict(embedding_dim=values.get("embedding_dim") or values.get("hidden_size"),
                       num_blocks=values.get("num_blocks") or values.get("num_hidden_layers"))
        # transformers' model applies its output norm whatever add_out_norm says.
        known = {f.name for f in fields(cls)} - set(renamed) - {"add_out_norm"}
        missing = sorted(name for name in ("num_heads", "vocab_size") if name not in values)
        if missing or None in renamed.values():
            raise ValueError(f"{source}: missing field(s) {missing or [k for k, v in renamed.items() if v is None]}")
        return cls(**renamed, add_out_norm=True, **{key: values[key] for key in known if key in values})

    def to_transformers_dict(self) -> dict:
        """The fields of transformers' xLSTMConfig for this config (its config.json)."""
        if not self.add_out_norm:
            raise ValueError("transformers' xLSTMForCausalLM always applies its output norm: a model with "
                             "add_out_norm=False has no transformers layout")
        values = asdict(self)
        values.update(hidden_size=self.embedding_dim, num_hidden_layers=self.num_blocks, model_type="xlstm",
                      architectures=["xLSTMForCausalLM"], tie_word_embeddings=False,
                      chunkwise_kernel="chunkwise--native_autograd", sequence_kernel="native_sequence__native",
                      step_kernel="native", mode="inference", return_last_states=True,
                      inference_state_dtype="float32")
        return values


@dataclass
class xLSTMLargeState:
    """The model's recurrent state: per block the cell state (C, n, m), float32 (float64 for a float64
    model), C (B, NH, DHQK, DHV), n (B, NH, DHQK), m (B, NH), in this library's convention (the key is
    scaled by DHQK^-1/2; mlstm_kernels' C and n are these times √DHQK)."""

    cells: list[CellState]

    def check(self, config: xLSTMLargeConfig, batch_size: int) -> None:
        """Raise ValueError unless this state fits `config` at `batch_size`."""
        if len(self.cells) != config.num_blocks:
            raise ValueError(f"state: has {len(self.cells)} blocks' cell states, the model {config.num_blocks}")
        NH, DK, DV = config.num_heads, config.qk_head_dim, config.v_head_dim
        expected = ((batch_size, NH, DK, DV), (batch_size, NH, DK), (batch_size, NH))
        for index, cell in enumerate(self.cells):
            shapes = tuple(tuple(t.shape) for t in cell)
            if shapes != expected:
                raise ValueError(f"state: block {index}'s (C, n, m) have shapes {shapes}, expected {expected}")


# The parameters ops.xlstm_large_block_step reads, in its argument order: the maps that are one
# weight or several by weight mode (q, k, v, o; the gates; their biases; the SwiGLU's up maps), then
# the norms, the out projection and the down projection.
_FUSED_STEP_MAPS = {
    "fused": (("mlstm_layer.qkv_opreact.weight",), ("mlstm_layer.ifgate_preact.weight",),
              ("mlstm_layer.ifgate_preact.bias",), ("ffn.proj_up_gate_z.weight",)),
    "single": (("mlstm_layer.q.weight", "mlstm_layer.k.weight", "mlstm_layer.v.weight",
                "mlstm_layer.ogate_preact.weight"), ("mlstm_layer.igate_preact.weight", "mlstm_layer.fgate_preact.weight"),
               ("mlstm_layer.igate_preact.bias", "mlstm_layer.fgate_preact.bias"),
               ("ffn.proj_up_gate.weight", "ffn.proj_up.weight")),
}
_FUSED_STEP_TENSORS = ("norm_mlstm.weight", "mlstm_layer.multihead_norm.weight", "mlstm_layer.out_proj.weight",
                       "norm_ffn.weight", "ffn.proj_down.weight")


def parameter(module: nn.Module, name: str) -> torch.Tensor:
    """module.get_parameter(name), read from the modules' dicts: nn.Module.__getattr__ costs about
    a microsecond a lookup, and a decode token looks up dozens."""
    *path, last = name.split(".")
    for child in path:
        module = module._modules[child]
    return module._parameters[last]


def fused_inference_dtype(config: xLSTMLargeConfig, x: torch.Tensor) -> bool:
    """Whether the fused inference ops (ops.xlstm_large_block_step, ops.xlstm_large_head) compute
    for x what the modules compute: CPU float32, or float64 where the norms do not reduce in float32."""
    return x.device.type == "cpu" and (x.dtype == torch.float32 or (x.dtype == torch.float64
                                                                   and not config.norm_reduction_force_float32))


def fused_inference_applies(x: torch.Tensor, weights: list[torch.Tensor], state: CellState | None = None) -> bool:
    """The fused inference ops take x, the weights and the cell state: one dtype, row-major weights, no
    gradient to record through any of them (they have no autograd)."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, *weights, *(state or ()))):
        return False
    return all(w.dtype == x.dtype and w.stride(-1) == 1 for w in weights)


class xLSTMLargeLayer(nn.Module):
    """The mLSTM layer of xLSTM 7B: q, k (D -> qk_dim), v and the output gate o (D -> v_dim), the input
    and forget gates (D -> NH, with bias) soft-capped at gate_soft_cap; the mLSTM cell per head; a
    multi-head layer norm; σ(o) · h; the out projection (v_dim -> D).

    weight_mode "single" holds q, k, v, ogate_preact, igate_preact, fgate_preact; "fused" holds
    qkv_opreact (rows q, k, v, o) and ifgate_preact (rows i, f): two matmuls instead of six."""

    def __init__(self, config: xLSTMLargeConfig):
        super().__init__()
        self.config = config
        D, NH, bias = config.embedding_dim, config.num_heads, config.use_bias
        self.splits = (config.qk_dim, config.qk_dim, config.v_dim, config.v_dim)
        if config.weight_mode == "fused":
            self.qkv_opreact = Linear(D, sum(self.splits), bias=bias)
            self.ifgate_preact = Linear(D, 2 * NH, bias=True)
        else:
            self.q = Linear(D, config.qk_dim, bias=bias)
            self.k = Linear(D, config.qk_dim, bias=bias)
            self.v = Linear(D, config.v_dim, bias=bias)
            self.ogate_preact = Linear(D, config.v_dim, bias=bias)
            self.igate_preact = Linear(D, NH, bias=True)
            self.fgate_preact = Linear(D, NH, bias=True)
        self.multihead_norm = MultiHeadLayerNorm(NH, config.v_head_dim, eps=config.norm_eps, use_bias=bias,
                                                 force_float32_reductions=config.norm_reduction_force_float32)
        self.out_proj = Linear(config.v_dim, D, bias=bias)

    def _projections(self, x: torch.Tensor):
        if self.config.weight_mode == "fused":
            q, k, v, o = self.qkv_opreact(x).split(self.splits, dim=-1)
            i, f = soft_cap(self.ifgate_preact(x), self.config.gate_soft_cap).chunk(2, dim=-1)
        else:
            q, k, v, o = self.q(x), self.k(x), self.v(x), self.ogate_preact(x)
            cap = self.config.gate_soft_cap
            i, f = soft_cap(self.igate_preact(x), cap), soft_cap(self.fgate_preact(x), cap)
        return q, k, v, o, i, f

    def forward(self, x: torch.Tensor, state: CellState | None = None,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, CellState]:
        """x (B, S, D); state (C, n, m) or None (zeros); mask (B, S) bool, False where a position is
        padding (its gates are made neutral: the state passes it unchanged). Returns (y (B, S, D),
        the new state). S == 1 runs the step op, longer inputs the chunkwise op."""
        B, S, _ = x.shape
        NH = self.config.num_heads
        q, k, v, o, i, f = self._projections(x)
        if mask is not None:
            i = i.masked_fill(~mask[..., None], NEUTRAL_I)
            f = f.masked_fill(~mask[..., None], NEUTRAL_F)
        if S == 1:
            h, state = ops.mlstm_step(q.view(B, NH, -1), k.view(B, NH, -1), v.view(B, NH, -1), i.view(B, NH),
                                      f.view(B, NH), state, self.config.eps)
            h = h.view(B, 1, NH, -1)
        else:
            heads = [t.view(B, S, NH, -1).transpose(1, 2) for t in (q, k, v)]
            h, state = ops.mlstm_chunkwise(*heads, i.transpose(1, 2), f.transpose(1, 2), state, self.config.eps,
                                           self.config.chunk_size)
            h = h.transpose(1, 2)
        return self.out_proj(torch.sigmoid(o) * self.multihead_norm(h)), state


class xLSTMLargeBlock(nn.Module):
    """x + mLSTM(RMSNorm(x)), then x + SwiGLU(RMSNorm(x))."""

    def __init__(self, config: xLSTMLargeConfig):
        super().__init__()
        norm = dict(eps=config.norm_eps, use_bias=config.use_bias,
                    force_float32_reductions=config.norm_reduction_force_float32)
        self.norm_mlstm = RMSNorm(config.embedding_dim, **norm)
        self.mlstm_layer = xLSTMLargeLayer(config)
        self.norm_ffn = RMSNorm(config.embedding_dim, **norm)
        self.ffn = SwiGLU(config.embedding_dim, config.ffn_proj_factor, config.ffn_round_up_to_multiple_of,
                          bias=config.use_bias, fused=config.weight_mode == "fused")

    def forward(self, x: torch.Tensor, state: CellState | None = None,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, CellState]:
        """As xLSTMLargeLayer.forward, for the whole block. A decode step (one unmasked token) of a
        model without biases on CPU float32 tensors, with no gradient to record, runs as one op
        (ops.xlstm_large_block_step: the same math, without the ~20 library calls' overhead); so does
        float64 where the norms do not reduce in float32 (norm_reduction_force_float32=False)."""
        weights = self._fused_step_weights(x, state) if x.shape[1] == 1 and mask is None else None
        if weights is not None:
            return self._fused_step(x, state, *weights)
        y, state = self.mlstm_layer(self.norm_mlstm(x), state, mask)
        x = x + y
        return x + self.ffn(self.norm_ffn(x)), state

    def _fused_step_weights(self, x: torch.Tensor, state: CellState | None
                            ) -> tuple[list[list[torch.Tensor]], list[torch.Tensor]] | None:
        """(the maps, the other tensors) that ops.xlstm_large_block_step reads, as _FUSED_STEP_MAPS and
        _FUSED_STEP_TENSORS name them, where it applies to x and state; else None."""
        config = self.mlstm_layer.config
        if config.use_bias or not fused_inference_dtype(config, x):
            return None
        maps = [[parameter(self, name) for name in names] for names in _FUSED_STEP_MAPS[config.weight_mode]]
        tensors = [parameter(self, name) for name in _FUSED_STEP_TENSORS]
        return (maps, tensors) if fused_inference_applies(x, [w for ws in maps for w in ws] + tensors, state) else None

    def _fused_step(self, x: torch.Tensor, state: CellState | None, maps: list[list[torch.Tensor]],
                    tensors: list[torch.Tensor]) -> tuple[torch.Tensor, CellState]:
        config = self.mlstm_layer.config
        B = x.shape[0]
        if state is None:
            NH, DK, DV = config.num_heads, config.qk_head_dim, config.v_head_dim
            state = (x.new_zeros(B, NH, DK, DV), x.new_zeros(B, NH, DK), x.new_zeros(B, NH))
        qkvo, gates, biases, up = maps
        norm_mlstm, head_norm, out, norm_ffn, down = tensors
        y, state = ops.xlstm_large_block_step(x.view(B, -1), norm_mlstm, qkvo, gates, biases, head_norm, out, norm_ffn,
                                              up, down, state, config.gate_soft_cap, config.norm_eps, config.eps)
        return y.view(B, 1, -1), state


class xLSTMLargeBackbone(nn.Module):
    """The blocks and the output norm (named as in both checkpoint layouts)."""

    def __init__(self, config: xLSTMLargeConfig):
        super().__init__()
        self.blocks = nn.ModuleList(xLSTMLargeBlock(config) for _ in range(config.num_blocks))
        self.out_norm = (RMSNorm(config.embedding_dim, eps=config.norm_eps, use_bias=config.use_bias,
                                 force_float32_reductions=config.norm_reduction_force_float32)
                         if config.add_out_norm else nn.Identity())


class xLSTMLarge(nn.Module):
    """xLSTM 7B: embedding, config.num_blocks mLSTM blocks, output norm, LM head, soft-capped logits.

    forward(input_ids, state, attention_mask) -> (logits, state) over any number of tokens; generate()
    for text generation; from_pretrained / save_pretrained for transformers' and the reference's
    checkpoint directories. Parameter names are the reference package's (transformers' differ only in
    `backbone.embeddings.weight` for `embedding.weight`)."""

    def __init__(self, config: xLSTMLargeConfig):
        super().__init__()
        if not isinstance(config, xLSTMLargeConfig):
            raise TypeError(f"xLSTMLarge: config must be an xLSTMLargeConfig, got {type(config).__name__}")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        self.backbone = xLSTMLargeBackbone(config)
        self.lm_head = Linear(config.embedding_dim, config.vocab_size, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The xLSTM 7B initialisation: embedding, LM head and the projections normal with std
        √(2 / (5 D)) (small init); out_proj with std 2 / (num_blocks √D) and proj_down with std
        2 / (num_blocks √inner) (Wang init); i and f gate weights zero, biases −10 (i) and
        linspace(3, 6) over the heads (f); norms one, other biases zero."""
        config = self.config
        small = math.sqrt(2 / (5 * config.embedding_dim))
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                if name.endswith("out_proj"):
                    std = 2 / config.num_blocks / math.sqrt(config.embedding_dim)
                elif name.endswith("proj_down"):
                    std = 2 / config.num_blocks / math.sqrt(module.in_features)
                else:
                    std = small
                module.weight.normal_(0.0, std)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, (RMSNorm, MultiHeadLayerNorm)):
                if module.weight is not None:
                    module.weight.fill_(1.0)
                if module.bias is not None:
                    module.bias.zero_()
        self.embedding.weight.normal_(0.0, small)
        NH = config.num_heads
        f_bias = torch.linspace(3.0, 6.0, NH)
        for block in self.backbone.blocks:
            layer = block.mlstm_layer
            if config.weight_mode == "fused":
                layer.ifgate_preact.weight.zero_()
                layer.ifgate_preact.bias.copy_(torch.cat([torch.full((NH,), -10.0), f_bias]))
            else:
                layer.igate_preact.weight.zero_()
                layer.fgate_preact.weight.zero_()
                layer.igate_preact.bias.fill_(-10.0)
                layer.fgate_preact.bias.copy_(f_bias)

    def forward(self, input_ids: torch.Tensor, state: xLSTMLargeState | None = None,
                attention_mask: torch.Tensor | None = None,
                last_logits_only: bool = False) -> tuple[torch.Tensor, xLSTMLargeState]:
        """input_ids (B, S) token ids, S >= 1; state from an earlier call (None: the zero state);
        attention_mask (B, S), 0 at padding positions (which then leave the state unchanged; their
        logits are meaningless). Returns float32 logits (B, S, V), or (B, 1, V) for the last position
        with last_logits_only, and the state after the tokens. The prompt is processed in slices of
        at most config.max_inference_chunksize tokens."""
        if input_ids.dim() != 2 or input_ids.shape[1] < 1 or input_ids.dtype not in (torch.long, torch.int):
            raise ValueError(f"xLSTMLarge: input_ids must be an integer tensor of shape [B, S] with S >= 1, got "
                             f"{input_ids.dtype} {list(input_ids.shape)}")
        B, S = input_ids.shape
        if int(input_ids.min()) < 0 or int(input_ids.max()) >= self.config.vocab_size:
            raise ValueError(f"xLSTMLarge: input_ids must lie in [0, {self.config.vocab_size}), got values in "
                             f"[{int(input_ids.min())}, {int(input_ids.max())}]")
        if attention_mask is not None:
            if tuple(attention_mask.shape) != (B, S):
                raise ValueError(f"xLSTMLarge: attention_mask must have the shape of input_ids {[B, S]}, got "
                                 f"{list(attention_mask.shape)}")
            attention_mask = attention_mask.to(device=input_ids.device, dtype=torch.bool)
            if bool(attention_mask.all()):
                attention_mask = None
        if state is None:
            cells = [None] * self.config.num_blocks
        else:
            if not isinstance(state, xLSTMLargeState):
                raise TypeError(f"xLSTMLarge: state must be an xLSTMLargeState, got {type(state).__name__}")
            state.check(self.config, B)
            cells = list(state.cells)
        logits = []
        step = self.config.max_inference_chunksize
        for start in range(0, S, step):
            x = self.embedding(input_ids[:, start:start + step])
            mask = attention_mask[:, start:start + step] if attention_mask is not None else None
            for index, block in enumerate(self.backbone.blocks):
                x, cells[index] = block(x, cells[index], mask)
            if last_logits_only and start + step < S:
                continue
            logits.append(self._logits(x[:, -1:] if last_logits_only else x))
        return (logits[0] if len(logits) == 1 else torch.cat(logits, dim=1)), xLSTMLargeState(cells)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """float32 soft-capped logits of the last block's output x (B, S, D); without gradients on
        the CPU one op (ops.xlstm_large_head: a decode step's head streamed once, a prompt's as one
        GEMM capped in place)."""
        config, norm = self.config, self.backbone.out_norm
        if (isinstance(norm, RMSNorm) and norm.bias is None and norm.weight is not None
                and fused_inference_dtype(config, x)
                and fused_inference_applies(x, [norm.weight, self.lm_head.weight])):
            B, S, D = x.shape
            return ops.xlstm_large_head(x.reshape(B * S, D), norm.weight, self.lm_head.weight, config.norm_eps,
                                        config.output_logit_soft_cap).view(B, S, -1).float()
        chunk = self.lm_head(norm(x)).float()
        cap = soft_cap_ if not (torch.is_grad_enabled() and chunk.requires_grad) else soft_cap
        return cap(chunk, config.output_logit_soft_cap)

    @torch.inference_mode()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 max_new_tokens: int = 32, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, eos_token_id: int | list[int] | None = None,
                 generator: torch.Generator | None = None,
                 streamer: Callable[[torch.Tensor], None] | object | None = None,
                 pad_token_id: int | None = None) -> torch.Tensor:
        """Continue each prompt of input_ids (B, S) by up to max_new_tokens tokens; returns (B, S + n),
        the prompts followed by the n <= max_new_tokens generated tokens.

        A batch of prompts of different lengths is left-padded, with attention_mask (B, S) 0 on the
        padding (as transformers' tokenizers give it with padding_side="left"); each row then gets
        what its prompt gives alone. temperature 0 is greedy; otherwise sampling from
        softmax(logits / temperature), restricted to the top_k tokens and to the smallest set of
        probability >= top_p, drawn with `generator`. A row stops at any token of eos_token_id and is
        filled with pad_token_id (default: the first eos token) after it; generation ends when every
        row has stopped. streamer: a callable given each step's tokens (B,), or an object with
        transformers' streamer interface (put(prompt ids), put(new ids) per step, end())."""
        V = self.config.vocab_size
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError(f"generate: max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
        if not temperature >= 0:
            raise ValueError(f"generate: temperature must be >= 0, got {temperature!r}")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ValueError(f"generate: top_k must be a positive int or None, got {top_k!r}")
        if top_p is not None and not 0 < top_p <= 1:
            raise ValueError(f"generate: top_p must lie in (0, 1] or be None, got {top_p!r}")
        eos = [] if eos_token_id is None else [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
        if pad_token_id is None:
            pad_token_id = eos[0] if eos else 0
        for name, token in [("eos_token_id", t) for t in eos] + [("pad_token_id", pad_token_id)]:
            if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < V:
                raise ValueError(f"generate: {name} must be token ids in [0, {V}), got {token!r}")
        if attention_mask is not None:
            if input_ids.dim() != 2 or tuple(attention_mask.shape) != tuple(input_ids.shape):
                raise ValueError(f"generate: attention_mask must have the shape of input_ids "
                                 f"{list(input_ids.shape)}, got {list(attention_mask.shape)}")
            if not bool(attention_mask[:, -1].bool().all()):
                raise ValueError("generate: every prompt must end at the last position (pad on the left: "
                                 "attention_mask[:, -1] must be 1)")
        if streamer is not None and not (callable(streamer) or hasattr(streamer, "put")):
            raise TypeError("generate: streamer must be callable or have put() and end()")
        logits, state = self(input_ids, attention_mask=attention_mask, last_logits_only=True)
        B, S = input_ids.shape
        out = torch.empty(B, S + max_new_tokens, dtype=torch.long, device=input_ids.device)
        out[:, :S] = input_ids
        if hasattr(streamer, "put"):
            streamer.put(input_ids.cpu())
        eos_ids = torch.tensor(eos, dtype=torch.long, device=input_ids.device)
        finished = torch.zeros(B, dtype=torch.bool, device=input_ids.device)
        length = S
        for t in range(max_new_tokens):
            token = sample_token(logits[:, -1], temperature, top_k, top_p, generator)
            if eos:
                token = token.masked_fill(finished, pad_token_id)
                finished |= torch.isin(token, eos_ids)
            out[:, length] = token
            length += 1
            if hasattr(streamer, "put"):
                streamer.put(token.cpu())
            elif streamer is not None:
                streamer(token)
            if t + 1 == max_new_tokens or (eos and bool(finished.all())):
                break
            logits, state = self(token[:, None], state)
        if hasattr(streamer, "end"):
            streamer.end()
        return out[:, :length]

    # ---- checkpoints ------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: torch.dtype | None = None,
                        device: torch.device | str = "cpu", weight_mode: WeightMode | None = None) -> "xLSTMLarge":
        """Load a checkpoint directory: transformers' (config.json and model.safetensors, or shards
        listed in model.safetensors.index.json) or the reference package's (config.yaml and
        model.safetensors or model_0.safetensors, model_1.safetensors, ...). The tensors are read
        memory-mapped, one at a time, into the model's parameters (dtype: the checkpoint's when None).
        weight_mode converts to "single" or "fused" weights (default: the checkpoint's)."""
        from . import xlstm_large_checkpoint as checkpoint
        return checkpoint.load(Path(path), dtype, torch.device(device), weight_mode)

    def save_pretrained(self, path: str | Path, overwrite: bool = False,
                        max_shard_bytes: int | None = None) -> None:
        """Write transformers' layout (config.json, model.safetensors; with max_shard_bytes, shards of
        at most about that size and model.safetensors.index.json) into the directory `path`. A
        directory that exists and is not empty is refused unless overwrite=True."""
        from . import xlstm_large_checkpoint as checkpoint
        checkpoint.save(self, Path(path), overwrite, max_shard_bytes)

    def with_weight_mode(self, weight_mode: WeightMode) -> "xLSTMLarge":
        """This model with "single" or "fused" weights: a new model (self itself if already so) that
        shares the tensors the conversion leaves as they are (embedding, norms, out projections, LM
        head) with self."""
        from . import xlstm_large_checkpoint as checkpoint
        if weight_mode == self.config.weight_mode:
            return self
        config = replace(self.config, weight_mode=weight_mode)
        return model_from_tensors(config, checkpoint.convert_weight_mode(self.state_dict(), self.config, weight_mode))


def _empty_model(config: xLSTMLargeConfig) -> xLSTMLarge:
    """A model whose parameters are on the meta device, to be assigned loaded tensors."""
    with torch.device("meta"):
        return xLSTMLarge(config)


def model_from_tensors(config: xLSTMLargeConfig, tensors: dict[str, torch.Tensor]) -> xLSTMLarge:
    """A model of `config` whose parameters are `tensors` (named as its state dict, in its weight mode;
    not copied)."""
    model = _empty_model(config)
    model.load_state_dict(tensors, assign=True)
    return model


def sample_token(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None,
                 generator: torch.Generator | None) -> torch.Tensor:
    """One token per row of logits (B, V): the argmax at temperature 0, else a draw from
    softmax(logits / temperature) restricted to the top_k largest and to the smallest set whose
    probability reaches top_p (the most likely token always stays)."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs >= top_p  # the mass before a token already reaches top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, -math.inf))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]


__all__ = ["model_from_tensors", "sample_token", "xLSTMLarge", "xLSTMLargeConfig", "xLSTMLargeState"]
