"""Configs of the block stack and the language model, with the reference package's field names and
defaults (xlstm 2.0.6): `xLSTMLMModelConfig(**same_fields)`, `config_from(xLSTMLMModelConfig,
reference_config_or_dict)` and `xLSTMLMModelConfig.from_dict(d)` all build the same config."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from ..blocks.config import config_from, config_to_dict, mLSTMBlockConfig, sLSTMBlockConfig


@dataclass
class xLSTMBlockStackConfig:
    """Blocks in a residual stream: sLSTM blocks at the indices `slstm_at` ("all", or every index
    when `mlstm_block` is None), mLSTM blocks elsewhere. `embedding_dim`, `bias`, `dropout` and
    `context_length` are handed down to the block configs, as in the reference; `context_length`
    does not limit the sequence length here."""
    mlstm_block: Optional[mLSTMBlockConfig] = None
    slstm_block: Optional[sLSTMBlockConfig] = None
    context_length: int = -1
    num_blocks: int = 1
    embedding_dim: int = 128
    add_post_blocks_norm: bool = True
    bias: bool = False
    dropout: float = 0.0
    slstm_at: Union[list, str] = field(default_factory=list)
    _block_map: Optional[str] = None

    _nested_configs = {"mlstm_block": mLSTMBlockConfig, "slstm_block": sLSTMBlockConfig}

    @classmethod
    def from_dict(cls, data):
        """The config from a dict (a reference config's fields, a YAML file's contents) or a dataclass."""
        return config_from(cls, data)

    def to_dict(self) -> dict:
        """Plain data (json.dumps-able) that from_dict turns back into an equal config."""
        return config_to_dict(self)

    @property
    def block_map(self) -> list[int]:
        """Per block: 0 for mLSTM, 1 for sLSTM."""
        return list(map(int, self._block_map.split(",")))

    def __post_init__(self):
        if self.num_blocks < 1:
            raise ValueError(f"{type(self).__name__}.num_blocks must be >= 1, got {self.num_blocks}")
        if self.embedding_dim < 1:
            raise ValueError(f"{type(self).__name__}.embedding_dim must be >= 1, got {self.embedding_dim}")
        if self.mlstm_block is None and self.slstm_block is None:
            raise ValueError(f"{type(self).__name__}: give mlstm_block, slstm_block or both")
        if self.mlstm_block is None:
            self.slstm_at = "all"
        if self.slstm_at == "all":
            self.slstm_at = list(range(self.num_blocks))
        if isinstance(self.slstm_at, str) or any(not isinstance(i, int) for i in self.slstm_at):
            raise ValueError(f"{type(self).__name__}.slstm_at must be 'all' or a list of block indices, "
                             f"got {self.slstm_at!r}")
        self.slstm_at = list(self.slstm_at)
        bad = [i for i in self.slstm_at if not 0 <= i < self.num_blocks]
        if bad:
            raise ValueError(f"{type(self).__name__}.slstm_at: indices {bad} are not blocks of a stack of {self.num_blocks}")
        if self.slstm_at and self.slstm_block is None:
            raise ValueError(f"{type(self).__name__}.slstm_at={self.slstm_at} needs an slstm_block config")
        if self.mlstm_block is not None:
            self.mlstm_block = config_from(mLSTMBlockConfig, self.mlstm_block, "mlstm_block")
            layer = self.mlstm_block.mlstm
            layer.embedding_dim, layer.bias, layer.dropout = self.embedding_dim, self.bias, self.dropout
            layer.context_length = self.context_length
            self.mlstm_block._num_blocks = self.num_blocks
            self.mlstm_block.__post_init__()
        if self.slstm_block is not None:
            self.slstm_block = config_from(sLSTMBlockConfig, self.slstm_block, "slstm_block")
            layer = self.slstm_block.slstm
            layer.dropout, layer.embedding_dim = self.dropout, self.embedding_dim
            self.slstm_block._num_blocks = self.num_blocks
            self.slstm_block.__post_init__()
        block_map = ["1" if i in self.slstm_at else "0" for i in range(self.num_blocks)]
        self._block_map = ",".join(block_map)


@dataclass
class xLSTMLMModelConfig(xLSTMBlockStackConfig):
    """The language model: token embedding, the block stack, a linear head (no bias), optionally
    tied to the embedding. `weight_decay_on_embedding` decides the embedding's optimiser group."""
    vocab_size: int = -1
    tie_weights: bool = False
    weight_decay_on_embedding: bool = False
    add_embedding_dropout: bool = False

    def __post_init__(self):
        if self.vocab_size < 1:
            raise ValueError(f"xLSTMLMModelConfig.vocab_size must be >= 1, got {self.vocab_size}")
        super().__post_init__()
