"""The model tier: xLSTMBlockStack, xLSTMLMModel, their configs and their state; xLSTMLarge (the xLSTM 7B
architecture), its config and its state."""
from ..blocks import (BlockState, FeedForwardConfig, mLSTMBlock, mLSTMBlockConfig, mLSTMLayerConfig, sLSTMBlock,
                      sLSTMBlockConfig, sLSTMLayerConfig)
from .config import xLSTMBlockStackConfig, xLSTMLMModelConfig
from .generation import sample_next
from .lm import xLSTMLMModel
from .stack import xLSTMBlockStack
from .state import xLSTMState
from .xlstm_large import xLSTMLarge, xLSTMLargeConfig, xLSTMLargeState

__all__ = ["BlockState", "FeedForwardConfig", "mLSTMBlock", "mLSTMBlockConfig", "mLSTMLayerConfig", "sLSTMBlock",
           "sLSTMBlockConfig", "sLSTMLayerConfig", "sample_next", "xLSTMBlockStack", "xLSTMBlockStackConfig",
           "xLSTMLMModel", "xLSTMLMModelConfig", "xLSTMLarge", "xLSTMLargeConfig", "xLSTMLargeState", "xLSTMState"]
