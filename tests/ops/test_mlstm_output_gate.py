"""The fused mLSTM output gate (multi-head norm, scale, skip, SiLU gate) against python_ref, on every
backend that can run here."""
import pytest
import torch

from xlstm_cuda import reference

from conftest import BACKENDS, CUDA_SOURCE_BACKENDS, assert_matches_reference, generator, numerics_matrix, randn
from inputs import gate_inputs

# (B, S, NH, DH): one row of one head, odd head sizes around the CUDA kernels' 32-lane warps, rows
# spanning several row tiles (B S = 300), a wide head.
SHAPES = [(1, 1, 1, 1), (2, 3, 3, 11), (3, 100, 2, 10), (2, 5, 2, 64), (1, 2, 1, 129)]


def check_against_reference(backend, gen, h, x_conv, z, w, s, eps=1e-5):
    y = assert_matches_reference(gen, lambda *t: backend.ops.mlstm_output_gate(*t, eps),
                                 lambda *t: reference.mlstm_output_gate(*t, eps), [h, x_conv, z, w, s],
                                 ["h", "x_conv", "z", "norm_weight", "skip"])
    assert y.dtype == h.dtype and y.shape == x_conv.shape
    return y


@numerics_matrix(SHAPES)
def test_forward_and_gradients_match_reference(backend, dtype, shape):
    gen = generator("output-gate", backend.name, dtype, shape)
    check_against_reference(backend, gen, *gate_inputs(gen, *shape, dtype, backend.device))


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_layouts_give_one_result_and_dh_keeps_h_layout(backend):
    """h head-major (the cell's output, transposed) or (B, S, NH, DH)-contiguous, z a strided half of
    the up-projection: the same output; dh comes back in h's layout."""
    gen = generator("output-gate-layouts", backend.name)
    h, x_conv, _, w, s = gate_inputs(gen, 2, 7, 3, 5, torch.float32, backend.device)
    z = randn(gen, 2, 7, 30, dtype=torch.float32, device=backend.device)[..., 15:]
    results = []
    for h_in in (h, h.contiguous()):
        leaf = h_in.detach().requires_grad_(True)
        y = backend.ops.mlstm_output_gate(leaf, x_conv, z, w, s)
        (dh,) = torch.autograd.grad(y, leaf, torch.ones_like(y))
        assert dh.stride() == leaf.stride()
        results.append((y, dh))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=0)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=0, atol=0)
    check_against_reference(backend, gen, h, x_conv, z, w, s, eps=0.3)  # eps reaches the kernel


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_token_form_matches_the_sequence_form(backend):
    """A generation step passes h (B, NH, DH) and rows (B, D)."""
    gen = generator("output-gate-token", backend.name)
    h, x_conv, z, w, s = gate_inputs(gen, 3, 1, 2, 6, torch.float32, backend.device)
    y = backend.ops.mlstm_output_gate(h[:, 0], x_conv[:, 0], z[:, 0], w, s)
    torch.testing.assert_close(y, backend.ops.mlstm_output_gate(h, x_conv, z, w, s)[:, 0], rtol=0, atol=0)


@pytest.mark.parametrize("backend", CUDA_SOURCE_BACKENDS, ids=str)
def test_cuda_backward_refuses_heads_beyond_its_shared_memory(backend):
    """Three DH floats of shared memory per warp: DH 4096 runs, 4097 is refused with the limit."""
    gen = generator("output-gate-limit", backend.name)
    for DH, fits in ((4096, True), (4097, False)):
        h, x_conv, z, w, s = gate_inputs(gen, 1, 1, 1, DH, torch.float32, backend.device)
        leaf = h.detach().requires_grad_(True)
        y = backend.ops.mlstm_output_gate(leaf, x_conv, z, w, s)
        if fits:
            torch.autograd.grad(y, leaf, torch.ones_like(y))
        else:
            with pytest.raises(RuntimeError, match="mlstm_output_gate_backward: h's head size 4097 exceeds"):
                torch.autograd.grad(y, leaf, torch.ones_like(y))
