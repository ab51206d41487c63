// The sLSTM kernel launches, one explicit instantiation per input dtype (cuda_<dtype>.cu), so that
// the kernel variants compile in parallel and apart from the ATen-side entry points (cuda.cu).
#pragma once

#include "common/kernel_launch.h"
#include "ops/slstm/math.h"
#include "ops/slstm/traits.h"

namespace xlstm {

template <typename scalar_t>
void slstm_forward_launch(const SlstmParams<scalar_t, float>& p, SlstmRPlace place, dim3 grid, dim3 block,
                          size_t smem_bytes, cudaStream_t stream);
// The forward and backward across thread-block clusters (sm_90): grid (NH · shape.blocks, batch
// tiles), shape from slstm_cluster_shape for the direction.
template <typename scalar_t>
void slstm_forward_cluster_launch(const SlstmParams<scalar_t, float>& p, const SlstmClusterShape& shape, dim3 grid,
                                  size_t smem_bytes, cudaStream_t stream);
template <typename scalar_t>
void slstm_backward_cluster_launch(const SlstmBwdParams<scalar_t, float>& p, const SlstmClusterShape& shape,
                                   dim3 grid, size_t smem_bytes, cudaStream_t stream);
// Whether one such cluster fits the current device at once.
template <typename scalar_t>
bool slstm_cluster_fits(const SlstmClusterShape& shape, size_t smem_bytes, bool backward);
template <typename scalar_t>
void slstm_backward_launch(const SlstmBwdParams<scalar_t, float>& p, SlstmRPlace place, dim3 grid, dim3 block,
                           size_t smem_bytes, cudaStream_t stream);

}  // namespace xlstm
