"""The kernels as differentiable functions, with the signatures of `xlstm_cuda.reference`.

Each op is a `torch.ops.xlstm_cuda.<name>` custom op (C++ / CUDA, `csrc/ops/<name>/`). Its module
in this package declares the public function, the fake (meta) implementation that `torch.compile`
traces and the autograd formula that calls the `<name>_backward` op (`_binder.kernel_op`); every
module here is imported, and `KernelOps` binds what they declare, so adding an op lists it nowhere.
"""
import importlib as _importlib
import pkgutil as _pkgutil

from .. import _C  # noqa: F401  (registers the xlstm_cuda ops)
from ._binder import INFERENCE_OP_SPECS as _INFERENCE_OP_SPECS
from ._binder import OP_SPECS as _OP_SPECS
from ._binder import KernelOps
from ._states import MlstmState, SlstmState

for _module in _pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        _importlib.import_module(f"{__name__}.{_module.name}")

_kernels = KernelOps("xlstm_cuda")
globals().update(_kernels.functions())
globals().update(KernelOps("xlstm_cuda", _INFERENCE_OP_SPECS).functions())

__all__ = sorted(["KernelOps", "MlstmState", "SlstmState", *_OP_SPECS, *_INFERENCE_OP_SPECS])
