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

from conftest import CUDA_SOURCE_BACKENDS, generator
from test_mlstm_chunkwise import check_against_reference

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
    check_against_reference(backend, gen, (1, 1, S, DQK, DV), chunk, dtype, with_state)
