// CUDA kernels of the mLSTM output gate: blocks of 32 features x 8 rows of threads striding over a
// tile of rows (no index divided per element); the backward sums the weight gradients per block
// into partial[blockIdx.y] ((2, D): d norm_weight, d skip).
#pragma once

#include "common/cuda_compat.h"
#include "cuda/block_reduce.cuh"
#include "ops/mlstm_output_gate/math.h"

namespace xlstm {

template <typename scalar_t>
__global__ void mlstm_output_gate_fwd_kernel(MlstmOutputGateParams<scalar_t, float> p, int64_t rows_per_block) {
  const int64_t d = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (d >= p.dim) return;
  const int64_t first = blockIdx.y * rows_per_block;
  const int64_t last = first + rows_per_block < p.rows ? first + rows_per_block : p.rows;
  const float w = p.w[d], s = p.s[d];
  for (int64_t r = first + threadIdx.y; r < last; r += blockDim.y)
    p.y[r * p.dim + d] = static_cast<scalar_t>(mlstm_output_gate(p.h_at(r, d), p.x_conv_at(r, d), p.z_at(r, d), w, s));
}

template <typename scalar_t>
__global__ void mlstm_output_gate_bwd_kernel(MlstmOutputGateParams<scalar_t, float> p, int64_t rows_per_block,
                                             float* partial) {
  XLSTM_DYNAMIC_SHARED(float, scratch);  // blockDim.y x blockDim.x
  const int64_t d = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t first = blockIdx.y * rows_per_block;
  const int64_t last = first + rows_per_block < p.rows ? first + rows_per_block : p.rows;
  float dw = 0.f, ds = 0.f;
  if (d < p.dim) {
    for (int64_t r = first + threadIdx.y; r < last; r += blockDim.y) {
      const int64_t e = r * p.dim + d;
      const MlstmOutputGateGrads<float> g = mlstm_output_gate_backward(static_cast<float>(p.dy[e]), p.h_at(r, d),
                                                                       p.x_conv_at(r, d), p.z_at(r, d), p.w[d], p.s[d]);
      p.dh[e] = static_cast<scalar_t>(g.dh);
      p.dx_conv[e] = static_cast<scalar_t>(g.dx_conv);
      p.dz[e] = static_cast<scalar_t>(g.dz);
      dw += g.dw;
      ds += g.ds;
    }
  }
  const float dw_total = block_column_sum(dw, scratch), ds_total = block_column_sum(ds, scratch);
  if (threadIdx.y == 0 && d < p.dim) {
    partial[(blockIdx.y * 2) * p.dim + d] = dw_total;
    partial[(blockIdx.y * 2 + 1) * p.dim + d] = ds_total;
  }
}

}  // namespace xlstm
