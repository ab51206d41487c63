// Definitions of the chunkwise mLSTM launches (launch.h), included once per dtype by cuda_<dtype>.cu.
#pragma once

#include "ops/mlstm_chunkwise/kernels.cuh"
#include "ops/mlstm_chunkwise/launch.h"

namespace xlstm {

// A state pass (state grid), then a per-chunk pass (chunk grid), on the stream.
template <typename Params>
void launch_state_then_chunk_pass(void (*state_pass)(Params), void (*chunk_pass)(Params), const Params& p,
                                  const MlstmChunkwiseLaunchShape& shape) {
  const dim3 block(MlstmChunkwiseTraits::kThreads);
  launch_kernel(state_pass, shape.state_grid, block, shape.state_smem_bytes, shape.stream, p);
  launch_kernel(chunk_pass, shape.chunk_grid, block, shape.chunk_smem_bytes, shape.stream, p);
}

template <typename scalar_t>
void mlstm_chunkwise_forward_launch(const MlstmChunkwiseFwdParams<scalar_t>& p,
                                    const MlstmChunkwiseLaunchShape& shape) {
  launch_state_then_chunk_pass(mlstm_chunkwise_fwd_states_kernel<scalar_t>,
                               mlstm_chunkwise_fwd_outputs_kernel<scalar_t>, p, shape);
}

template <typename scalar_t>
void mlstm_chunkwise_dh_dot_h_launch(const MlstmChunkwiseFwdParams<scalar_t>& p,
                                     const MlstmChunkwiseLaunchShape& shape) {
  launch_kernel(mlstm_chunkwise_bwd_dh_dot_h_kernel<scalar_t>, shape.chunk_grid, dim3(MlstmChunkwiseTraits::kThreads),
                shape.chunk_smem_bytes, shape.stream, p);
}

template <typename scalar_t>
void mlstm_chunkwise_backward_launch(const MlstmChunkwiseBwdParams<scalar_t>& p,
                                     const MlstmChunkwiseLaunchShape& shape) {
  launch_state_then_chunk_pass(mlstm_chunkwise_bwd_states_kernel<scalar_t>, mlstm_chunkwise_bwd_intra_kernel<scalar_t>,
                               p, shape);
}

}  // namespace xlstm

#define XLSTM_MLSTM_CHUNKWISE_INSTANTIATE_LAUNCHES(scalar_t)                                                  \
  template void xlstm::mlstm_chunkwise_forward_launch<scalar_t>(const MlstmChunkwiseFwdParams<scalar_t>&,       \
                                                                const MlstmChunkwiseLaunchShape&);                  \
  template void xlstm::mlstm_chunkwise_dh_dot_h_launch<scalar_t>(const MlstmChunkwiseFwdParams<scalar_t>&,      \
                                                                 const MlstmChunkwiseLaunchShape&);                 \
  template void xlstm::mlstm_chunkwise_backward_launch<scalar_t>(const MlstmChunkwiseBwdParams<scalar_t>&,      \
                                                                 const MlstmChunkwiseLaunchShape&);
