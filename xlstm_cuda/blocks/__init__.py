"""xLSTM blocks: pre-LayerNorm residual mLSTM and sLSTM blocks (the sLSTM block with its gated
feed-forward), and their configs."""
from .state import BlockState
from .config import FeedForwardConfig, mLSTMBlockConfig, mLSTMLayerConfig, sLSTMBlockConfig, sLSTMLayerConfig
from .mlstm_block import mLSTMBlock
from .slstm_block import sLSTMBlock

__all__ = ["BlockState", "FeedForwardConfig", "mLSTMBlock", "mLSTMBlockConfig", "mLSTMLayerConfig", "sLSTMBlock",
           "sLSTMBlockConfig", "sLSTMLayerConfig"]
