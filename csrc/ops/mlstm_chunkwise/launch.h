// The chunkwise mLSTM kernel launches, one explicit instantiation per input dtype
// (cuda_<dtype>.cu), so that the kernel variants compile in parallel and apart from the ATen-side
// entry points (cuda.cu). Grids: a block per (DQK tile, DV + 1 tile, batch·head) for the state
// passes, per (chunk, batch·head) for the per-chunk passes.
#pragma once

#include "common/kernel_launch.h"
#include "ops/mlstm_chunkwise/math.h"

namespace xlstm {

struct MlstmChunkwiseLaunchShape {
  dim3 state_grid, chunk_grid;
  size_t state_smem_bytes, chunk_smem_bytes;
  cudaStream_t stream;
};

// The forward state pass, then the outputs pass.
template <typename scalar_t>
void mlstm_chunkwise_forward_launch(const MlstmChunkwiseFwdParams<scalar_t>& p, const MlstmChunkwiseLaunchShape& shape);
// dh·h of every step at full precision, for the backward of low-precision inputs (chunk grid).
template <typename scalar_t>
void mlstm_chunkwise_dh_dot_h_launch(const MlstmChunkwiseFwdParams<scalar_t>& p,
                                     const MlstmChunkwiseLaunchShape& shape);
// The backward state pass, then the intra-chunk pass.
template <typename scalar_t>
void mlstm_chunkwise_backward_launch(const MlstmChunkwiseBwdParams<scalar_t>& p,
                                     const MlstmChunkwiseLaunchShape& shape);

}  // namespace xlstm
