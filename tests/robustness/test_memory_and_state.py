"""Memory and state of the CPU kernels (issue #14): no leak over 1000 forward + backward calls, peak
memory against the activations' size, S = 65536 for both cells (finite, memory linear in S), calls
from 4 Python threads at once, bitwise identical results across runs and thread counts.

Figures measured (2-core CI machine, torch 2.14.1), in memory_probe.py's terms:
- resident growth over 1000 rounds (mlstm_step + sLSTMLayer + mLSTMLayer, forward + backward) after
  50 warm-up rounds: 0.5 MB, then 0.09 MB and 0 over the next two 1000 (the allocator settling,
  not a leak); bound 1 MiB (~350 bytes a call);
- peak above the inputs, per byte of activations (inputs and h): slstm forward 0.19, forward +
  backward 3.0 (the trace: 9 floats per step and unit, the gate gradients 4); chunkwise mLSTM
  forward 0.33, forward + backward 1.6; the same at S = 16384 and 65536 (ratio 4.0 of the peaks:
  linear). Bounds: forward 1x, forward + backward 6x the activations at each S.
"""
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import xlstm_cuda
from conftest import generator
from xlstm_cuda._sanitizer import links_asan
from test_hostile_inputs import OPS

PROBE = Path(__file__).with_name("memory_probe.py")


@pytest.fixture(scope="module")
def probe():
    """memory_probe.py's figures from a process of its own: without the sanitizer runtime, or, where
    the CPU kernels are built with it, under it with freed memory returned at once (see there)."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    if links_asan("xlstm_cuda._C"):
        env["ASAN_OPTIONS"] = "detect_leaks=0:quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
    else:
        env.pop("LD_PRELOAD", None)
        env.pop("ASAN_OPTIONS", None)
    done = subprocess.run([sys.executable, str(PROBE)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_no_leak_over_1000_calls(probe):
    assert probe["leak_bytes"] < 1 << 20, f"resident memory grew {probe['leak_bytes']} bytes over 1000 rounds"


@pytest.mark.parametrize("cell", ["slstm", "mlstm"])
def test_peak_memory_against_activations_and_linear_in_S(probe, cell):
    runs = probe["cells"][cell]
    for S, run in runs.items():
        assert run["finite"], f"{cell} S={S}: non-finite outputs or gradients"
        forward, backward = run["forward"] / run["activations"], run["forward_backward"] / run["activations"]
        assert forward < 1.0, f"{cell} S={S}: forward peak {forward:.2f}x the activations"
        assert backward < 6.0, f"{cell} S={S}: forward + backward peak {backward:.2f}x the activations"
    growth = runs["65536"]["forward_backward"] / runs["16384"]["forward_backward"]
    assert growth < 4.5, f"{cell}: peak grew {growth:.2f}x for 4x the sequence"


def forward_backward(op, B=6, seed=0):
    """op's outputs and the gradients of its inputs (CPU kernels, float32), one fixed draw."""
    make, call = OPS[op]
    inputs, _ = make(generator("state", op, seed), B)
    leaves = [t.float().requires_grad_(True) for t in inputs]
    outs = [t for t in torch.utils._pytree.tree_leaves(call(xlstm_cuda.ops, leaves)) if isinstance(t, torch.Tensor)]
    gen = torch.Generator().manual_seed(seed)
    upstream = [torch.randn(o.shape, generator=gen) for o in outs]
    grads = torch.autograd.grad(outs, leaves, upstream, allow_unused=True)
    return [t for t in (*outs, *grads) if t is not None]


def assert_bitwise(a, b, what):
    assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b)), what


def test_four_threads_at_once_give_the_serial_results():
    serial = {(op, seed): forward_backward(op, seed=seed) for op in OPS for seed in range(4)}
    results, errors = {}, []

    def worker(seed):
        try:
            for _ in range(3):
                for op in OPS:
                    results[(op, seed)] = forward_backward(op, seed=seed)
        except Exception as error:  # reported below: a thread's exception would be lost otherwise
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for key, expected in serial.items():
        assert_bitwise(results[key], expected, f"{key}: a threaded call differs from the serial one")


@pytest.mark.parametrize("op", list(OPS))
def test_bitwise_identical_across_runs_and_thread_counts(op):
    """Every op's CPU kernel (README "Determinism"): each output element is computed by one thread
    in a fixed order, and the reductions across rows (dR, dW, the conv's weight gradients) are split
    by the shapes alone, so results do not depend on runs or on torch.get_num_threads()."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = forward_backward(op, B=40)
        torch.set_num_threads(2)
        two, again = forward_backward(op, B=40), forward_backward(op, B=40)
    finally:
        torch.set_num_threads(threads)
    assert_bitwise(two, again, f"{op}: two runs differ")
    assert_bitwise(one, two, f"{op}: 1 and 2 threads differ")
