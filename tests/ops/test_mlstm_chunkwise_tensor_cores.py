"""The chunkwise mLSTM's tensor-core kernels (bf16 / fp16 inputs: mma.sync m16n8k16 through cuda/mma.cuh) in
the emulation, against python_ref at the spec's bounds, forward and every gradient: head sizes of whole and
several MMA tiles (DHQK 64, 128, 256; DHV 64, 256, 512), S = 1, 63, 64, 65, 200 (a ragged last chunk, one and
several chunks, chunks 64 and 128), with and without initial states.

The emulation runs every lane of every warp, so these cost seconds each: CI runs CASES, a choice that has every
S, head size, chunk size, dtype and state option at least once; XLSTM_LONG_TESTS=1 runs LONG_CASES as well (all
S x three head-size pairs x states x dtypes)."""
import itertools
import os

import pytest
import torch

from xlstm_cuda import reference
from conftest import CUDA_SOURCE_BACKENDS, assert_all_close, generator, randn
from inputs import chunkwise_inputs
from test_mlstm_chunkwise import run_reference

# (S, DHQK, DHV, chunk, with_state, dtype)
CASES = [(1, 256, 512, 64, True, torch.bfloat16), (63, 128, 64, 64, True, torch.float16),
         (64, 64, 256, 128, True, torch.bfloat16), (65, 256, 64, 64, False, torch.bfloat16),
         (200, 64, 64, 128, True, torch.float16), (200, 128, 64, 64, False, torch.bfloat16)]
LONG_CASES = [(S, DQK, DV, 64, with_state, dtype)
              for S, (DQK, DV), with_state, dtype in itertools.product(
                  (1, 63, 64, 65, 200), ((64, 64), (128, 256), (256, 512)), (True, False),
                  (torch.bfloat16, torch.float16))]
CHOSEN = CASES + ([c for c in LONG_CASES if c not in CASES] if os.environ.get("XLSTM_LONG_TESTS") == "1" else [])


@pytest.mark.parametrize("backend", CUDA_SOURCE_BACKENDS, ids=str)
@pytest.mark.parametrize("case", CHOSEN, ids=lambda c: "S{}-dqk{}-dv{}-L{}-{}-{}".format(
    *c[:4], "state" if c[4] else "nostate", str(c[5]).removeprefix("torch.")))
def test_tensor_core_kernels_match_reference(backend, case):
    S, DQK, DV, chunk, with_state, dtype = case
    gen = generator("chunkwise-tensor-cores", backend.name, case)
    inputs, state = chunkwise_inputs(gen, 1, 1, S, DQK, DV, dtype, with_state, backend.device)
    leaves = inputs + list(state or ())
    for t in leaves:
        t.requires_grad_(True)
    h, new_state = backend.ops.mlstm_chunkwise(*inputs, state, chunk_size=chunk)
    outs = (h, *new_state)
    upstream = [randn(gen, *o.shape, dtype=o.dtype, device=o.device) for o in outs]
    grads = torch.autograd.grad(outs, leaves, upstream)
    leaves64, outs64 = run_reference(inputs, state, torch.float64)
    grads64 = torch.autograd.grad(outs64, leaves64, [u.cpu().double() for u in upstream])
    form = lambda *a: reference.mlstm_chunkwise(*a, chunk_size=chunk)  # noqa: E731
    leaves_same, outs_same = run_reference(inputs, state, dtype, form)
    grads_same = torch.autograd.grad(outs_same, leaves_same, [u.cpu() for u in upstream])
    assert_all_close(["h", "C", "n", "m"], outs, outs64, outs_same)
    assert_all_close(["q", "k", "v", "i", "f", "C0", "n0", "m0"], grads, grads64, grads_same, grad=True)
