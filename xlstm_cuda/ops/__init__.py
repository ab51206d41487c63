"""The kernels as differentiable functions, with the signatures of `xlstm_cuda.reference`.

Each op is a `torch.ops.xlstm_cuda.<name>` custom op (C++ / CUDA, `csrc/ops/<name>/`). Its module
in this package declares the public function, the fake (meta) implementation that `torch.compile`
traces and the autograd formula that calls the `<name>_backward` op (`_binder.kernel_op`); every
module here is imported, and `KernelOps` binds what they declare, so adding an op lists it nowhere.
"""
from __future__ import annotations

import importlib
import pkgutil

from .. import _C  # noqa: F401  (registers the xlstm_cuda ops)
from ._binder import OP_SPECS, KernelOps
from ._states import MlstmState, SlstmState

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

_kernels = KernelOps("xlstm_cuda")
globals().update(_kernels.functions())

__all__ = sorted(["KernelOps", "MlstmState", "SlstmState", *OP_SPECS])
