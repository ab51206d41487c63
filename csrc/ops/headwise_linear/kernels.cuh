// CUDA kernels of the headwise linear map: a thread per output (or input-gradient) element,
// grid-striding; the weight gradient as per-tile partial sums, a thread per weight entry.
#pragma once

#include "common/cuda_compat.h"
#include "ops/headwise_linear/math.h"

namespace xlstm {

template <typename scalar_t>
__global__ void headwise_linear_fwd_kernel(HeadwiseLinearParams<scalar_t, float> p) {
  const int64_t total = p.rows() * p.out_width();
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = e / p.out_width(), c = e % p.out_width();
    p.y[p.out_index(n, c)] = static_cast<scalar_t>(p.output(n, c));
  }
}

template <typename scalar_t>
__global__ void headwise_linear_dx_kernel(HeadwiseLinearParams<scalar_t, float> p) {
  const int64_t total = p.rows() * p.in_width();
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x)
    p.dx[e] = static_cast<scalar_t>(p.input_grad(e / p.in_width(), e % p.in_width()));
}

// partial[blockIdx.y] (G*O*I): dW over the block's rows.
template <typename scalar_t>
__global__ void headwise_linear_dw_kernel(HeadwiseLinearParams<scalar_t, float> p, int64_t rows_per_block,
                                          float* partial) {
  const int64_t entries = p.groups * p.out_block * p.in_block;
  const int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (e >= entries) return;
  const int64_t first = blockIdx.y * rows_per_block;
  const int64_t last = first + rows_per_block < p.rows() ? first + rows_per_block : p.rows();
  partial[blockIdx.y * entries + e] = p.weight_grad(e, first, last);
}

}  // namespace xlstm
