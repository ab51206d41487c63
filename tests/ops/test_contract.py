"""The contract every op keeps (contracts.py: one entry per op), checked for every entry on each of
its backends. The ops' numerics (shapes, dtypes, states, extremes) are in the per-op test files."""
import re

import pytest
import torch

from conftest import BACKENDS, assert_all_close, generator, randn
from contracts import CONTRACTS, all_outputs
from xlstm_cuda.ops._binder import OP_SPECS

LOW_PRECISION = [torch.bfloat16, torch.float16]
TORCH_DEVICE_ERROR = "is not on the expected device|Expected all tensors to be on the same device|one device|must be on"


def params(contracts=CONTRACTS, backends=lambda c: c.backends, extra=lambda c: [()]):
    """(contract, *extra, backend) for each contract, each of its extra values and backends."""
    return [pytest.param(c, *more, b, id="-".join(map(str, (c, *more, b))))
            for c in contracts for more in extra(c) for b in backends(c)]


def with_weights(contracts=CONTRACTS):
    return [c for c in contracts if c.weights]


def call_function(contract, backend, call):
    return contract.function(backend)(*call.args, **call.kwargs)


def grad_leaves(contract, call, needed=None):
    """call with fresh leaf tensors (strides kept), requiring grad where `needed` (default: where differentiable)."""
    needed = contract.differentiable() if needed is None else needed
    tensors = [t.detach().requires_grad_(bool(n)) for t, n in zip(call.tensors(), needed)]
    return call.with_tensors(tensors), tensors


def upstream_for(gen, outputs):
    return [randn(gen, *o.shape, dtype=o.dtype, device=o.device) for o in outputs]


def weighted_sum(outputs, upstream):
    return sum((o * u).sum() for o, u in zip(outputs, upstream))


def same_values(backend) -> dict:
    """assert_close tolerances for two runs of one kernel: bit for bit on the CPU (the kernels and
    the emulation sum in a fixed order); to rounding on a GPU, whose reductions may use atomics."""
    return dict(rtol=0, atol=0) if backend.device == "cpu" else dict(rtol=1e-5, atol=1e-6)


def error_pattern(contract, message):
    """The error names the op (its public name or its torch op's) first, then the argument."""
    names = "|".join(re.escape(n) for n in (contract.name, *contract.error_names))
    return rf"^({names}): .*{message}"


def assert_matches_reference(contract, backend, call, gen):
    """The op's outputs and gradients against the reference in float64 and in the output's dtype
    (every input converted to it), at the spec's bounds (conftest.assert_close)."""
    diff = contract.differentiable()
    grad_call, tensors = grad_leaves(contract, call)
    wanted = [t for t, d in zip(tensors, diff) if d]
    out = call_function(contract, backend, grad_call)
    upstream = upstream_for(gen, contract.grad_outputs(out))
    grads = torch.autograd.grad(contract.grad_outputs(out), wanted, upstream)
    dtype = all_outputs(out)[0].dtype
    refs = {}
    for ref_dtype in (torch.float64, dtype):
        ref_call, ref_tensors = grad_leaves(contract, call.with_tensors([t.cpu().to(ref_dtype) for t in tensors]))
        ref_out = contract.reference_function()(*ref_call.args, **ref_call.kwargs)
        ref_grads = torch.autograd.grad(contract.grad_outputs(ref_out), [t for t, d in zip(ref_tensors, diff) if d],
                                        [u.cpu().to(ref_dtype) for u in upstream])
        refs[ref_dtype] = all_outputs(ref_out), ref_grads
    outputs = all_outputs(out)
    assert_all_close([f"output {j}" for j in range(len(outputs))], outputs, refs[torch.float64][0], refs[dtype][0])
    assert_all_close([n for n, d in zip(contract.input_names, diff) if d], grads, refs[torch.float64][1],
                     refs[dtype][1], grad=True)


def test_table_covers_every_declared_op():
    """A new op without an entry fails here; an entry for a fixture op brings its own spec."""
    assert sorted(c.name for c in CONTRACTS if c.spec is None) == sorted(OP_SPECS)
    assert len({c.name for c in CONTRACTS}) == len(CONTRACTS)


def test_table_covers_every_backend():
    """Every op runs its contract on the CPU kernels, the emulated CUDA kernels and, where there
    is a GPU, the CUDA kernels: all of conftest.BACKENDS."""
    for contract in CONTRACTS:
        assert {b.name for b in BACKENDS} <= {b.name for b in contract.backends}, contract.name
        assert contract.float64_backends(), contract.name


@pytest.mark.parametrize("contract, case, backend",
                         params(extra=lambda c: [(case,) for case in c.bad_calls("cpu")]))
