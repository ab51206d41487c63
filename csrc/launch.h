// Host-side launch plumbing shared by every .cu entry point. Under XLSTM_SIM the same code drives
// the host emulation instead of the GPU, so no launch code is written twice.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <limits>
#include <utility>

#include "cuda_compat.h"

#if !defined(XLSTM_SIM)
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#endif

// The input dtypes the CUDA kernels are instantiated for (states are float32).
#define XLSTM_DISPATCH_KERNEL_TYPES(TYPE, NAME, ...)                                         \
  AT_DISPATCH_SWITCH(TYPE, NAME, AT_DISPATCH_CASE(at::kFloat, __VA_ARGS__)                   \
                                     AT_DISPATCH_CASE(at::kBFloat16, __VA_ARGS__)            \
                                         AT_DISPATCH_CASE(at::kHalf, __VA_ARGS__))

#if defined(XLSTM_SIM)
#define XLSTM_KERNEL_DEVICE at::kCPU
#else
#define XLSTM_KERNEL_DEVICE at::kCUDA
#endif

namespace xlstm {

// The most dynamic shared memory one block of the current device can have (opt-in limit).
inline int64_t max_dynamic_shared_bytes() {
#if defined(XLSTM_SIM)
  return xlstm_sim::kMaxDynamicSharedBytes;
#else
  int device = 0, bytes = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  return bytes;
#endif
}

// Device guard and current stream for the duration of an entry point.
class DeviceScope {
 public:
#if defined(XLSTM_SIM)
  explicit DeviceScope(const at::Tensor&) {}
  cudaStream_t stream() const { return nullptr; }
#else
  explicit DeviceScope(const at::Tensor& t) : guard_(t.device()) {}
  cudaStream_t stream() const { return c10::cuda::getCurrentCUDAStream().stream(); }

 private:
  c10::cuda::CUDAGuard guard_;
#endif
};

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

// Output buffers of a kernel. The emulation fills them with NaN so that an element a kernel
// forgets to write fails the comparison with python_ref.
inline at::Tensor empty_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty(sizes, options);
#if defined(XLSTM_SIM)
  t.fill_(std::numeric_limits<double>::quiet_NaN());
#endif
  return t;
}

}  // namespace xlstm
