"""What the install reports about itself."""
import os

import torch

import xlstm_cuda


def test_build_info_reports_kernels_and_ops():
    info = xlstm_cuda.build_info()
    assert info["version"] == xlstm_cuda.__version__
    assert info["cpu_kernels"] is True
    assert info["cpu_simd"] in ("avx512", "avx2", "none")
    assert info["torch_runtime"] == torch.__version__
    assert {"mlstm_step", "mlstm_step_backward", "mlstm_chunkwise_forward", "mlstm_chunkwise_backward",
            "slstm_forward", "slstm_backward", "causal_conv1d_silu", "causal_conv1d_silu_backward", "headwise_linear",
            "headwise_linear_backward", "mlstm_output_gate", "mlstm_output_gate_backward"} <= set(info["ops"])
    if os.environ.get("XLSTM_TESTS_WITHOUT_EMULATION") != "1":  # scripts/gpu_check.sh builds without it
        assert isinstance(info["emulation"], dict) and info["emulation"]["namespace"] == "xlstm_cuda_sim"
    if info["cuda"]:
        assert info["cuda_archs"] and info["cuda_version"]


def test_cuda_kernels_compiled_when_forced():
    # CI builds with XLSTM_FORCE_CUDA=1: the CUDA sources must then be compiled, for sm_90 at least.
    if os.environ.get("XLSTM_FORCE_CUDA") == "1":
        info = xlstm_cuda.build_info()
        assert info["cuda"] is True
        assert "9.0" in info["cuda_archs"]
