"""Memory figures of the CPU kernels, measured in a process of their own (test_memory.py runs it).

Run with MALLOC_MMAP_THRESHOLD_=65536, so that every tensor of 64 KiB or more is its own mapping and
returns to the system when freed; or, where the CPU kernels are built with AddressSanitizer (the
test command's build), under its runtime with the quarantine of freed memory off: its allocator maps
large blocks apart as well and releases their shadow with them. Peak resident memory of a phase:
reset the high-water mark (/proc/self/clear_refs), run, read VmHWM (under ASan it includes the
shadow, an eighth of what is touched). The leak: growth of the resident set, or under ASan of the
heap's live bytes, the allocator's own count (its resident set keeps growing for a while as it
settles, 1.6 then 0.6 and 0.4 MB over three rounds of 1000, while the live bytes grow by 0).
Prints one JSON object.
"""
import ctypes
import json
import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import xlstm_cuda  # noqa: E402
from xlstm_cuda import ops  # noqa: E402


def status(key):
    return int(re.search(key + r":\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024


def release_free_memory():
    """Hand the allocator's free memory back to the system (ASan's allocator, glibc's heap): kept,
    an earlier phase's freed pages count in the baseline and are reused by the next phase, whose peak
    then reads low (the chunkwise forward + backward at S = 16384 read 0.45x its activations right
    after the sLSTM's S = 65536 phase under ASan, where 1.6x is what it holds)."""
    libc = ctypes.CDLL(None)
    purge = getattr(libc, "__sanitizer_purge_allocator", None)
    if purge is not None:
        purge()
    libc.malloc_trim(0)


def peak_above_baseline(fn):
    """Peak resident bytes while fn() runs, above the resident bytes before it."""
    release_free_memory()
    Path("/proc/self/clear_refs").write_text("5")
    base = status("VmRSS")
    fn()
    return status("VmHWM") - base


def small_calls(gen):
    """One forward + backward of the step op and of both layers, on small shapes: the layers run
    every other op (the conv, the headwise projections, the output gate, both cells)."""
    def leaf(*shape, shift=0.0):
        return (torch.randn(*shape, generator=gen) + shift).requires_grad_(True)

    slstm_layer = xlstm_cuda.sLSTMLayer(embedding_dim=16, num_heads=2)
    mlstm_layer = xlstm_cuda.mLSTMLayer(embedding_dim=16, num_heads=2, chunk_size=8)
    calls = [
        lambda: ops.mlstm_step(leaf(2, 2, 8), leaf(2, 2, 8), leaf(2, 2, 12), leaf(2, 2), leaf(2, 2, shift=2.0)),
        lambda: slstm_layer(leaf(2, 21, 16)),
        lambda: mlstm_layer(leaf(2, 21, 16)),
    ]

    def call_all():
        for fn in calls:
            h, state = fn()
            (h.sum() + sum(t.sum() for t in torch.utils._pytree.tree_leaves(state))).backward()

    return call_all


def heap_bytes():
    """The process's memory as the leak check counts it: ASan's live heap bytes under its runtime,
    else the resident set."""
    if "libasan" in Path("/proc/self/maps").read_text():
        live = ctypes.CDLL(None).__sanitizer_get_current_allocated_bytes
        live.restype = ctypes.c_size_t
        return live()
    return status("VmRSS")


def leak(calls, warmup, repeats):
    for _ in range(warmup):
        calls()
    before = heap_bytes()
    for _ in range(repeats):
        calls()
    return heap_bytes() - before


def cell_inputs(name, S, gen):
    if name == "slstm":
        B, NH, DH = 2, 2, 16
        return [torch.randn(B, S, NH, 4, DH, generator=gen), torch.randn(NH, DH, 4, DH, generator=gen) * 0.25,
                torch.randn(NH, 4, DH, generator=gen)]
    B, NH, DQK, DV = 2, 2, 16, 16
    return [torch.randn(B, NH, S, DQK, generator=gen), torch.randn(B, NH, S, DQK, generator=gen),
            torch.randn(B, NH, S, DV, generator=gen), torch.randn(B, NH, S, generator=gen),
            torch.randn(B, NH, S, generator=gen) + 2.0]


def cell(name, inputs):
    return ops.slstm(*inputs) if name == "slstm" else ops.mlstm_chunkwise(*inputs, chunk_size=64)


def cell_peaks(name, S, gen):
    """Peak bytes of the forward (no graph), of forward + backward, and the activations' bytes
    (inputs and h): what any implementation must hold."""
    inputs = cell_inputs(name, S, gen)
    activations = sum(t.numel() * t.element_size() for t in inputs)
    h, _ = cell(name, inputs)
    activations += h.numel() * h.element_size()
    finite = bool(torch.isfinite(h).all())
    del h

    def forward():
        with torch.no_grad():
            cell(name, inputs)

    def forward_backward():
        leaves = [t.requires_grad_(True) for t in inputs]
        h, state = cell(name, leaves)
        grads = torch.autograd.grad(h.sum() + state[0].sum(), leaves)
        forward_backward.finite = all(bool(torch.isfinite(g).all()) for g in grads)

    fwd, fwd_bwd = peak_above_baseline(forward), peak_above_baseline(forward_backward)
    return {"forward": fwd, "forward_backward": fwd_bwd, "activations": activations,
            "finite": finite and forward_backward.finite}


def main():
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(14)
    calls = small_calls(gen)
    result = {"leak_bytes": leak(calls, warmup=100, repeats=1000)}
    result["cells"] = {name: {S: cell_peaks(name, S, gen) for S in (16384, 65536)} for name in ("slstm", "mlstm")}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
