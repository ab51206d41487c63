"""The headwise (block-diagonal) linear op against python_ref, on every backend that can run here."""
import pytest

from xlstm_cuda import reference
from conftest import BACKENDS, DTYPES, assert_matches_reference, generator, numerics_matrix, randn
from inputs import headwise_inputs

# (leading shape, G, O, I): the mLSTM layer's 4 x 4 blocks, non-square blocks, one group, rows
# spanning several weight-gradient tiles (N = 600), a 1-D input; the sLSTM layer's gate projections
# (per head and source DH -> 2 DH) and blocks with column tails, which the CPU runs as small GEMMs.
SHAPES = [((2, 5), 8, 4, 4), ((3,), 3, 2, 5), ((1, 1), 1, 6, 6), ((600,), 5, 4, 4), ((), 4, 3, 2),
          ((2, 37), 6, 64, 32), ((3, 9), 2, 37, 19)]


def check_against_reference(backend, gen, x, weight, heads=1):
    G, O, _ = weight.shape

    def op(x, weight):  # head-major (B, heads, S, G O / heads) compared as (B, S, G O)
        y = backend.ops.headwise_linear(x, weight, heads)
        if heads > 1:
            assert y.shape == (x.shape[0], heads, x.shape[1], G * O // heads)
            y = y.transpose(1, 2).flatten(2)
        return y

    y = assert_matches_reference(gen, op, reference.headwise_linear, [x, weight], ["x", "weight"])
    assert y.dtype == x.dtype and y.shape == (*x.shape[:-1], G * O)


@numerics_matrix(SHAPES)
def test_forward_and_gradients_match_reference(backend, dtype, shape):
    lead, G, O, I = shape
    gen = generator("headwise", backend.name, dtype, shape)
    check_against_reference(backend, gen, *headwise_inputs(gen, lead, G, O, I, dtype, backend.device))


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("heads", [2, 3])
def test_head_major_output(backend, dtype, heads):
    """The mLSTM layer's q, k, v: (B, S, inner) in, (B, NH, S, DH) out, from a strided input."""
    gen = generator("headwise-heads", backend.name, dtype, heads)
    wide = randn(gen, 2, 5, 48, dtype=dtype, device=backend.device)
    weight = randn(gen, 6, 4, 4, scale=0.5, dtype=dtype, device=backend.device)
    check_against_reference(backend, gen, wide[..., :24], weight, heads)
    large_blocks = randn(gen, 6, 20, 8, scale=0.3, dtype=dtype, device=backend.device)
    check_against_reference(backend, gen, wide, large_blocks, heads)
    # Heads of 16 features: whole vectors of 4 x 4 blocks, the CPU's vectorized path.
    whole_vectors = randn(gen, 2, 7, 16 * heads, dtype=dtype, device=backend.device)
    check_against_reference(backend, gen, whole_vectors, randn(gen, 4 * heads, 4, 4, scale=0.5, dtype=dtype,
                                                                device=backend.device), heads)
