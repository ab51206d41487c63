"""The contract every op keeps, as one table: `CONTRACTS`, one `OpContract` per op.

test_contract.py runs every check over every entry and each backend the entry names: bad inputs
raise clear errors naming the op and the argument (mixed devices too); torch.library.opcheck of the
forward and backward ops; torch.compile(fullgraph=True) forward and backward equal eager; gradcheck
in float64 on the CPU kernels; float32 weights with bf16 / fp16 inputs against the reference;
strided inputs equal contiguous ones; a backward with only some inputs requiring grad gives those
the full backward's gradients and the others none (ctx.needs_input_grad honoured).

Adding an op (a fixture op, compiled from its own folder, included) is one entry:

    OpContract(
        name="my_op",                        # its public function: OP_SPECS key, KernelOps attribute
        input_names=("x", "weight"),         # the tensors of a call, in order (a state tuple flattened)
        make=make_my_op,                     # make(gen, device, dtype, weight_dtype, variant) -> Call
        bad_calls=my_op_bad_calls,           # device -> [BadCall(description, Call, message regex)]
        weights=("weight",),                 # inputs that may stay float32 under bf16 / fp16 inputs
        backends=MY_BACKENDS,                # a fixture op's own Backend list, if not conftest's
        spec=my_op_spec,                     # its OpSpec, if it is not declared in OP_SPECS
    )

`make` must honour every name in `variants` ("plain" and "strided" at least: "strided" returns
non-contiguous views as the layers pass them). The reference is `xlstm_cuda.reference.<name>`
unless `reference` says otherwise. test_contract.py also checks that the table and OP_SPECS list
the same ops, so an op without an entry fails.
"""
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

import fixture_op
from conftest import BACKENDS, randn
from inputs import chunkwise_inputs, conv_inputs, gate_inputs, headwise_inputs, slstm_inputs, step_inputs
from xlstm_cuda import reference as reference_module
from xlstm_cuda.ops._binder import OP_SPECS, OpSpec


@dataclass(frozen=True)
class Call:
    """The arguments of one call of a public op function."""
    args: tuple
    kwargs: dict = field(default_factory=dict)

    def tensors(self) -> list:
        """The tensors among the arguments (inside state tuples too), in order."""
        return [a for a in tree_flatten((self.args, self.kwargs))[0] if isinstance(a, torch.Tensor)]

    def with_tensors(self, tensors) -> "Call":
        """This call with its tensors replaced, in the order of tensors()."""
        flat, structure = tree_flatten((self.args, self.kwargs))
        replacements = iter(tensors)
        flat = [next(replacements) if isinstance(a, torch.Tensor) else a for a in flat]
        args, kwargs = tree_unflatten(flat, structure)
        return Call(tuple(args), kwargs)


@dataclass(frozen=True)
class BadCall:
    description: str
    call: Call
    message: str  # a regex the error must match after the op's name


def all_outputs(out) -> list:
    return [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]


@dataclass(frozen=True)
class OpContract:
    name: str
    input_names: tuple
    make: Callable  # make(gen, device, dtype, weight_dtype, variant) -> Call
    bad_calls: Callable  # bad_calls(device) -> list[BadCall]
    variants: tuple = ("plain", "strided")
    weights: tuple = ()
    constant_inputs: frozenset = frozenset()  # tensors that get no gradient by design
    grad_outputs: Callable = all_outputs  # out -> the outputs gradients flow back from
    gradcheck_outputs: Callable | None = None  # out -> what gradcheck differentiates (default grad_outputs)
    error_names: tuple = ()  # other names its errors may start with (slstm: the torch op, slstm_forward)
    # Inputs whose device a torch op in the public function checks first, with torch's message.
    devices_checked_by_torch: frozenset = frozenset()
    reference: Callable | None = None
    backends: tuple = tuple(BACKENDS)
    spec: OpSpec | None = None

    def __str__(self):
        return self.name

    def op_spec(self) -> OpSpec:
        return self.spec or OP_SPECS[self.name]

    def function(self, backend) -> Callable:
        return getattr(backend.ops, self.name)

    def reference_function(self) -> Callable:
        return self.reference or getattr(reference_module, self.name)

    def differentiable(self) -> list:
        return [name not in self.constant_inputs for name in self.input_names]

    def float64_backends(self) -> list:
        """float64 runs on the CPU kernels only."""
        return [b for b in self.backends if b.name == "cpu"]


