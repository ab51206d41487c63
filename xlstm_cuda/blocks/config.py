"""Configs of the layers, the feed-forward and the blocks, with the reference package's field names
and defaults (xlstm 2.0.6), so that its configs, as dataclasses or as dicts (a YAML file's
contents), build our modules. Underscored fields are derived by the enclosing config, as there.

Fields that exist for the reference's CUDA kernel or its limits (`backend`, `dtype*`,
`batch_size`, the shape layouts, `context_length`) are accepted and ignored: the kernels here take
any batch, any sequence length and the parameters' dtype. Options the reference offers that these
kernels do not implement raise a ValueError naming the field.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

from ..components.feedforward import ACTIVATIONS


def proj_up_dim(proj_factor: float, embedding_dim: int, round_up: bool, multiple_of: int) -> int:
    """proj_factor * embedding_dim rounded (up or down) to a multiple of multiple_of, as the reference."""
    steps = proj_factor * embedding_dim / multiple_of
    return int((math.ceil(steps) if round_up else math.floor(steps)) * multiple_of)


def config_from(cls, value: Any, where: str | None = None):
    """value as a cls: returned if it is one; built from a dict (keys checked) or from any dataclass
    with the same fields (the reference package's config objects)."""
    where = where or cls.__name__
    if isinstance(value, cls):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if not isinstance(value, dict):
        raise TypeError(f"{where}: expected a {cls.__name__}, a dict or a dataclass, got {type(value).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - names)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)} (a {cls.__name__} has {', '.join(sorted(names))})")
    nested = getattr(cls, "_nested_configs", {})
    kwargs = {}
    for key, item in value.items():
        if key in nested and item is not None:
            item = config_from(nested[key], item, f"{where}.{key}")
        kwargs[key] = item
    return cls(**kwargs)


def config_to_dict(config) -> dict:
    """A config as plain JSON-ready data (nested configs as dicts)."""
    return dataclasses.asdict(config)


@dataclass
class mLSTMLayerConfig:
    """The mLSTM layer (pre up-projection): `embedding_dim`, `bias`, `dropout`, `context_length` and
    `_num_blocks` are set by the enclosing stack config. `chunk_size` (ours) is the chunkwise
    kernel's chunk length."""
    conv1d_kernel_size: int = 4
    qkv_proj_blocksize: int = 4
    num_heads: int = 4
    proj_factor: float = 2.0
    embedding_dim: int = -1
    bias: bool = False
    dropout: float = 0.0
    context_length: int = -1
    round_proj_up_dim_up: bool = True
    round_proj_up_to_multiple_of: int = 64
    chunk_size: int = 64
    _num_blocks: int = 1
    _proj_up_dim: Optional[int] = None
    _inner_embedding_dim: Optional[int] = None

    def __post_init__(self):
        if self.conv1d_kernel_size < 1:
            raise ValueError(f"mLSTMLayerConfig.conv1d_kernel_size must be >= 1, got {self.conv1d_kernel_size}")
        if not self.round_proj_up_dim_up or self.round_proj_up_to_multiple_of != 64:
            raise ValueError("mLSTMLayerConfig: the inner width is rounded up to a multiple of 64 here "
                             "(round_proj_up_dim_up=True, round_proj_up_to_multiple_of=64)")
        if self.chunk_size < 1:
            raise ValueError(f"mLSTMLayerConfig.chunk_size must be positive, got {self.chunk_size}")
        if self.embedding_dim > 0:
            self._proj_up_dim = proj_up_dim(self.proj_factor, self.embedding_dim, True, 64)
            self._inner_embedding_dim = self._proj_up_dim


@dataclass
class sLSTMLayerConfig:
    """The sLSTM layer; `embedding_dim`, `dropout`, `_block_idx` and `_num_blocks` are set by the
    enclosing configs (the forget-gate bias depends on the block's position)."""
    hidden_size: int = -1
    num_heads: int = 4
    num_states: int = 4
    backend: str = "cuda"
    function: str = "slstm"
    bias_init: str = "powerlaw_blockdependent"
    recurrent_weight_init: str = "zeros"
    _block_idx: int = 0
    _num_blocks: int = 1
    num_gates: int = 4
    gradient_recurrent_cut: bool = False
    gradient_recurrent_clipval: Optional[float] = None
    forward_clipval: Optional[float] = None
    batch_size: int = 8
    input_shape: str = "BSGNH"
    internal_input_shape: str = "SBNGH"
    output_shape: str = "BNSH"
    constants: dict = field(default_factory=dict)
    dtype: str = "bfloat16"
    dtype_b: Optional[str] = "float32"
    dtype_r: Optional[str] = None
    dtype_w: Optional[str] = None
    dtype_g: Optional[str] = None
    dtype_s: Optional[str] = None
    dtype_a: Optional[str] = None
    enable_automatic_mixed_precision: bool = True
    initial_val: Union[float, Sequence[float]] = 0.0
    embedding_dim: int = -1
    conv1d_kernel_size: int = 4
    group_norm_weight: bool = True
    dropout: float = 0.0

    BIAS_INITS = ("powerlaw_blockdependent", "small_init", "standard", "zeros")
    RECURRENT_WEIGHT_INITS = ("zeros", "standard")

    def __post_init__(self):
        self.hidden_size = self.embedding_dim
        if self.num_heads <= 0:
            self.num_heads = 1  # as the reference
        unsupported = {
            "function": (self.function, "slstm"), "num_states": (self.num_states, 4), "num_gates": (self.num_gates, 4),
            "gradient_recurrent_cut": (self.gradient_recurrent_cut, False),
            "gradient_recurrent_clipval": (self.gradient_recurrent_clipval, None),
            "forward_clipval": (self.forward_clipval, None), "group_norm_weight": (self.group_norm_weight, True),
        }
        for name, (value, supported) in unsupported.items():
            if value != supported:
                raise ValueError(f"sLSTMLayerConfig.{name}={value!r} is not implemented here (only {supported!r})")
        if any(v != 0 for v in (self.initial_val if isinstance(self.initial_val, (list, tuple)) else [self.initial_val])):
            raise ValueError(f"sLSTMLayerConfig.initial_val={self.initial_val!r}: only a zero initial state is implemented")
        if self.bias_init not in self.BIAS_INITS:
            raise ValueError(f"sLSTMLayerConfig.bias_init={self.bias_init!r} is not one of {self.BIAS_INITS}")
        if self.recurrent_weight_init not in self.RECURRENT_WEIGHT_INITS:
            raise ValueError(f"sLSTMLayerConfig.recurrent_weight_init={self.recurrent_weight_init!r} is not one of "
                             f"{self.RECURRENT_WEIGHT_INITS}")
        if self.conv1d_kernel_size < 0:
            raise ValueError(f"sLSTMLayerConfig.conv1d_kernel_size must be >= 0, got {self.conv1d_kernel_size}")


@dataclass
class FeedForwardConfig:
    """The gated feed-forward of the sLSTM block (proj factor 1.3, rounded up to a multiple of 64)."""
    proj_factor: float = 1.3
    act_fn: str = "gelu"
    embedding_dim: int = -1
    dropout: float = 0.0
    bias: bool = False
    ff_type: str = "ffn_gated"
    round_proj_up_dim_up: bool = True
    round_proj_up_to_multiple_of: int = 64
    _num_blocks: int = 1
    _proj_up_dim: Optional[int] = None

    def __post_init__(self):
        if self.act_fn not in ACTIVATIONS:
            raise ValueError(f"FeedForwardConfig.act_fn={self.act_fn!r} is not one of {sorted(ACTIVATIONS)}")
        if self.ff_type != "ffn_gated":
            raise ValueError(f"FeedForwardConfig.ff_type={self.ff_type!r}: only 'ffn_gated' exists")
        if self.round_proj_up_to_multiple_of < 1:
            raise ValueError("FeedForwardConfig.round_proj_up_to_multiple_of must be positive")
        if self.embedding_dim > 0:
            self._proj_up_dim = proj_up_dim(self.proj_factor, self.embedding_dim, self.round_proj_up_dim_up,
                                            self.round_proj_up_to_multiple_of)


@dataclass
class mLSTMBlockConfig:
    """A pre-LayerNorm residual block around an mLSTM layer."""
    mlstm: mLSTMLayerConfig = field(default_factory=mLSTMLayerConfig)
    _num_blocks: Optional[int] = None
    _block_idx: Optional[int] = None

    _nested_configs = {"mlstm": mLSTMLayerConfig}

    def __post_init__(self):
        self.mlstm = config_from(mLSTMLayerConfig, self.mlstm, "mLSTMBlockConfig.mlstm")
        if self._num_blocks is not None:
            self.mlstm._num_blocks = self._num_blocks
        self.mlstm.__post_init__()


@dataclass
class sLSTMBlockConfig:
    """A pre-LayerNorm residual block around an sLSTM layer, then (unless feedforward is None) a
    pre-LayerNorm residual gated feed-forward."""
    slstm: sLSTMLayerConfig = field(default_factory=sLSTMLayerConfig)
    feedforward: Optional[FeedForwardConfig] = field(default_factory=FeedForwardConfig)
    _num_blocks: Optional[int] = None
    _block_idx: Optional[int] = None

    _nested_configs = {"slstm": sLSTMLayerConfig, "feedforward": FeedForwardConfig}

    def __post_init__(self):
        self.slstm = config_from(sLSTMLayerConfig, self.slstm, "sLSTMBlockConfig.slstm")
        if self._num_blocks is not None:
            self.slstm._num_blocks = self._num_blocks
        if self._block_idx is not None:
            self.slstm._block_idx = self._block_idx
        self.slstm.__post_init__()
        if self.feedforward is not None:
            self.feedforward = config_from(FeedForwardConfig, self.feedforward, "sLSTMBlockConfig.feedforward")
            self.feedforward.embedding_dim = self.slstm.embedding_dim
            if self._num_blocks is not None:
                self.feedforward._num_blocks = self._num_blocks
            self.feedforward.__post_init__()
