"""The emulation's self-test (csrc/sim/sim_selftest.cpp): shuffles, votes, barriers, launch errors, and
the tensor-core fragments of csrc/cuda/mma.cuh (mma.sync m16n8k16 bf16 / fp16, ldmatrix x1 / x2 / x4 and
.trans) checked element by element against the PTX ISA's register layouts, and the tensor-core tile product
(csrc/cuda/tile_mma.cuh) in every operand order and split against a double product. CMake's ctest runs the
same program; this builds it with g++ as CI has no CMake build."""
import os
import subprocess
from pathlib import Path

from torch.utils.cpp_extension import include_paths

ROOT = Path(__file__).resolve().parents[2]
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]


def test_emulation_self_test_passes(tmp_path):
    binary = tmp_path / "sim_selftest"
    subprocess.run(["g++", "-std=c++17", "-O1", "-g", "-DXLSTM_SIM", *SANITIZE, f"-I{ROOT / 'csrc'}",
                    *(f"-I{p}" for p in include_paths()), str(ROOT / "csrc" / "sim" / "sim_selftest.cpp"),
                    str(ROOT / "csrc" / "sim" / "cuda_sim.cpp"), "-o", str(binary)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}  # the binary links ASan itself
    result = subprocess.run([str(binary)], capture_output=True, text=True, timeout=120,
                            env=dict(env, ASAN_OPTIONS="detect_leaks=0"))
    assert result.returncode == 0, result.stderr
    assert "emulation self-test passed" in result.stdout
