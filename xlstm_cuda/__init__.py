"""xlstm_cuda: fused CUDA and CPU kernels for xLSTM (sLSTM, mLSTM) as torch ops and nn modules."""
from __future__ import annotations

from importlib import metadata

import torch  # loads libtorch, which _C links against

try:
    from . import _C
except ImportError as error:  # pragma: no cover - only on a broken install
    raise ImportError(
        "xlstm_cuda's compiled extension is missing or does not load "
        f"({error}). Build it with: pip install --no-build-isolation ."
    ) from error

from . import layers, ops
from .layers import mLSTMCell, mLSTMLayer, sLSTMCell, sLSTMLayer
from .ops import mlstm_chunkwise, mlstm_step, slstm
from . import blocks, components, models
from .models import (BlockState, FeedForwardConfig, mLSTMBlock, mLSTMBlockConfig, mLSTMLayerConfig, sLSTMBlock,
                     sLSTMBlockConfig, sLSTMLayerConfig, xLSTMBlockStack, xLSTMBlockStackConfig, xLSTMLMModel,
                     xLSTMLMModelConfig, xLSTMState)

__all__ = ["build_info", "layers", "mLSTMCell", "mLSTMLayer", "mlstm_chunkwise", "mlstm_step", "ops",
           "sLSTMCell", "sLSTMLayer", "slstm"]
__all__ += ["BlockState", "FeedForwardConfig", "blocks", "components", "mLSTMBlock", "mLSTMBlockConfig",
            "mLSTMLayerConfig", "models", "sLSTMBlock", "sLSTMBlockConfig", "sLSTMLayerConfig", "xLSTMBlockStack",
            "xLSTMBlockStackConfig", "xLSTMLMModel", "xLSTMLMModelConfig", "xLSTMState"]

try:
    __version__ = metadata.version("xlstm_cuda")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"


def _registered_ops(namespace: str) -> list[str]:
    return sorted(name for name in dir(getattr(torch.ops, namespace))
                  if isinstance(getattr(getattr(torch.ops, namespace), name), torch._ops.OpOverloadPacket))


def build_info() -> dict:
    """What this install was built with: version, torch, CUDA kernels and architectures, ops."""
    info = dict(_C.build_info())
    info.update(version=__version__, torch_runtime=torch.__version__, ops=_registered_ops("xlstm_cuda"),
                cpu_kernels=True, cuda_available=torch.cuda.is_available())
    try:
        from .sim import _sim
    except ImportError as error:
        info["emulation"] = f"not loaded: {error}"
    else:
        info["emulation"] = dict(_sim.build_info())
    return info
