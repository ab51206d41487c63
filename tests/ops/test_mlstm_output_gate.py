"""The fused mLSTM output gate against python_ref, on every backend that can run here."""
from xlstm_cuda import reference
from conftest import assert_matches_reference, generator, numerics_matrix
from inputs import gate_inputs

# (leading shape, D): one row, odd widths around the CUDA kernels' 32-feature blocks, rows spanning
# several row tiles (N = 300).
SHAPES = [((1,), 1), ((2, 3), 33), ((300,), 20), ((4, 5), 64)]


def check_against_reference(backend, gen, h, x_conv, z, w, s):
    y = assert_matches_reference(gen, backend.ops.mlstm_output_gate, reference.mlstm_output_gate, [h, x_conv, z, w, s],
                                 ["h", "x_conv", "z", "norm_weight", "skip"])
    assert y.dtype == h.dtype and y.shape == h.shape


@numerics_matrix(SHAPES)
def test_forward_and_gradients_match_reference(backend, dtype, shape):
    gen = generator("output-gate", backend.name, dtype, shape)
    check_against_reference(backend, gen, *gate_inputs(gen, *shape, dtype, backend.device))