# mlstm_step -------------------------------------------------------------------------------------

def make_mlstm_step(gen, device, dtype, weight_dtype=None, variant="plain"):
    B, NH, DQK, DV = (2, 3, 5, 4) if dtype == torch.float64 else (2, 3, 5, 7)  # float64: gradcheck's sizes
    if variant == "strided":
        # One fused projection per token, (B, NH, ...) with a last stride of NH, and C transposed.
        fused = randn(gen, B, 2 * DQK + DV + 2, NH, dtype=dtype, device=device).transpose(1, 2)
        q, k, v = fused[..., :DQK], fused[..., DQK:2 * DQK], fused[..., 2 * DQK:2 * DQK + DV]
        i, f = fused[..., -2], fused[..., -1]
        C = randn(gen, B, NH, DV, DQK, device=device).transpose(-1, -2)
        n, m = randn(gen, B, NH, DQK, device=device), randn(gen, B, NH, device=device)
        return Call((q, k, v, i, f, (C, n, m)))
    inputs, state = step_inputs(gen, B, NH, DQK, DV, dtype, device, True)
    return Call((*inputs, state))


def mlstm_step_bad_calls(device):
    B, NH, D = 2, 3, 4

    def call(**over):
        base = dict(q=torch.randn(B, NH, D), k=torch.randn(B, NH, D), v=torch.randn(B, NH, D + 1),
                    i=torch.randn(B, NH), f=torch.randn(B, NH),
                    state=(torch.zeros(B, NH, D, D + 1), torch.zeros(B, NH, D), torch.zeros(B, NH)))
        base.update(over)
        bad = Call((), base)
        return bad.with_tensors([t.to(device) for t in bad.tensors()])

    state = (torch.zeros(B, NH, D, D + 1), torch.zeros(B, NH, D), torch.zeros(B, NH))
    return [
        BadCall("q rank", call(q=torch.randn(B, NH, 1, D)), "q must have shape"),
        BadCall("k size", call(k=torch.randn(B, NH, D + 1)), "k must have shape"),
        BadCall("v batch", call(v=torch.randn(B + 1, NH, D + 1)), "v must have shape"),
        BadCall("i heads", call(i=torch.randn(B, NH + 1)), "i must have shape"),
        BadCall("f rank", call(f=torch.randn(B, NH, 1)), "f must have shape"),
        BadCall("int dtype", call(q=torch.ones(B, NH, D, dtype=torch.int32)), "q must be float32"),
        BadCall("mixed dtype", call(k=torch.randn(B, NH, D, dtype=torch.bfloat16)), "k must be"),
        BadCall("state dtype", call(state=(state[0].bfloat16(), *state[1:])), "state C must be Float"),
        BadCall("state shape", call(state=(state[0], torch.zeros(B, NH, D + 1), state[2])), "state n must have shape"),
        BadCall("empty", call(q=torch.randn(0, NH, D), k=torch.randn(0, NH, D), v=torch.randn(0, NH, D + 1),
                              i=torch.randn(0, NH), f=torch.randn(0, NH),
                              state=(torch.zeros(0, NH, D, D + 1), torch.zeros(0, NH, D), torch.zeros(0, NH))),
                "q is empty"),
        BadCall("state arity", call(state=state[:2]), "state must be a tuple"),
        BadCall("negative eps", call(eps=-1.0), "eps must be finite"),
    ]


# mlstm_chunkwise --------------------------------------------------------------------------------

