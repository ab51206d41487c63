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

#if !defined(XLSTM_SIM)
// Launches above 48 KiB of dynamic shared memory must opt in, per kernel.
template <typename... KernelArgs>
void allow_dynamic_shared(void (*kernel)(KernelArgs...), size_t smem_bytes) {
  if (smem_bytes > 48 * 1024) {
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        static_cast<int>(smem_bytes)));
  }
}
#endif

// Stands in for kernel<<<grid, block, smem, stream>>>(args...) and checks the launch.
template <typename... KernelArgs, typename... Args>
void launch_kernel(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem_bytes, cudaStream_t stream,
                   Args&&... args) {
#if defined(XLSTM_SIM)
  (void)stream;
  xlstm_sim::launch(grid, block, smem_bytes, [&] { kernel(args...); });
#else
  allow_dynamic_shared(kernel, smem_bytes);
  kernel<<<grid, block, smem_bytes, stream>>>(std::forward<Args>(args)...);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
#endif
}

#if !defined(XLSTM_SIM)
// The launch configuration of a cluster launch (the kernel's attributes set for it), its one
// attribute in `cluster`.
template <typename... KernelArgs>
cudaLaunchConfig_t cluster_launch_config(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, unsigned cluster_blocks,
                                         size_t smem_bytes, cudaStream_t stream, cudaLaunchAttribute& cluster) {
  allow_dynamic_shared(kernel, smem_bytes);
  if (cluster_blocks > 8) C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
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

// The same with the grid in clusters of `cluster_blocks` blocks along x (sm_90 thread-block
// clusters; more than 8 blocks need, and get, the non-portable cluster size attribute).
template <typename... KernelArgs, typename... Args>
void launch_cluster_kernel(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, unsigned cluster_blocks,
                           size_t smem_bytes, cudaStream_t stream, Args&&... args) {
#if defined(XLSTM_SIM)
  (void)stream;
  xlstm_sim::launch_cluster(grid, block, dim3(cluster_blocks), smem_bytes,
                            cluster_blocks > xlstm_sim::kMaxPortableClusterBlocks, [&] { kernel(args...); });
#else
  cudaLaunchAttribute cluster;
  const cudaLaunchConfig_t config = cluster_launch_config(kernel, grid, block, cluster_blocks, smem_bytes, stream, cluster);
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
  cudaLaunchAttribute cluster;
  const cudaLaunchConfig_t config =
      cluster_launch_config(kernel, dim3(cluster_blocks), block, cluster_blocks, smem_bytes, nullptr, cluster);
  int clusters = 0;
  if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &config) != cudaSuccess) {
    (void)cudaGetLastError();  // a cluster the device cannot run: not an error of the caller's
    return false;
  }
  return clusters > 0;
#endif
}

}  // namespace xlstm
