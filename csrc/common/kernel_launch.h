// launch_kernel, free of ATen, so that the translation units that instantiate kernels (one per
// dtype, ops/<op>/cuda_<dtype>.cu) compile without ATen's headers. Under XLSTM_SIM it runs the
// kernel in the host emulation.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
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

// Sets an attribute of `kernel` that its launches need; the emulation keeps them per kernel and
// rejects a launch without them as the GPU does.
template <typename... KernelArgs>
void set_kernel_attribute(void (*kernel)(KernelArgs...), cudaFuncAttribute attribute, int value) {
#if defined(XLSTM_SIM)
  if (cudaFuncSetAttribute(kernel, attribute, value) != cudaSuccess)
    throw std::runtime_error("xlstm_cuda emulation: cudaFuncSetAttribute(" + std::to_string(attribute) + ", " +
                             std::to_string(value) + ") failed");
#else
  C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, attribute, value));
#endif
}

// Above 48 KB of dynamic shared memory a kernel must opt in, per kernel.
template <typename... KernelArgs>
void allow_dynamic_shared(void (*kernel)(KernelArgs...), size_t smem_bytes) {
  constexpr size_t kDefaultDynamicSharedBytes = 48 * 1024;
  if (smem_bytes > kDefaultDynamicSharedBytes)
    set_kernel_attribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem_bytes));
}

// Stands in for kernel<<<grid, block, smem, stream>>>(args...) and checks the launch.
template <typename... KernelArgs, typename... Args>
void launch_kernel(void (*kernel)(KernelArgs...), LaunchBounds bounds, dim3 grid, dim3 block, size_t smem_bytes,
                   cudaStream_t stream, Args&&... args) {
  allow_dynamic_shared(kernel, smem_bytes);
#if defined(XLSTM_SIM)
  (void)stream;
  xlstm_sim::launch(grid, block, smem_bytes, [&] { kernel(args...); },
                    xlstm_sim::kernel_limits(kernel, bounds.max_threads_per_block));
#else
  (void)bounds;  // the GPU checks the block against the compiled bound itself
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

// Clusters of more than 8 blocks are not portable: the kernel must allow them (sm_90: up to 16).
constexpr unsigned kMaxPortableClusterBlocks = 8;

// The attributes a cluster launch of `kernel` needs, set.
template <typename... KernelArgs>
void prepare_cluster_kernel(void (*kernel)(KernelArgs...), unsigned cluster_blocks, size_t smem_bytes) {
  allow_dynamic_shared(kernel, smem_bytes);
  if (cluster_blocks > kMaxPortableClusterBlocks)
    set_kernel_attribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
}

#if !defined(XLSTM_SIM)
// The launch configuration of a cluster launch, its one attribute in `cluster`.
inline cudaLaunchConfig_t cluster_launch_config(dim3 grid, dim3 block, unsigned cluster_blocks, size_t smem_bytes,
                                                cudaStream_t stream, cudaLaunchAttribute& cluster) {
  cluster.id = cudaLaunchAttributeClusterDimension;
  cluster.val.clusterDim.x = cluster_blocks;
  cluster.val.clusterDim.y = 1;
  cluster.val.clusterDim.z = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem_bytes;
  config.stream = stream;
  config.attrs = &cluster;
  config.numAttrs = 1;
  return config;
}
#endif

// launch_kernel with the grid in clusters of `cluster_blocks` blocks along x (sm_90 thread-block
// clusters; more than 8 blocks need, and get, the non-portable cluster size attribute).
template <typename... KernelArgs, typename... Args>
void launch_cluster_kernel(void (*kernel)(KernelArgs...), LaunchBounds bounds, dim3 grid, dim3 block,
                           unsigned cluster_blocks, size_t smem_bytes, cudaStream_t stream, Args&&... args) {
  prepare_cluster_kernel(kernel, cluster_blocks, smem_bytes);
#if defined(XLSTM_SIM)
  (void)stream;
  xlstm_sim::launch_cluster(grid, block, dim3(cluster_blocks), smem_bytes, [&] { kernel(args...); },
                            xlstm_sim::kernel_limits(kernel, bounds.max_threads_per_block));
#else
  (void)bounds;  // the GPU checks the block against the compiled bound itself
  cudaLaunchAttribute cluster;
  const cudaLaunchConfig_t config = cluster_launch_config(grid, block, cluster_blocks, smem_bytes, stream, cluster);
  C10_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
#endif
}

// Whether at least one cluster of this launch fits the current device at once (a cluster's
// blocks are co-scheduled on one GPC). The emulation has no GPCs: there any cluster the launch
// limits allow fits.
template <typename... KernelArgs>
bool cluster_fits(void (*kernel)(KernelArgs...), dim3 block, unsigned cluster_blocks, size_t smem_bytes) {
#if defined(XLSTM_SIM)
  (void)kernel;
  (void)block;
  return cluster_blocks <= xlstm_sim::kMaxClusterBlocks && smem_bytes <= xlstm_sim::kMaxDynamicSharedBytes;
#else
  prepare_cluster_kernel(kernel, cluster_blocks, smem_bytes);
  cudaLaunchAttribute cluster;
  const cudaLaunchConfig_t config =
      cluster_launch_config(dim3(cluster_blocks), block, cluster_blocks, smem_bytes, nullptr, cluster);
  int clusters = 0;
  if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) != cudaSuccess) {
    (void)cudaGetLastError();  // a cluster the device cannot run: not an error of the caller's
    return false;
  }
  return clusters > 0;
#endif
}

}  // namespace xlstm
