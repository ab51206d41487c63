#!/usr/bin/env bash
# The one command for a lent GPU machine (the `device` tool): builds the CUDA kernels for sm_90,
# runs the test suite on the GPU and the full CUDA benchmark, and leaves every log under $OUT.
# Finishes within 8 minutes on an H200; run it from the repository root:
#   bash scripts/gpu_check.sh
set -uo pipefail
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
export TORCH_CUDA_ARCH_LIST=9.0 XLSTM_FORCE_CUDA=1 MAX_JOBS=${MAX_JOBS:-16} PYTHONUNBUFFERED=1
export XLSTM_TESTS_WITHOUT_EMULATION=1  # the emulation is CI's job; here the real kernels run

{ nvidia-smi; python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } \
  > "$OUT/env.log" 2>&1
echo "::: build (sm_90)"
if ! python3 -m pip install --no-build-isolation --no-deps --no-index -e . > "$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"
  exit 1
fi
python3 -c "import xlstm_cuda, pprint; pprint.pprint(xlstm_cuda.build_info())" | tee -a "$OUT/env.log"

echo "::: tests"
timeout 240 python3 -m pytest tests -q -x -p no:cacheprovider > "$OUT/tests.log" 2>&1
tests_status=$?
tail -15 "$OUT/tests.log"

echo "::: benchmark"
plot_args=()
python3 -c "import matplotlib" 2>/dev/null && plot_args=(--plot "$OUT/plots")
timeout 200 python3 -m xlstm_cuda.bench --device cuda --full --json "$OUT/bench.json" "${plot_args[@]}" \
  > "$OUT/bench.log" 2>&1
bench_status=$?
tail -40 "$OUT/bench.log"
echo "tests exit $tests_status, benchmark exit $bench_status"
[ "$tests_status" -eq 0 ] && [ "$bench_status" -eq 0 ]
