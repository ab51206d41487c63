"""The host emulation must catch the bugs that matter: each broken variant of a fixture kernel
(tests/emulation/fixtures) fails, the correct one passes. row_scale_kernels.cu covers what happens
inside a block (bounds, barriers, warps, unwritten outputs); tile_sum_kernels.cu the launch (static
shared memory, block order, __launch_bounds__, the shared-memory opt-in) and, built with the
cross-block race check (csrc/sim/race_check.cpp), a block reading what another block wrote;
cluster_norm_kernels.cu a thread-block cluster (a missing cluster barrier, a block exiting while its
peers read its shared memory). The project's sLSTM kernels run under that race check too
(race_check_slstm.cpp)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
BUGS = {"none": 0, "off_by_one": 1, "missing_barrier": 2, "unwritten_row": 3, "warp_lockstep": 4}
TILE_SUM_BUGS = {"none": 0, "static_shared_assumed_zero": 1, "depends_on_block_order": 2, "exceeds_launch_bounds": 3,
                 "large_shared_without_opt_in": 4}
RACE_CHECK = ["-fsanitize=kernel-address", "--param", "asan-instrumentation-with-call-threshold=0",
              "--param", "asan-globals=0", "--param", "asan-stack=0"]
LARGE_TILE = 13000  # floats of dynamic shared memory: 52 KB, above the 48 KB a kernel gets without opting in
CLUSTER_BUGS = {"none": 0, "missing_cluster_barrier": 1, "exit_before_peers_read": 2}


def sanitizer_preload() -> str:
    libs = [subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True, text=True, check=True).stdout.strip()
            for name in ("libasan.so", "libstdc++.so")]
    return " ".join(libs)


def compile_sim(source, output, flags):
    subprocess.run(["g++", "-std=c++17", "-O1", "-g", "-fPIC", "-DXLSTM_SIM", f"-I{ROOT / 'csrc'}", *flags, *source,
                    "-o", str(output)], check=True)


@pytest.fixture(scope="module")
def fixture_library(tmp_path_factory):
    """The fixtures' kernels and the emulation, under AddressSanitizer and UBSan (one compile)."""
    library = tmp_path_factory.mktemp("emulation") / "fixtures.so"
    compile_sim(["-x", "c++", str(FIXTURES / "row_scale_kernels.cu"), str(FIXTURES / "tile_sum_kernels.cu"),
                 str(FIXTURES / "cluster_norm_kernels.cu"), "-x", "none", str(ROOT / "csrc" / "sim" / "cuda_sim.cpp")], library, ["-shared", *SANITIZE])
    return library


@pytest.fixture(scope="module")
def tile_sum_race_library(tmp_path_factory):
    """The kernels instrumented for the race check, the emulation itself not."""
    folder = tmp_path_factory.mktemp("emulation")
    compile_sim(["-c", "-x", "c++", str(FIXTURES / "tile_sum_kernels.cu")], folder / "kernels.o", RACE_CHECK)
    compile_sim([str(folder / "kernels.o"), str(ROOT / "csrc" / "sim" / "cuda_sim.cpp"),
                 str(ROOT / "csrc" / "sim" / "race_check.cpp")], folder / "tile_sum_race.so", ["-shared"])
    return folder / "tile_sum_race.so"


