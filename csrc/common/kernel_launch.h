// launch_kernel, free of ATen, so that the translation units that instantiate kernels (one per
// dtype, ops/<op>/cuda_<dtype>.cu) compile without ATen's headers. Under XLSTM_SIM it runs the
// kernel in the host emulation.
#pragma once

#include <cstddef>
#include <utility>

#include "common/cuda_compat.h"

#if !defined(XLSTM_SIM)
#include <c10/cuda/CUDAException.h>
#include <cuda_runtime.h>
#endif

namespace xlstm {

// Stands in for kernel<<<grid, block, smem, stream>>>(args...) and checks the launch.
template <typename... KernelArgs, typename... Args>
void launch_kernel(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem_bytes, cudaStream_t stream,
                   Args&&... args) {
#if defined(XLSTM_SIM)
  (void)stream;
  xlstm_sim::launch(grid, block, smem_bytes, [&] { kernel(args...); });
#else
  if (smem_bytes > 48 * 1024) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem_bytes)));
  }
  kernel<<<grid, block, smem_bytes, stream>>>(std::forward<Args>(args)...);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
#endif
}

}  // namespace xlstm