def make_mlstm_chunkwise(gen, device, dtype, weight_dtype=None, variant="plain"):
    sizes = (1, 2, 7, 3, 4) if dtype == torch.float64 else (2, 2, 9, 4, 6)  # float64: gradcheck's sizes
    inputs, state = chunkwise_inputs(gen, *sizes, dtype, True, device)
    if variant == "strided":
        # The mLSTM layer's gate pre-activations: (B, S, NH) storage read as (B, NH, S).
        inputs[3:5] = [t.transpose(1, 2).contiguous().transpose(1, 2) for t in inputs[3:5]]
    return Call((*inputs, state), {"chunk_size": 3 if dtype == torch.float64 else 4})


def mlstm_chunkwise_bad_calls(device):
    q, k, v = (torch.randn(1, 2, 5, 4, device=device) for _ in range(3))
    i, f = (torch.randn(1, 2, 5, device=device) for _ in range(2))
    return [
        BadCall("k length", Call((q, k[:, :, :4], v, i, f)), "k must have shape"),
        BadCall("chunk size", Call((q, k, v, i, f), {"chunk_size": 0}), "chunk_size must be >= 1"),
        BadCall("f dtype", Call((q, k, v, i, f.double())), "f must be"),
        BadCall("q rank", Call((q[0], k, v, i, f)), "q must have shape"),
        BadCall("empty", Call(tuple(t[:, :, :0] for t in (q, k, v, i, f))), "S, DHQK and DHV must be >= 1"),
        BadCall("state arity", Call((q, k, v, i, f, (torch.zeros(1, 2, 4, 4, device=device),))),
                "initial_state must be a tuple"),
    ]


# slstm ------------------------------------------------------------------------------------------

def make_slstm(gen, device, dtype, weight_dtype=None, variant="plain"):
    x, R, b, state = slstm_inputs(gen, 2, 4, 2, 3 if dtype == torch.float64 else 8, dtype, device, True,
                                  weight_dtype)
    if variant == "strided":
        # sLSTMLayer hands the op a (B, S, NH, 4, DH) view of head-major storage.
        x = x.permute(2, 0, 1, 3, 4).contiguous().permute(1, 2, 0, 3, 4)
    return Call((x, R, b, state))


def slstm_bad_calls(device):
    B, S, NH, DH = 2, 3, 2, 4
    x, R, b = (torch.randn(B, S, NH, 4, DH, device=device), torch.randn(NH, DH, 4, DH, device=device),
               torch.randn(NH, 4, DH, device=device))
    state = tuple(torch.zeros(B, NH, DH, device=device) for _ in range(4))
    return [
        BadCall("x rank", Call((torch.randn(B, NH, 4, DH, device=device), R, b)), "x_gates must have shape"),
        BadCall("x gates", Call((torch.randn(B, S, NH, 3, DH, device=device), R, b)), "x_gates must have shape"),
        BadCall("R heads", Call((x, torch.randn(NH + 1, DH, 4, DH, device=device), b)), "R must have shape"),
        BadCall("R size", Call((x, torch.randn(NH, DH, 4, DH + 1, device=device), b)), "R must have shape"),
        BadCall("b size", Call((x, R, torch.randn(NH, 4, DH + 1, device=device))), "b must have shape"),
        BadCall("int dtype", Call((x.int(), R, b)), "x_gates must be float32"),
        BadCall("R dtype", Call((x, R.double(), b)), "R must be"),
        BadCall("b dtype", Call((x, R, b.half())), "b must be"),
        BadCall("state shape", Call((x, R, b, state[:3] + (torch.zeros(B, NH, DH + 1, device=device),))),
                "initial_state tensors"),
        BadCall("state arity", Call((x, R, b, state[:3])), "initial_state must be a tuple"),
        BadCall("state dtype", Call((x, R, b, tuple(s.double() for s in state))), "initial state must be Float"),
        BadCall("empty", Call((torch.randn(B, 0, NH, 4, DH, device=device), R, b)), "x_gates is empty"),
    ]


def slstm_unscaled(out):
    """c and n are stored stabilised (scaled by exp(-m), m a constant): gradcheck the unscaled values."""
    h, (h_T, c_T, n_T, m_T) = out
    return h, h_T, c_T * m_T.exp(), n_T * m_T.exp()


# causal_conv1d_silu -----------------------------------------------------------------------------

