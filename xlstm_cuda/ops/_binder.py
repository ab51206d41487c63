"""The declarative binder between the C++ ops and their Python functions.

An op module of this package declares, for one op, its public function, its fake (meta)
implementation and how its autograd formula maps onto the `<name>_backward` op, with
`@kernel_op(...)`. `KernelOps(namespace)` then registers every declared op in one namespace
(`xlstm_cuda`, the kernels; `xlstm_cuda_sim`, the CUDA kernels in the host emulation) and binds the
public functions to it. Nothing lists the ops: declaring one is enough.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class Autograd:
    """How an op's backward op is called: backward(grads of the first `grad_outputs` outputs,
    the saved inputs, the saved outputs, the constant inputs[, the input mask]), returning one
    gradient for each of the first `differentiable_inputs` inputs. The other outputs are not
    differentiable; an output gradient autograd leaves undefined is passed as zeros."""

    backward: str
    differentiable_inputs: int
    grad_outputs: int = 1
    saved_inputs: tuple[int, ...] | None = None  # default: the differentiable inputs
    saved_outputs: tuple[int, ...] = ()
    constants: tuple[int, ...] = ()
    # The backward op takes, last, which differentiable inputs need a gradient (bool[n]) and
    # computes only those (the others come back empty and are dropped).
    input_mask: bool = False


@dataclass(frozen=True)
class OpSpec:
    name: str  # the forward op, torch.ops.<namespace>.<name>
    public: Callable  # public(op, *args): the documented function, given the bound forward op
    fake: Callable
    autograd: Autograd | None = None
    backward_fake: Callable | None = None


OP_SPECS: dict[str, OpSpec] = {}
# Inference fast paths with CPU kernels only and no autograd formula (the layers' fused generation
# steps): outside the contract table, which every op of OP_SPECS keeps on every backend; their own
# tests are tests/layers/test_layer_step_ops.py.
INFERENCE_OP_SPECS: dict[str, OpSpec] = {}


def kernel_op(name: str, *, fake: Callable, autograd: Autograd | None = None,
              backward_fake: Callable | None = None, registry: dict[str, OpSpec] = OP_SPECS):
    """Declares the decorated function as the public function of op `name` (it takes the bound op
    first), in `registry` (the package's ops: OP_SPECS). The public name is the function's name."""

    def declare(public: Callable) -> Callable:
        if public.__name__ in registry:
            raise RuntimeError(f"op function {public.__name__} is declared twice")
        registry[public.__name__] = OpSpec(name, public, fake, autograd, backward_fake)
        return public

    return declare


def contiguous_like(*tensors: torch.Tensor):
    """Fake outputs shaped and typed like the given tensors, contiguous as the kernels return them
    (torch.empty_like would keep a strided input's strides, which compiled code then asserts)."""
    outputs = tuple(t.new_empty(t.shape) for t in tensors)
    return outputs[0] if len(outputs) == 1 else outputs


def grads_like(*indices: int) -> Callable:
    """A backward fake returning contiguous tensors like the backward op's arguments `indices`."""
    return lambda *args: contiguous_like(*(args[j] for j in indices))


def check_one_device(op: str, *tensors: torch.Tensor) -> None:
    """The C++ entry points check this too; fake (meta) calls reach only this check."""
    devices = sorted({str(t.device) for t in tensors})
    if len(devices) > 1:
        raise RuntimeError(f"{op}: all tensors must be on one device, got {', '.join(devices)}")


def _register_autograd(qualname: str, spec: Autograd, backward_op) -> None:
    saved_inputs = spec.saved_inputs if spec.saved_inputs is not None else tuple(range(spec.differentiable_inputs))

    def setup_context(ctx, inputs, output):
        outputs = output if isinstance(output, tuple) else (output,)
        ctx.save_for_backward(*(inputs[j] for j in saved_inputs), *(outputs[j] for j in spec.saved_outputs))
        ctx.constants = tuple(inputs[j] for j in spec.constants)
        ctx.input_count = len(inputs)
        ctx.grad_output_meta = [(o.shape, o.dtype, o.device) for o in outputs[:spec.grad_outputs]]
        if len(outputs) > spec.grad_outputs:
            ctx.mark_non_differentiable(*outputs[spec.grad_outputs:])
        # Undefined output gradients stay None until needed: autograd would otherwise allocate a
        # zero gradient for every output, the non-differentiable saved ones included.
        ctx.set_materialize_grads(False)

    def backward(ctx, *grads):
        needed = ctx.needs_input_grad[:spec.differentiable_inputs]
        unused = (None,) * (ctx.input_count - spec.differentiable_inputs)
        if not any(needed):
            return (None,) * spec.differentiable_inputs + unused
        grads = [g if g is not None else torch.zeros(shape, dtype=dtype, device=device)
                 for g, (shape, dtype, device) in zip(grads, ctx.grad_output_meta)]
        mask = (list(needed),) if spec.input_mask else ()
        results = backward_op(*grads, *ctx.saved_tensors, *ctx.constants, *mask)
        results = results if isinstance(results, tuple) else (results,)
        return tuple(r if need else None for r, need in zip(results, needed)) + unused

    torch.library.register_autograd(qualname, backward, setup_context=setup_context)


class KernelOps:
    """The public op functions bound to one op namespace: `xlstm_cuda` (the kernels) or
    `xlstm_cuda_sim` (the CUDA kernels run by the host emulation, see xlstm_cuda.sim). Each declared
    op's function is an attribute, e.g. `KernelOps("xlstm_cuda").mlstm_step`."""

    def __init__(self, namespace: str, specs: dict[str, OpSpec] = OP_SPECS):
        """Registers and binds the ops declared in `specs` (by default the package's)."""
        self.namespace = namespace
        ops = getattr(torch.ops, namespace)
        self._functions = {}
        for public_name, spec in specs.items():
            torch.library.register_fake(f"{namespace}::{spec.name}")(spec.fake)
            if spec.autograd is not None:
                if spec.backward_fake is not None:
                    torch.library.register_fake(f"{namespace}::{spec.autograd.backward}")(spec.backward_fake)
                _register_autograd(f"{namespace}::{spec.name}", spec.autograd, getattr(ops, spec.autograd.backward))
            self._functions[public_name] = _bind(spec.public, getattr(ops, spec.name))
        self.__dict__.update(self._functions)

    def functions(self) -> dict[str, Callable]:
        """The bound public functions by name."""
        return dict(self._functions)


def _bind(public: Callable, op) -> Callable:
    """public with its first argument (the op) bound, keeping its name, docstring and signature."""

    @functools.wraps(public)
    def bound(*args, **kwargs):
        return public(op, *args, **kwargs)

    signature = inspect.signature(public)
    bound.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])
    return bound
