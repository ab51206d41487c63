"""Microbenchmarks of the kernels against their baselines: `python -m xlstm_cuda.bench --help`.

cases.py holds the registry of suites (add one with `@suite("name")`); harness.py times them.
"""
