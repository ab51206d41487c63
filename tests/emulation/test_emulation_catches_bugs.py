"""The host emulation must catch the bugs that matter: each broken variant of a fixture kernel
(tests/emulation/fixtures) fails, the correct one passes."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
BUGS = {"none": 0, "off_by_one": 1, "missing_barrier": 2, "unwritten_row": 3, "warp_lockstep": 4}
CLUSTER_BUGS = {"none": 0, "missing_cluster_barrier": 1, "exit_before_peers_read": 2}


def sanitizer_preload() -> str:
    libs = [subprocess.run(["gcc", f"-print-file-name={name}"], capture_output=True, text=True, check=True).stdout.strip()
            for name in ("libasan.so", "libstdc++.so")]
    return " ".join(libs)


@pytest.fixture(scope="module")
def fixture_library(tmp_path_factory):
    library = tmp_path_factory.mktemp("emulation") / "fixtures.so"
    subprocess.run(["g++", "-std=c++17", "-O1", "-g", "-fPIC", "-shared", "-DXLSTM_SIM", *SANITIZE,
                    f"-I{ROOT / 'csrc'}", "-x", "c++", str(FIXTURES / "row_scale_kernels.cu"),
                    str(FIXTURES / "cluster_norm_kernels.cu"),
                    "-x", "none", str(ROOT / "csrc" / "sim" / "cuda_sim.cpp"), "-o", str(library)],
                   check=True)
    return library


def run_variant(library, bug, seed, runner="run_row_scale.py", bugs=BUGS):
    env = dict(os.environ, LD_PRELOAD=sanitizer_preload(), ASAN_OPTIONS="detect_leaks=0",
               XLSTM_SIM_SEED=str(seed))
    return subprocess.run([sys.executable, str(FIXTURES / runner), str(library), str(bugs[bug]),
                           str(seed)], capture_output=True, text=True, env=env, timeout=120)


def run_cluster_variant(library, bug, seed):
    return run_variant(library, bug, seed, "run_cluster_norm.py", CLUSTER_BUGS)


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


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_block_exiting_before_peers_read_is_caught(fixture_library, seed):
    result = run_cluster_variant(fixture_library, "exit_before_peers_read", seed)
    assert result.returncode == 1
    assert "of the cluster has exited" in result.stderr
