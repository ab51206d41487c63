"""xlstm_cuda: fused CUDA and CPU kernels for xLSTM (sLSTM, mLSTM) as torch ops and nn modules."""
from importlib import metadata as _metadata

import torch as _torch  # loads libtorch, which _C links against

from ._sanitizer import check_sanitizer_runtime as _check_sanitizer_runtime

_check_sanitizer_runtime("xlstm_cuda._C", "XLSTM_CPU_SANITIZE")
try:
    from . import _C
except ImportError as _error:  # pragma: no cover - only on a broken install
    raise ImportError(
        "xlstm_cuda's compiled extension is missing or does not load "
        f"({_error}). Build it with: pip install --no-build-isolation ."
    ) from _error

from . import blocks, components, layers, models, ops, reference
from .layers import mLSTMCell, mLSTMLayer, sLSTMCell, sLSTMLayer
from .models import (BlockState, FeedForwardConfig, mLSTMBlock, mLSTMBlockConfig, mLSTMLayerConfig, sLSTMBlock,
                     sLSTMBlockConfig, sLSTMLayerConfig, xLSTMBlockStack, xLSTMBlockStackConfig, xLSTMLMModel,
                     xLSTMLarge, xLSTMLargeConfig, xLSTMLMModelConfig, xLSTMState)
from .ops import mlstm_chunkwise, mlstm_step, slstm

__all__ = ["BlockState", "FeedForwardConfig", "blocks", "build_info", "components", "layers", "mLSTMBlock",
           "mLSTMBlockConfig", "mLSTMCell", "mLSTMLayer", "mLSTMLayerConfig", "mlstm_chunkwise", "mlstm_step", "models",
           "ops", "reference", "sLSTMBlock", "sLSTMBlockConfig", "sLSTMCell", "sLSTMLayer", "sLSTMLayerConfig", "slstm",
           "xLSTMBlockStack", "xLSTMBlockStackConfig", "xLSTMLMModel", "xLSTMLMModelConfig", "xLSTMLarge",
           "xLSTMLargeConfig", "xLSTMState"]

try:
    __version__ = _metadata.version("xlstm_cuda")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0+unknown"


def _registered_ops(namespace: str) -> list[str]:
    """The ops registered in torch.ops.<namespace>: the registry is the list."""
    packets = getattr(_torch.ops, namespace)
    return sorted(name for name in dir(packets) if isinstance(getattr(packets, name), _torch._ops.OpOverloadPacket))


def build_info() -> dict:
    """What this install was built with: version, torch, CUDA kernels and architectures, the
    registered ops (read from torch's op registry), and the emulation module if it was built."""
    info = dict(_C.build_info())
    info.update(version=__version__, torch_runtime=_torch.__version__, ops=_registered_ops("xlstm_cuda"),
                cpu_kernels=True, cuda_available=_torch.cuda.is_available())
    try:
        from .sim import _sim
    except ImportError as error:
        info["emulation"] = f"not loaded: {error}"
    else:
        info["emulation"] = dict(_sim.build_info())
    return info
