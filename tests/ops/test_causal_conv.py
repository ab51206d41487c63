"""The fused causal conv + SiLU op against python_ref, on every backend that can run here."""
import pytest
import torch

from xlstm_cuda import reference
from conftest import BACKENDS, assert_matches_reference, generator, numerics_matrix, randn
from inputs import conv_inputs

# (B, S, D, K): B = 1, S = 1 and S < K - 1 (the buffer reaches past the start), D below, at and
# above a 32-channel block, K = 1 (no history) up to the CUDA kernels' 8; S = 300 spans several
# row blocks; D % 4 == 0 (the CUDA kernels' 4-channel accesses) with several channel blocks and
# time tiles, at K = 8 and 2.
SHAPES = [(1, 1, 5, 4), (2, 2, 32, 4), (3, 17, 40, 3), (2, 300, 70, 4), (1, 9, 7, 1), (2, 12, 33, 8),
          (2, 140, 132, 8), (1, 300, 64, 2)]


def check_against_reference(backend, gen, x, weight, bias, initial):
    inputs = [x, weight, bias] + ([initial] if initial is not None else [])  # None: a fresh sequence
    y = assert_matches_reference(gen, backend.ops.causal_conv1d_silu, reference.causal_conv1d_silu, inputs,
                                 ["x", "weight", "bias", "initial"][:len(inputs)])
    assert y.dtype == x.dtype and y.shape == x.shape


@numerics_matrix(SHAPES, with_initial=[True, False])
def test_forward_and_gradients_match_reference(backend, dtype, shape, with_initial):
    gen = generator("conv", backend.name, dtype, shape, with_initial)
    check_against_reference(backend, gen, *conv_inputs(gen, *shape, dtype, backend.device, with_initial))


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_streaming_equals_one_call(backend):
    """The layers' step form: the last K - 1 inputs carried as the next call's initial buffer."""
    gen = generator("conv-stream", backend.name)
    x, weight, bias, _ = conv_inputs(gen, 2, 10, 12, 4, torch.float32, backend.device, False)
    whole = backend.ops.causal_conv1d_silu(x, weight, bias)
    first = backend.ops.causal_conv1d_silu(x[:, :6], weight, bias)
    rest = backend.ops.causal_conv1d_silu(x[:, 6:], weight, bias, x[:, 3:6].contiguous())
    torch.testing.assert_close(torch.cat([first, rest], 1), whole)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.name != "cpu"], ids=str)
def test_cuda_kernel_width_limit(backend):
    x, w, b = torch.randn(1, 4, 8, device=backend.device), torch.randn(8, 9, device=backend.device), torch.randn(
        8, device=backend.device)
    with pytest.raises(RuntimeError, match="kernel sizes up to 8"):
        backend.ops.causal_conv1d_silu(x, w, b)
