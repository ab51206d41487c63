// CUDA kernels of the headwise linear map: grid (columns / 256, time tiles, batch), a thread per
// output (or input-gradient) column walking the kRowsPerBlock time steps of its block's tile, so
// that the column's group, head and offsets are worked out once per thread, never per element;
// the forward reads x and the weights kVec = 4 elements at a time (8- or 16-byte loads) where the
// launch code found them aligned. The weight gradient as per-tile partial sums, a thread per
// weight entry.
#pragma once

#include "common/cuda_compat.h"
#include "cuda/vector_access.cuh"
#include "ops/headwise_linear/math.h"

namespace xlstm {

struct HeadwiseLinearLaunchShape {
  static constexpr int kThreads = 256;
  static constexpr int kRowsPerBlock = 16;     // forward and dx
  static constexpr int kWeightGradRows = 256;  // rows a dW partial sums
};

// The time steps [first, last) of this block's tile of `tile` steps (grid y: the tiles of the sequence).
struct HeadwiseLinearRows {
  int64_t first, last;
};
__device__ __forceinline__ HeadwiseLinearRows headwise_linear_block_rows(int64_t seq, int64_t tile) {
  const int64_t first = int64_t(blockIdx.y) * tile;
  return {first, first + tile < seq ? first + tile : seq};
}

template <typename scalar_t, int kVec>
__global__ void __launch_bounds__(HeadwiseLinearLaunchShape::kThreads)
    headwise_linear_fwd_kernel(HeadwiseLinearParams<scalar_t, float> p) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= p.out_width()) return;
  const int64_t b = blockIdx.z;
  const HeadwiseLinearRows rows = headwise_linear_block_rows(p.seq, HeadwiseLinearLaunchShape::kRowsPerBlock);
  const int64_t I = p.in_block, width = p.head_width();
  const typename HeadwiseLinearParams<scalar_t, float>::OutColumn col = p.out_column(c);
  const float* w = p.weight + c * I;  // W[g, o, :]
  const int64_t x_offset = c / p.out_block * I;
  scalar_t* y = p.y + p.out_head_row(b, col.head) * width + col.offset;
  for (int64_t s = rows.first; s < rows.last; ++s) {
    const scalar_t* xg = p.x_row(b, s) + x_offset;
    float sum = 0.f;
    for (int64_t i = 0; i < I; i += kVec) {
      float xv[kVec], wv[kVec];
      load_floats<kVec>(xv, xg + i);
      load_floats<kVec>(wv, w + i);
#pragma unroll
      for (int e = 0; e < kVec; ++e) sum += wv[e] * xv[e];
    }
    y[s * width] = static_cast<scalar_t>(sum);
  }
}

// dx[n, g I + i] = Σ_o W[g, o, i] dy[n, g O + o]: a thread per input column.
template <typename scalar_t>
__global__ void __launch_bounds__(HeadwiseLinearLaunchShape::kThreads)
    headwise_linear_dx_kernel(HeadwiseLinearParams<scalar_t, float> p) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= p.in_width()) return;
  const int64_t b = blockIdx.z;
  const HeadwiseLinearRows rows = headwise_linear_block_rows(p.seq, HeadwiseLinearLaunchShape::kRowsPerBlock);
  const int64_t I = p.in_block, O = p.out_block, g = c / I, i = c - g * I, width = p.head_width();
  const float* w = p.weight + g * O * I + i;  // W[g, :, i], stride I
  const typename HeadwiseLinearParams<scalar_t, float>::OutColumn col = p.out_column(g * O);
  const scalar_t* dy = p.dy + p.out_head_row(b, col.head) * width + col.offset;
  scalar_t* dx = p.dx + b * p.seq * p.in_width() + c;
  for (int64_t s = rows.first; s < rows.last; ++s) {
    float sum = 0.f;
    for (int64_t o = 0; o < O; ++o) sum += w[o * I] * static_cast<float>(dy[s * width + o]);
    dx[s * p.in_width()] = static_cast<scalar_t>(sum);
  }
}

// partial[blockIdx.z * gridDim.y + blockIdx.y] (G*O*I): dW[g, o, i] = Σ dy[n, g O + o] x[n, g I + i]
// over the block's kWeightGradRows time steps of batch row blockIdx.z.
template <typename scalar_t>
__global__ void __launch_bounds__(HeadwiseLinearLaunchShape::kThreads)
    headwise_linear_dw_kernel(HeadwiseLinearParams<scalar_t, float> p, float* partial) {
  const int64_t entries = p.groups * p.out_block * p.in_block;
  const int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= entries) return;
  const int64_t b = blockIdx.z;
  const HeadwiseLinearRows rows = headwise_linear_block_rows(p.seq, HeadwiseLinearLaunchShape::kWeightGradRows);
  const int64_t I = p.in_block, c = e / I, i = e - c * I, width = p.head_width();
  const int64_t x_offset = c / p.out_block * I + i;
  const typename HeadwiseLinearParams<scalar_t, float>::OutColumn col = p.out_column(c);
  const scalar_t* dy = p.dy + p.out_head_row(b, col.head) * width + col.offset;
  float sum = 0.f;
  for (int64_t s = rows.first; s < rows.last; ++s)
    sum += static_cast<float>(dy[s * width]) * static_cast<float>(p.x_row(b, s)[x_offset]);
  partial[(int64_t(blockIdx.z) * gridDim.y + blockIdx.y) * entries + e] = sum;
}

}  // namespace xlstm