def make_causal_conv1d_silu(gen, device, dtype, weight_dtype=None, variant="plain"):
    x, weight, bias, initial = conv_inputs(gen, 2, 6, 10, 4, dtype, device, True, weight_dtype)
    if variant == "strided":
        # The mLSTM layer convolves one half of its up-projection: rows with a stride of 2 D.
        wide = randn(gen, 2, 6, 20, dtype=dtype, device=device)
        x = wide[..., :10]
    return Call((x, weight, bias, initial))


def causal_conv1d_silu_bad_calls(device):
    B, S, D, K = 2, 5, 6, 4
    x, w, b = torch.randn(B, S, D, device=device), torch.randn(D, K, device=device), torch.randn(D, device=device)
    init = torch.zeros(B, K - 1, D, device=device)
    return [
        BadCall("x rank", Call((torch.randn(S, D, device=device), w, b)), "x must have shape"),
        BadCall("weight rank", Call((x, torch.randn(D, 1, K, device=device), b)), "weight must have shape"),
        BadCall("weight channels", Call((x, torch.randn(D + 1, K, device=device), b)), "weight must have shape"),
        BadCall("bias size", Call((x, w, torch.randn(D + 1, device=device))), "bias must have shape"),
        BadCall("initial length", Call((x, w, b, torch.zeros(B, K, D, device=device))), "initial must have shape"),
        BadCall("initial batch", Call((x, w, b, torch.zeros(B + 1, K - 1, D, device=device))),
                "initial must have shape"),
        BadCall("int dtype", Call((x.int(), w, b)), "x must be float32"),
        BadCall("weight dtype", Call((x, w.double(), b)), "weight must be"),
        BadCall("bias dtype", Call((x, w, b.half())), "bias must be"),
        BadCall("initial dtype", Call((x, w, b, init.double())), "initial must be"),
        BadCall("empty", Call((torch.randn(B, 0, D, device=device), w, b)), "x is empty"),
        BadCall("no taps", Call((x, torch.randn(D, 0, device=device), b)), "K >= 1"),
    ]


# headwise_linear --------------------------------------------------------------------------------

def make_headwise_linear(gen, device, dtype, weight_dtype=None, variant="plain"):
    if variant == "heads":
        # The mLSTM layer's q, k, v: (B, S, inner) in, (B, NH, S, DH) out.
        return Call((*headwise_inputs(gen, (2, 3), 3, 4, 4, dtype, device, weight_dtype), 3))
    x, weight = headwise_inputs(gen, (3, 4), 4, 4, 4, dtype, device, weight_dtype)
    if variant == "strided":
        # The mLSTM layer projects one half of its up-projection: rows with a stride of twice the width.
        x = randn(gen, 3, 4, 32, dtype=dtype, device=device)[..., :16]
    return Call((x, weight))


def headwise_linear_bad_calls(device):
    x, w = torch.randn(5, 8, device=device), torch.randn(2, 4, 4, device=device)
    return [
        BadCall("weight rank", Call((x, torch.randn(2, 16, device=device))), "weight must have shape"),
        BadCall("features", Call((torch.randn(5, 7, device=device), w)), "takes G \\* I = 8"),
        BadCall("int dtype", Call((x.int(), w)), "x must be float32"),
        BadCall("weight dtype", Call((x, w.double())), "weight must be"),
        BadCall("empty", Call((torch.randn(0, 8, device=device), w)), "x is empty"),
        BadCall("empty weight", Call((x, torch.randn(0, 4, 4, device=device))), "weight must have shape"),
        BadCall("heads not dividing groups", Call((x.view(1, 5, 8), w, 3)), "heads must be >= 1 and divide"),
        BadCall("head-major needs [B, S, D]", Call((x, w, 2)), "x must have shape \\[B, S, G \\* I\\]"),
    ]


def headwise_linear_reference(x, weight, heads=1):
    """The reference's (..., G O), head-major as the op returns it for heads > 1."""
    y = reference_module.headwise_linear(x, weight)
    return y if heads == 1 else y.unflatten(-1, (heads, -1)).transpose(1, 2)


# mlstm_output_gate ------------------------------------------------------------------------------

