// launch_kernel, free of ATen, so that the translation units that instantiate kernels (one per
// dtype, ops/<op>/cuda_<dtype>.cu) compile without ATen's headers. Under XLSTM_SIM it runs the
// kernel in the host emulation.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <utility>

#include "common/cuda_compat.h"

#if !defined(XLSTM_SIM)
#include <c10/cuda/CUDAException.h>
#include <cuda_runtime.h>
#endif

namespace xlstm {

// The most threads per block a kernel is compiled for: the value of its __launch_bounds__. A kernel
// declared with __launch_bounds__ is launched with its LaunchBounds, both from one constexpr, so
// that the emulation, which cannot read the attribute, rejects a larger block as the GPU does.
struct LaunchBounds {
  unsigned max_threads_per_block = 1024;  // a kernel without __launch_bounds__: the hardware's limit
};

// Stands in for kernel<<<grid, block, smem, stream>>>(args...) and checks the launch.
template <typename... KernelArgs, typename... Args>
void launch_kernel(void (*kernel)(KernelArgs...), LaunchBounds bounds, dim3 grid, dim3 block, size_t smem_bytes,
                   cudaStream_t stream, Args&&... args) {
  // Above 48 KB of dynamic shared memory a kernel must opt in, on the GPU and in the emulation.
  constexpr size_t kDefaultDynamicSharedBytes = 48 * 1024;
#if defined(XLSTM_SIM)
  (void)stream;
  if (smem_bytes > kDefaultDynamicSharedBytes &&
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem_bytes)) !=
          cudaSuccess)
    throw std::runtime_error("xlstm_cuda emulation: cudaFuncSetAttribute(MaxDynamicSharedMemorySize) failed");
  xlstm_sim::launch(grid, block, smem_bytes, [&] { kernel(args...); },
                    xlstm_sim::kernel_limits(kernel, bounds.max_threads_per_block));
#else
  (void)bounds;  // the GPU checks the block against the compiled bound itself
  if (smem_bytes > kDefaultDynamicSharedBytes) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem_bytes)));
  }
  kernel<<<grid, block, smem_bytes, stream>>>(std::forward<Args>(args)...);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
#endif
}

// A kernel without __launch_bounds__.
template <typename... KernelArgs, typename... Args>
void launch_kernel(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem_bytes, cudaStream_t stream,
                   Args&&... args) {
  launch_kernel(kernel, LaunchBounds{}, grid, block, smem_bytes, stream, std::forward<Args>(args)...);
}

}  // namespace xlstm
