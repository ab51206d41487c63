// CUDA kernels of the mLSTM output gate: a thread per element forward; backward blocks of 32
// features x 8 rows of threads striding over a tile of rows, the weight gradients summed per block
// into partial[blockIdx.y] ((2, D): d norm_weight, d skip).
#pragma once

#include "cuda_compat.h"
#include "mlstm_output_gate.h"

namespace xlstm {

template <typename scalar_t>
__global__ void output_gate_fwd_kernel(OutputGateParams<scalar_t, float> p) {
  const int64_t total = p.rows * p.dim;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / p.dim, d = e % p.dim;
    p.y[e] = static_cast<scalar_t>(output_gate(p.h_at(r, d), p.x_conv_at(r, d), p.z_at(r, d), p.w[d], p.s[d]));
  }
}

template <typename scalar_t>
__global__ void output_gate_bwd_kernel(OutputGateParams<scalar_t, float> p, int64_t rows_per_block, float* partial) {
  XLSTM_DYNAMIC_SHARED(float, scratch);  // blockDim.y x blockDim.x
  const int64_t d = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t first = blockIdx.y * rows_per_block;
  const int64_t last = first + rows_per_block < p.rows ? first + rows_per_block : p.rows;
  float dw = 0.f, ds = 0.f;
  if (d < p.dim) {
    for (int64_t r = first + threadIdx.y; r < last; r += blockDim.y) {
      const int64_t e = r * p.dim + d;
      const OutputGateGrads<float> g = output_gate_backward(static_cast<float>(p.dy[e]), p.h_at(r, d),
                                                            p.x_conv_at(r, d), p.z_at(r, d), p.w[d], p.s[d]);
      p.dh[e] = static_cast<scalar_t>(g.dh);
      p.dx_conv[e] = static_cast<scalar_t>(g.dx_conv);
      p.dz[e] = static_cast<scalar_t>(g.dz);
      dw += g.dw;
      ds += g.ds;
    }
  }
  const int lane = threadIdx.y * blockDim.x + threadIdx.x;
  const auto write_block_total = [&](float value, int64_t row) {
    scratch[lane] = value;
    __syncthreads();
    if (threadIdx.y == 0 && d < p.dim) {
      float total = 0.f;
      for (unsigned y = 0; y < blockDim.y; ++y) total += scratch[y * blockDim.x + threadIdx.x];
      partial[(blockIdx.y * 2 + row) * p.dim + d] = total;
    }
    __syncthreads();
  };
  write_block_total(dw, 0);
  write_block_total(ds, 1);
}

}  // namespace xlstm