def make_mlstm_output_gate(gen, device, dtype, weight_dtype=None, variant="plain"):
    h, x_conv, z, w, s = gate_inputs(gen, 2, 3, 2, 5, dtype, device, weight_dtype)
    if variant == "strided":
        # The layer's z is one half of its up-projection: rows with a stride of twice the width.
        z = randn(gen, 2, 3, 20, dtype=dtype, device=device)[..., 10:]
    return Call((h, x_conv, z, w, s))


def mlstm_output_gate_bad_calls(device):
    h, rows, w = torch.randn(4, 3, 2, 3, device=device), torch.randn(4, 3, 6, device=device), torch.randn(6, device=device)
    empty_h, empty_rows = torch.randn(0, 3, 2, 3, device=device), torch.randn(0, 3, 6, device=device)
    return [
        BadCall("h rank", Call((rows[0], rows, rows, w, w)), "h must have shape .B, S, NH, DH."),
        BadCall("x_conv width", Call((h, torch.randn(4, 3, 7, device=device), rows, w, w)), "x_conv must have shape"),
        BadCall("z length", Call((h, rows, torch.randn(4, 2, 6, device=device), w, w)), "z must have shape"),
        BadCall("weight size", Call((h, rows, rows, torch.randn(7, device=device), w)), "norm_weight must have shape"),
        BadCall("skip dtype", Call((h, rows, rows, w, w.double())), "skip must be"),
        BadCall("int dtype", Call((h.int(), rows.int(), rows.int(), w, w)), "h must be float32"),
        BadCall("z dtype", Call((h, rows, rows.double(), w, w)), "z must be"),
        BadCall("eps", Call((h, rows, rows, w, w), {"eps": 0.0}), "eps must be positive"),
        BadCall("empty", Call((empty_h, empty_rows, empty_rows, w, w)), "h is empty"),
    ]


CONTRACTS = [
    OpContract("mlstm_step", ("q", "k", "v", "i", "f", "C", "n", "m"), make_mlstm_step, mlstm_step_bad_calls),
    OpContract("mlstm_chunkwise", ("q", "k", "v", "i", "f", "C", "n", "m"), make_mlstm_chunkwise,
               mlstm_chunkwise_bad_calls),
    # m is the stabiliser: a constant in and out (the public function detaches m0; m_T gets no gradient).
    OpContract("slstm", ("x_gates", "R", "b", "h0", "c0", "n0", "m0"), make_slstm, slstm_bad_calls,
               weights=("R", "b"), constant_inputs=frozenset({"m0"}), grad_outputs=lambda out: all_outputs(out)[:4],
               gradcheck_outputs=slstm_unscaled, error_names=("slstm_forward",),
               devices_checked_by_torch=frozenset({"h0", "c0", "n0", "m0"})),  # torch.stack of the state
    OpContract("causal_conv1d_silu", ("x", "weight", "bias", "initial"), make_causal_conv1d_silu,
               causal_conv1d_silu_bad_calls, weights=("weight", "bias")),
    OpContract("headwise_linear", ("x", "weight"), make_headwise_linear, headwise_linear_bad_calls,
               variants=("plain", "strided", "heads"), weights=("weight",), reference=headwise_linear_reference),
    OpContract("mlstm_output_gate", ("h", "x_conv", "z", "norm_weight", "skip"), make_mlstm_output_gate,
               mlstm_output_gate_bad_calls, weights=("norm_weight", "skip")),
    # The test-only fixture op (tests/ops/fixture_op), compiled from its own folder on first use: an op
    # added the way csrc/README.md says, checked like every other.
    OpContract("fixture_scale", ("x", "w"),
               lambda gen, device, dtype, weight_dtype=None, variant="plain":
                   Call(fixture_op.make(gen, device, dtype, weight_dtype, variant)),
               lambda device: [BadCall(d, Call((x, w)), m) for d, x, w, m in fixture_op.bad_calls(device)],
               weights=("w",), reference=fixture_op.reference, backends=fixture_op.BACKENDS, spec=fixture_op.SPEC),
]
