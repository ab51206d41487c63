"""Runs one variant of row_scale_kernels.cu through the emulation and compares with numpy.

Usage: python run_row_scale.py LIBRARY BUG SEED. Exit 0: output matches; 1: wrong output or an
emulation error; an AddressSanitizer report ends the process with its own non-zero status."""
import ctypes
import sys

import numpy as np

library, bug, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows, cols, threads = 5, 100, 64
rng = np.random.default_rng(seed)
x = rng.standard_normal((rows, cols), dtype=np.float32)
out = np.full((rows, cols), np.nan, dtype=np.float32)  # poisoned: unwritten elements stay NaN
expected = x / np.sqrt(1.0 + (x.astype(np.float64) ** 2).sum(axis=1, keepdims=True))

pointer = ctypes.POINTER(ctypes.c_float)
run = ctypes.CDLL(library).run_row_scale
run.argtypes = [ctypes.c_int, pointer, pointer, ctypes.c_int, ctypes.c_int, ctypes.c_int]
if run(bug, x.ctypes.data_as(pointer), out.ctypes.data_as(pointer), rows, cols, threads) != 0:
    sys.exit(1)
if not np.allclose(out, expected, rtol=1e-5, atol=1e-6):
    print(f"wrong output: {np.isnan(out).sum()} NaN, max error {np.nanmax(np.abs(out - expected)):.3g}",
          file=sys.stderr)
    sys.exit(1)
