// Definitions of the sLSTM launches (launch.h), included once per dtype by cuda_<dtype>.cu.
#pragma once

#include "common/static_switch.h"
#include "ops/slstm/kernels.cuh"
#include "ops/slstm/launch.h"

namespace xlstm {

template <typename scalar_t>
void slstm_forward_launch(const SlstmParams<scalar_t, float>& p, SlstmRPlace place, dim3 grid, dim3 block,
                          size_t smem_bytes, cudaStream_t stream) {
  enum_switch<SlstmRPlace::kShared, SlstmRPlace::kRegistersAndShared, SlstmRPlace::kGlobal>(place, [&](auto r) {
    launch_kernel(slstm_fwd_kernel<scalar_t, decltype(r)::value>, LaunchBounds{slstm_max_threads(r)}, grid, block,
                  smem_bytes, stream, p);
  });
}

template <typename scalar_t>
void slstm_forward_cluster_launch(const SlstmParams<scalar_t, float>& p, const SlstmClusterShape& shape, dim3 grid,
                                  size_t smem_bytes, cudaStream_t stream) {
  launch_cluster_kernel(slstm_fwd_cluster_kernel<scalar_t>, LaunchBounds{kSlstmClusterMaxThreads}, grid,
                        dim3(shape.threads), shape.blocks, smem_bytes, stream, p, shape);
}

template <typename scalar_t>
void slstm_backward_cluster_launch(const SlstmBwdParams<scalar_t, float>& p, const SlstmClusterShape& shape,
                                   dim3 grid, size_t smem_bytes, cudaStream_t stream) {
  launch_cluster_kernel(slstm_bwd_cluster_kernel<scalar_t>, LaunchBounds{kSlstmClusterMaxThreads}, grid,
                        dim3(shape.threads), shape.blocks, smem_bytes, stream, p, shape);
}

template <typename scalar_t>
bool slstm_cluster_fits(const SlstmClusterShape& shape, size_t smem_bytes, bool backward) {
  const dim3 block(shape.threads);
  return backward ? cluster_fits(slstm_bwd_cluster_kernel<scalar_t>, block, shape.blocks, smem_bytes)
                  : cluster_fits(slstm_fwd_cluster_kernel<scalar_t>, block, shape.blocks, smem_bytes);
}

template <typename scalar_t>
void slstm_backward_launch(const SlstmBwdParams<scalar_t, float>& p, SlstmRPlace place, dim3 grid, dim3 block,
                           size_t smem_bytes, cudaStream_t stream) {
  enum_switch<SlstmRPlace::kShared, SlstmRPlace::kRegistersAndShared, SlstmRPlace::kGlobal>(place, [&](auto r) {
    launch_kernel(slstm_bwd_kernel<scalar_t, decltype(r)::value>, LaunchBounds{slstm_max_threads(r)}, grid, block,
                  smem_bytes, stream, p);
  });
}

}  // namespace xlstm

#define XLSTM_SLSTM_INSTANTIATE_LAUNCHES(scalar_t)                                                              \
  template void xlstm::slstm_forward_launch<scalar_t>(const SlstmParams<scalar_t, float>&, SlstmRPlace, dim3, dim3, \
                                                      size_t, cudaStream_t);                                     \
  template void xlstm::slstm_forward_cluster_launch<scalar_t>(const SlstmParams<scalar_t, float>&,              \
                                                              const SlstmClusterShape&, dim3, size_t, cudaStream_t); \
  template void xlstm::slstm_backward_cluster_launch<scalar_t>(const SlstmBwdParams<scalar_t, float>&,          \
                                                               const SlstmClusterShape&, dim3, size_t, cudaStream_t); \
  template bool xlstm::slstm_cluster_fits<scalar_t>(const SlstmClusterShape&, size_t, bool);                     \
  template void xlstm::slstm_backward_launch<scalar_t>(const SlstmBwdParams<scalar_t, float>&, SlstmRPlace, dim3,  \
                                                       dim3, size_t, cudaStream_t);