def run_fixture(script, seed, *args):
    env = dict(os.environ, LD_PRELOAD=sanitizer_preload(), ASAN_OPTIONS="detect_leaks=0",
               XLSTM_SIM_SEED=str(seed))
    return subprocess.run([sys.executable, str(FIXTURES / script), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)


def run_variant(library, bug, seed):
    return run_fixture("run_row_scale.py", seed, library, BUGS[bug], seed)


def run_tile_sum(library, bug, seed, blocks=8, tile=100):
    return run_fixture("run_tile_sum.py", seed, library, TILE_SUM_BUGS[bug], blocks, tile, seed)


def run_cluster_variant(library, bug, seed):
    return run_fixture("run_cluster_norm.py", seed, library, CLUSTER_BUGS[bug], seed)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_correct_kernel_passes(fixture_library, seed):
    result = run_variant(fixture_library, "none", seed)
    assert result.returncode == 0, result.stderr


def test_off_by_one_is_caught_by_address_sanitizer(fixture_library):
    result = run_variant(fixture_library, "off_by_one", 1)
    assert result.returncode != 0
    assert "AddressSanitizer: heap-buffer-overflow" in result.stderr


def test_unwritten_row_is_caught_by_poisoned_outputs(fixture_library):
    result = run_variant(fixture_library, "unwritten_row", 1)
    assert result.returncode == 1
    assert "wrong output: 100 NaN" in result.stderr


@pytest.mark.parametrize("bug", ["missing_barrier", "warp_lockstep"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_missing_synchronisation_is_caught_by_shuffled_schedules(fixture_library, bug, seed):
    # Every schedule seed must expose the race, not just a lucky one.
    result = run_variant(fixture_library, bug, seed)
    assert result.returncode == 1
    assert "wrong output" in result.stderr


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("tile", [100, LARGE_TILE])
def test_correct_tile_sum_passes(fixture_library, tile_sum_race_library, tile, seed):
    # launch_kernel opts in above 48 KB as on the GPU; the race check reports no false race.
    for library in (fixture_library, tile_sum_race_library):
        result = run_tile_sum(library, "none", seed, tile=tile)
        assert result.returncode == 0, result.stderr


def test_static_shared_memory_is_poisoned_at_block_start(fixture_library):
    # One block: a zero-initialised static would pass; shared memory on a GPU starts as garbage.
    result = run_tile_sum(fixture_library, "static_shared_assumed_zero", 1, blocks=1)
    assert result.returncode == 1
    assert "wrong output: 1 NaN" in result.stderr


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_block_order_dependence_is_caught_by_shuffled_blocks(fixture_library, seed):
    result = run_tile_sum(fixture_library, "depends_on_block_order", seed)
    assert result.returncode == 1
    assert "wrong output" in result.stderr


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_correct_cluster_kernel_passes(fixture_library, seed):
    result = run_cluster_variant(fixture_library, "none", seed)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_missing_cluster_barrier_is_caught_by_drifting_blocks(fixture_library, seed):
    # A block reads a peer's distributed shared memory before the peer wrote it: every seed must catch it.
    result = run_cluster_variant(fixture_library, "missing_cluster_barrier", seed)
    assert result.returncode == 1
    assert "wrong output" in result.stderr


def test_cross_block_read_after_write_is_reported_by_race_check(tile_sum_race_library):
    result = run_tile_sum(tile_sum_race_library, "depends_on_block_order", 1)
    assert result.returncode == 1
    assert re.search(r"cross-block race: block \(\d+, 0, 0\) reads 0x[0-9a-f]+, which block \(\d+, 0, 0\) of the "
                     r"same launch wrote", result.stderr), result.stderr


def test_block_above_launch_bounds_is_rejected(fixture_library):
    result = run_tile_sum(fixture_library, "exceeds_launch_bounds", 1)
    assert result.returncode == 1
    assert "launch with 128 threads per block, above the kernel's __launch_bounds__ (64)" in result.stderr


def test_large_shared_memory_without_opt_in_is_rejected(fixture_library):
    result = run_tile_sum(fixture_library, "large_shared_without_opt_in", 1, tile=LARGE_TILE)
    assert result.returncode == 1
    assert "52000 bytes of dynamic shared memory, above the 49152 the kernel allows" in result.stderr


@pytest.mark.parametrize("code, message", [
    ("__global__ void k(float* x) { x[0] = __expf(x[0]); }", "__expf is a CUDA approximate intrinsic"),
    ("__global__ void k(float* x) { x[0] = __fdividef(x[0], x[1]); }", "__fdividef is a CUDA approximate intrinsic"),
    ("__global__ void k(float* x) { __shared__ float s[4]; s[0] = x[0]; }", "XLSTM_STATIC_SHARED"),
])
def test_what_the_emulation_cannot_model_does_not_compile(tmp_path, code, message):
    # glibc declares __expf and others as exact functions: a kernel calling one would pass here.
    source = tmp_path / "kernel.cpp"
    source.write_text(f'#include "common/cuda_compat.h"\n{code}\n')
    result = subprocess.run(["g++", "-std=c++17", "-fsyntax-only", "-DXLSTM_SIM", f"-I{ROOT / 'csrc'}", str(source)],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert message in result.stderr


def test_slstm_kernels_have_no_cross_block_race(tmp_path):
    """The sLSTM's float kernels, forward and backward, every place of R, two batch tiles per head."""
    compile_sim(["-c", "-x", "c++", str(ROOT / "csrc" / "ops" / "slstm" / "cuda_fp32.cu")], tmp_path / "kernels.o",
                RACE_CHECK)
    compile_sim([str(Path(__file__).parent / "race_check_slstm.cpp"), str(tmp_path / "kernels.o"),
                 str(ROOT / "csrc" / "sim" / "cuda_sim.cpp"), str(ROOT / "csrc" / "sim" / "race_check.cpp")],
                tmp_path / "race_check_slstm", [])
    result = subprocess.run([str(tmp_path / "race_check_slstm")], capture_output=True, text=True, timeout=120,
                            env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"})
    assert result.returncode == 0, result.stderr
    assert "no cross-block race" in result.stdout


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_block_exiting_before_peers_read_is_caught(fixture_library, seed):
    result = run_cluster_variant(fixture_library, "exit_before_peers_read", seed)
    assert result.returncode == 1
    assert "of the cluster has exited" in result.stderr
