#!/usr/bin/env bash
# The one command for a lent GPU machine (the `device` tool): builds the CUDA kernels for sm_90,
# runs the test suite on the GPU, the chunkwise mLSTM against TFLA at the anchor shapes
# (scripts/gpu_chunkwise_bench.py) and the full CUDA benchmark, and leaves every log under $OUT.
# Meant to finish within 8 minutes on an H200 (each step has a timeout); run it from the repository
# root:
#   bash scripts/gpu_check.sh
# TFLA comes from the mlstm_kernels package: installed already, or from wheels in gpu_wheels/
# (mlstm_kernels, xlstm; `pip download --no-deps mlstm_kernels==2.0.6 xlstm==2.0.6 -d gpu_wheels`,
# carried to the machine with the tree).
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
if ! python3 -c "import mlstm_kernels" 2>/dev/null && ls gpu_wheels/*.whl > /dev/null 2>&1; then
  python3 -m pip install --no-deps --no-index gpu_wheels/*.whl >> "$OUT/build.log" 2>&1
fi

echo "::: tests"
timeout 210 python3 -m pytest tests -q -x -p no:cacheprovider > "$OUT/tests.log" 2>&1
tests_status=$?
tail -15 "$OUT/tests.log"

echo "::: chunkwise mLSTM: tensor cores, CUDA cores, TFLA"
timeout 150 python3 scripts/gpu_chunkwise_bench.py --budget 100 --json "$OUT/chunkwise_bench.json" \
  > "$OUT/chunkwise_bench.log" 2>&1
chunkwise_status=$?
cat "$OUT/chunkwise_bench.log"

echo "::: benchmark"
plot_args=()
python3 -c "import matplotlib" 2>/dev/null && plot_args=(--plot "$OUT/plots")
timeout 120 python3 -m xlstm_cuda.bench --device cuda --full --json "$OUT/bench.json" "${plot_args[@]}" \
  > "$OUT/bench.log" 2>&1
bench_status=$?
tail -40 "$OUT/bench.log"
echo "tests exit $tests_status, chunkwise bench exit $chunkwise_status, benchmark exit $bench_status"
[ "$tests_status" -eq 0 ] && [ "$chunkwise_status" -eq 0 ] && [ "$bench_status" -eq 0 ]
