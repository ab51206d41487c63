"""The ops xLSTM 7B runs on, at its true head shapes (8 heads, DHQK 256, DHV 512), on every backend
(CPU kernels, and the CUDA kernels through the host emulation), against python_ref in float64.
B = 1 and short sequences: the emulation is slow (it is instrumented)."""
import pytest

from conftest import BACKENDS, assert_close, assert_matches_reference, generator, randn
from xlstm_cuda import reference as python_ref

NH, DHQK, DHV = 8, 256, 512


def inputs(gen, S):
    """q, k, v, i, f for B = 1, and an initial state as a prompt would leave it (C, n from keys and
    values seen before, m of gate size)."""
    q, k = (randn(gen, 1, NH, S, DHQK) for _ in range(2))
    v = randn(gen, 1, NH, S, DHV)
    i, f = randn(gen, 1, NH, S), randn(gen, 1, NH, S, shift=3.0)
    C = randn(gen, 1, NH, DHQK, DHV, scale=0.1)
    n, m = randn(gen, 1, NH, DHQK, scale=0.1), randn(gen, 1, NH)
    return [q, k, v, i, f], (C, n, m)


@pytest.mark.parametrize("S", [3, 65])
@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_chunkwise_at_7b_shapes(backend, S):
    gen = generator("7b-chunkwise", backend.name, S)
    x, state = inputs(gen, S)
    x = [t.to(backend.device) for t in x]
    state = tuple(t.to(backend.device) for t in state)
    h, final = backend.ops.mlstm_chunkwise(*x, state)
    ref_h, ref_final = python_ref.mlstm_chunkwise(*(t.double().cpu() for t in x), tuple(t.double().cpu() for t in state))
    assert_close("h", h, ref_h)
    for name, out, ref in zip("Cnm", final, ref_final):
        assert_close(name, out, ref)


# The backward through the emulation costs seconds per call: once, at the shortest length.
@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_chunkwise_gradients_at_7b_shapes(backend):
    gen = generator("7b-chunkwise-grad", backend.name)
    x, state = inputs(gen, 3)
    state = tuple(t.to(backend.device) for t in state)

    def h_of(ops, state):
        return lambda q, k, v, i, f: ops.mlstm_chunkwise(q, k, v, i, f, state)[0]

    def reference(q, k, v, i, f):
        return h_of(python_ref, tuple(t.to(q.dtype) for t in state_cpu))(q, k, v, i, f)

    state_cpu = tuple(t.cpu() for t in state)
    assert_matches_reference(gen, h_of(backend.ops, state), reference, [t.to(backend.device) for t in x],
                             ["q", "k", "v", "i", "f"])


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_step_at_7b_shapes(backend):
    gen = generator("7b-step", backend.name)
    x, state = inputs(gen, 1)
    x = [t[:, :, 0].to(backend.device) for t in x]
    state = tuple(t.to(backend.device) for t in state)
    h, new = backend.ops.mlstm_step(*x, state)
    ref_h, ref_new = python_ref.mlstm_step(*(t.double().cpu() for t in x), tuple(t.double().cpu() for t in state))
    assert_close("h", h, ref_h)
    for name, out, ref in zip("Cnm", new, ref_new):
        assert_close(name, out, ref)
