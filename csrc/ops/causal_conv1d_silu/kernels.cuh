// CUDA kernels of the causal conv + SiLU: a block is 32 channels (one coalesced row segment per
// warp) x 8 rows of threads, striding over its range of (batch, time) rows.
#pragma once

#include "common/cuda_compat.h"
#include "cuda/block_reduce.cuh"
#include "ops/causal_conv1d_silu/math.h"

namespace xlstm {

struct CausalConv1dSiluLaunchShape {
  static constexpr int kChannels = 32, kRows = 8;
  static constexpr int kMaxWidth = 8;  // the backward keeps one weight-gradient partial per tap in registers
};

template <typename scalar_t>
__global__ void causal_conv1d_silu_fwd_kernel(CausalConv1dSiluParams<scalar_t, float> p, int64_t rows_per_block) {
  const int64_t d = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (d >= p.dim) return;
  const int64_t first = blockIdx.y * rows_per_block;
  const int64_t last = first + rows_per_block < p.batch * p.seq ? first + rows_per_block : p.batch * p.seq;
  for (int64_t r = first + threadIdx.y; r < last; r += blockDim.y)
    p.y[r * p.dim + d] = static_cast<scalar_t>(silu(p.pre_activation(r / p.seq, r % p.seq, d)));
}

// Rows here are (batch, s) over the padded length S + K - 1: each thread writes dxp[s] and, for
// s < S, adds g[s]'s terms to its weight and bias gradient partials, which the block sums over
// its rows into partial[blockIdx.y] ((K + 1, D): K rows of d_weight_t, then d_bias).
template <typename scalar_t>
__global__ void causal_conv1d_silu_bwd_kernel(CausalConv1dSiluBwdParams<scalar_t, float> p, int64_t rows_per_block,
                                              float* partial) {
  constexpr int kMaxWidth = CausalConv1dSiluLaunchShape::kMaxWidth;
  XLSTM_DYNAMIC_SHARED(float, scratch);  // blockDim.y x blockDim.x
  const int64_t d = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t K = p.width, S = p.seq, span = S + K - 1;
  const int64_t first = blockIdx.y * rows_per_block;
  const int64_t last = first + rows_per_block < p.batch * span ? first + rows_per_block : p.batch * span;
  float dw[kMaxWidth] = {}, db = 0.f;
  if (d < p.dim) {
    for (int64_t r = first + threadIdx.y; r < last; r += blockDim.y) {
      const int64_t b = r / span, s = r % span;
      float dxp = 0.f, g_s = 0.f;
#pragma unroll
      for (int k = 0; k < kMaxWidth; ++k) {
        const int64_t t = s - k;
        if (k < K && t >= 0 && t < S) {
          const float g =
              static_cast<float>(p.dy[(b * S + t) * p.dim + d]) * silu_derivative(p.pre_activation(b, t, d));
          dxp += p.weight[k * p.dim + d] * g;
          if (k == 0) g_s = g;
        }
      }
      p.d_padded_row(b, s)[d] = static_cast<scalar_t>(dxp);
      if (s < S) {
        db += g_s;
#pragma unroll
        for (int k = 0; k < kMaxWidth; ++k)
          if (k < K) dw[k] += g_s * static_cast<float>(p.padded_row(b, s + k)[d]);
      }
    }
  }
  const auto write_block_total = [&](float value, int64_t row) {
    const float total = block_column_sum(value, scratch);
    if (threadIdx.y == 0 && d < p.dim) partial[(blockIdx.y * (K + 1) + row) * p.dim + d] = total;
  };
#pragma unroll
  for (int k = 0; k < kMaxWidth; ++k)
    if (k < K) write_block_total(dw[k], k);
  write_block_total(db, K);
}

}  // namespace xlstm