def test_bad_input_raises_clear_error(contract, case, backend):
    # Rebuilt on the backend's device; the description picks the case.
    (case,) = [bad for bad in contract.bad_calls(backend.device) if bad.description == case.description]
    with pytest.raises((RuntimeError, TypeError), match=error_pattern(contract, case.message)):
        call_function(contract, backend, case.call)


@pytest.mark.parametrize("contract, backend", params())
def test_mixed_devices_raise_clear_error(contract, backend):
    """Any one input on another device is refused: on meta by the fake implementation's check,
    reached before the kernel's, which names the op."""
    gen = generator("mixed-devices", contract.name, backend.name)
    call = contract.make(gen, backend.device, torch.float32, None, "plain")
    tensors = call.tensors()
    # Another real device, where there is one, reaches the kernels' own check instead.
    others = ["meta"] + (["cuda"] if backend.device == "cpu" and torch.cuda.is_available() else
                         ["cpu"] if backend.device != "cpu" else [])
    for other in others:
        for j, name in enumerate(contract.input_names):
            moved = [t.to(other) if k == j else t for k, t in enumerate(tensors)]
            if name in contract.devices_checked_by_torch:
                pattern = TORCH_DEVICE_ERROR
            elif other == "meta":
                pattern = error_pattern(contract, "one device")
            else:
                pattern = "one device|must be on"
            with pytest.raises(RuntimeError, match=pattern):
                call_function(contract, backend, call.with_tensors(moved))
                pytest.fail(f"{name} on {other} was accepted")


@pytest.mark.parametrize("contract, variant, backend", params(extra=lambda c: [(v,) for v in c.variants]))
def test_opcheck(contract, variant, backend):
    """torch.library.opcheck of the forward op on the arguments the public function passes it, and
    of the backward op on what the autograd formula passes it (_binder.Autograd)."""
    gen = generator("opcheck", contract.name, variant, backend.name)
    spec = contract.op_spec()
    ops = getattr(torch.ops, backend.ops.namespace)
    forward = getattr(ops, spec.name)
    recorded = []

    def recorder(*args):
        recorded.append(args)
        return forward(*args)

    # Inputs requiring grad, so that the public function asks for what a backward needs (sLSTM's trace).
    grad_call, _ = grad_leaves(contract, contract.make(gen, backend.device, torch.float32, None, variant))
    spec.public(recorder, *grad_call.args, **grad_call.kwargs)
    (args,) = recorded
    # With the schema's defaults filled in, as the autograd formula sees the inputs.
    args = (*args, *(a.default_value for a in forward.default._schema.arguments[len(args):]))
    differentiable = spec.autograd.differentiable_inputs if spec.autograd else 0
    args = tuple(a.detach().requires_grad_(j < differentiable) if isinstance(a, torch.Tensor) else a
                 for j, a in enumerate(args))
    torch.library.opcheck(forward.default, args)
    if spec.autograd is None:
        return
    autograd = spec.autograd
    outs = forward(*(a.detach() if isinstance(a, torch.Tensor) else a for a in args))
    outs = outs if isinstance(outs, tuple) else (outs,)
    saved = autograd.saved_inputs if autograd.saved_inputs is not None else range(differentiable)
    backward_args = (*upstream_for(gen, outs[:autograd.grad_outputs]), *(args[j].detach() for j in saved),
                     *(outs[j] for j in autograd.saved_outputs), *(args[j] for j in autograd.constants))
    # An op that computes only the gradients asked for takes that mask last: every other one asked for.
    masks = [[j % 2 == 0 for j in range(differentiable)]] if autograd.input_mask else [[]]
    for mask in masks:
        torch.library.opcheck(getattr(ops, autograd.backward).default, backward_args + ((mask,) if mask else ()))


@pytest.mark.parametrize("contract, backend", params())
def test_compile_fullgraph_equals_eager(contract, backend):
    """torch.compile(fullgraph=True) traces the op (fake implementation, autograd formula) between
    other ops, forward and backward, and computes what eager mode does."""
    gen = generator("compile", contract.name, backend.name)
    call = contract.make(gen, backend.device, torch.float32, None, "plain")
    upstream = upstream_for(gen, contract.grad_outputs(call_function(contract, backend, call)))
    diff = contract.differentiable()

    def loss(*tensors):
        tensors = [tensors[0] * 2.0, *tensors[1:]]  # the op's input computed in the graph, as in a model
        out = call_function(contract, backend, call.with_tensors(tensors))
        return weighted_sum(contract.grad_outputs(out), upstream), *all_outputs(out)

    torch._dynamo.reset()  # one code object compiled for every entry: stay under the recompile limit
    results = []
    for fn in (loss, torch.compile(loss, fullgraph=True, backend="aot_eager")):
        _, tensors = grad_leaves(contract, call)
        total, *outputs = fn(*tensors)
        total.backward()
        results.append((outputs, [t.grad for t, d in zip(tensors, diff) if d]))
    (eager_outputs, eager_grads), (compiled_outputs, compiled_grads) = results
    torch.testing.assert_close(compiled_outputs, eager_outputs)
    torch.testing.assert_close(compiled_grads, eager_grads)


