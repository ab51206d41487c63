"""The chunkwise mLSTM's bf16 / fp16 kernels run their tile products on tensor cores (HMMA in their sm_90 SASS,
none in the float32 instances, which stay on CUDA cores), without spills, and each fits its shared memory:
the static part cuobjdump reports plus the dynamic part it launches with, at chunk sizes 64 and 128, within
sm_90's 227 KB per block. The emulation cannot show any of this: it runs the fragments on the CPU."""
import pytest

import sass_tools
import xlstm_cuda

KERNELS = ["mlstm_chunkwise_fwd_states_kernel", "mlstm_chunkwise_fwd_outputs_kernel",
           "mlstm_chunkwise_bwd_dh_dot_h_kernel", "mlstm_chunkwise_bwd_states_kernel", "mlstm_chunkwise_bwd_intra_kernel"]
# dtype: (its mangled template argument, the HMMA form its products must compile to)
DTYPES = {"bfloat16": ("IN3c108BFloat16E", "HMMA.16816.F32.BF16"), "float16": ("IN3c104HalfE", "HMMA.16816.F32 "),
          "float32": ("IfE", None)}
SM90_MAX_SHARED = 227 * 1024


@pytest.fixture(scope="module")
def kernels_sass():
    return sass_tools.kernels_sass()


@pytest.fixture(scope="module")
def kernels_resources():
    return sass_tools.kernels_resources()


def instance(table: dict, kernel: str, dtype: str) -> str:
    mangled = DTYPES[dtype][0]
    names = [name for name in table if f"{len(kernel)}{kernel}{mangled}" in name]
    assert len(names) == 1, f"expected one {kernel} for {dtype}, found {names}"
    return names[0]


@pytest.fixture(scope="module")
def with_cuda(kernels_sass):
    if not xlstm_cuda.build_info()["cuda"]:
        assert kernels_sass == {}, "a CPU-only build carries device code"
    return xlstm_cuda.build_info()["cuda"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", KERNELS)
def test_tile_products_on_tensor_cores_for_16_bit_inputs(kernels_sass, with_cuda, kernel, dtype):
    if not with_cuda:
        return
    sass = kernels_sass[instance(kernels_sass, kernel, dtype)]
    hmma = DTYPES[dtype][1]
    if hmma is None:
        assert "HMMA" not in sass, f"{kernel} for float32 inputs must stay on CUDA cores (float32 bounds)"
    else:
        assert hmma in sass and "LDSM" in sass, f"{kernel} for {dtype}: no {hmma.strip()} / LDSM (ldmatrix)"
        other = "HMMA.16816.F32 " if dtype == "bfloat16" else "HMMA.16816.F32.BF16"
        assert other not in sass, f"{kernel} for {dtype} multiplies in the other 16-bit type"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", KERNELS)
def test_no_spills_and_shared_memory_fits(kernels_resources, with_cuda, kernel, dtype):
    if not with_cuda:
        return
    usage = kernels_resources[instance(kernels_resources, kernel, dtype)]
    assert usage["STACK"] == 0 and usage["LOCAL"] == 0, f"{kernel} for {dtype} spills: {usage}"
    for chunk in (64, 128):
        dynamic = dict(xlstm_cuda._C.mlstm_chunkwise_cuda_shared_memory(dtype, chunk))[kernel]
        assert usage["SHARED"] + dynamic <= SM90_MAX_SHARED, (
            f"{kernel} for {dtype} at chunk {chunk}: {usage['SHARED']} static + {dynamic} dynamic bytes")
