"""fixture_scale: the test-only op's Python file, written as an op module of xlstm_cuda/ops/ is
(csrc/README.md, "Adding an op"), except that it declares into its own registry, FIXTURE_SPECS, so
that the package's list of ops (OP_SPECS) stays the package's."""
from __future__ import annotations

import torch

from xlstm_cuda.ops._binder import Autograd, OpSpec, check_one_device, grads_like, kernel_op

FIXTURE_SPECS: dict[str, OpSpec] = {}


def _fake(x, w):
    check_one_device("fixture_scale", x, w)
    return x.new_empty(x.shape)


@kernel_op("fixture_scale", fake=_fake, backward_fake=grads_like(1, 2),
           autograd=Autograd("fixture_scale_backward", differentiable_inputs=2), registry=FIXTURE_SPECS)
def fixture_scale(op, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x (N, D) scaled per feature by w (D): y = x w. w in float32 or x's dtype."""
    if x.dim() != 2:
        raise RuntimeError(f"fixture_scale: x must have shape [N, D], got {list(x.shape)}")
    return op(x, w)