@pytest.mark.parametrize("contract, backend", params(backends=lambda c: c.float64_backends()))
def test_gradcheck_float64(contract, backend):
    gen = generator("gradcheck", contract.name, backend.name)
    call = contract.make(gen, backend.device, torch.float64, None, "plain")
    diff = contract.differentiable()
    grad_call, tensors = grad_leaves(contract, call)
    outputs = contract.gradcheck_outputs or contract.grad_outputs

    def fn(*wanted):
        replacements = iter(wanted)
        out = call_function(contract, backend, grad_call.with_tensors(
            [next(replacements) if d else t for t, d in zip(tensors, diff)]))
        return tuple(outputs(out))

    assert torch.autograd.gradcheck(fn, [t for t, d in zip(tensors, diff) if d])


@pytest.mark.parametrize("contract, dtype, backend",
                         params(with_weights(), extra=lambda c: [(d,) for d in LOW_PRECISION]))
def test_float32_weights_with_low_precision_inputs(contract, dtype, backend):
    gen = generator("float32-weights", contract.name, dtype, backend.name)
    call = contract.make(gen, backend.device, dtype, torch.float32, "plain")
    tensors = dict(zip(contract.input_names, call.tensors()))
    assert tensors[contract.input_names[0]].dtype == dtype
    assert all(tensors[name].dtype == torch.float32 for name in contract.weights)
    assert_matches_reference(contract, backend, call, gen)


@pytest.mark.parametrize("contract, backend", params())
def test_strided_inputs_equal_contiguous(contract, backend):
    """The views the layers pass (contracts.py, variant "strided") are read through their strides:
    outputs and gradients bit for bit those of contiguous copies, and the reference's."""
    gen = generator("strided", contract.name, backend.name)
    call = contract.make(gen, backend.device, torch.float32, None, "strided")
    assert not all(t.is_contiguous() for t in call.tensors())
    contiguous = call.with_tensors([t.contiguous() for t in call.tensors()])
    upstream = None
    results = []
    for variant in (call, contiguous):
        grad_call, tensors = grad_leaves(contract, variant)
        out = call_function(contract, backend, grad_call)
        upstream = upstream or upstream_for(gen, contract.grad_outputs(out))
        weighted_sum(contract.grad_outputs(out), upstream).backward()
        results.append(([o.detach() for o in all_outputs(out)], [t.grad for t in tensors if t.requires_grad]))
    (strided_outputs, strided_grads), (contiguous_outputs, contiguous_grads) = results
    torch.testing.assert_close(strided_outputs, contiguous_outputs, **same_values(backend))
    torch.testing.assert_close(strided_grads, contiguous_grads, **same_values(backend))
    assert_matches_reference(contract, backend, call, gen)


@pytest.mark.parametrize("contract, backend", params())
def test_backward_computes_only_requested_gradients(contract, backend):
    """With only some inputs requiring grad, those get the full backward's gradients and the
    others none (the autograd formula honours ctx.needs_input_grad)."""
    gen = generator("needs-input-grad", contract.name, backend.name)
    call = contract.make(gen, backend.device, torch.float32, None, "plain")
    diff = [j for j, d in enumerate(contract.differentiable()) if d]

    def gradients(needed):
        grad_call, tensors = grad_leaves(contract, call, [j in needed for j in range(len(contract.input_names))])
        out = call_function(contract, backend, grad_call)
        weighted_sum(contract.grad_outputs(out), upstream).backward()
        return [t.grad for t in tensors]

    upstream = upstream_for(gen, contract.grad_outputs(call_function(contract, backend, call)))
    full = gradients(diff)
    # Every input both asked for and not: each half alone, and the first and the last alone.
    for needed in [diff[::2], diff[1::2], diff[:1], diff[-1:]]:
        got = gradients(needed)
        for j in diff:
            name = contract.input_names[j]
            if j in needed:
                torch.testing.assert_close(got[j], full[j], **same_values(backend), msg=f"grad {name} given {needed}")
            else:
                assert got[j] is None, f"{name} got a gradient it did not ask for (given {needed})"

