// fixture_scale's CUDA kernels: grid-stride elementwise passes; dw per (feature, tile of rows) into
// partial[blockIdx.y], summed on the host in a fixed order.
#pragma once

#include "common/cuda_compat.h"
#include "ops/fixture_scale/math.h"

namespace xlstm {

template <typename scalar_t>
__global__ void fixture_scale_fwd_kernel(FixtureScaleParams<scalar_t, float> p) {
  const int64_t total = p.rows * p.dim;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x)
    p.y[e] = static_cast<scalar_t>(static_cast<float>(p.x[e]) * p.w[e % p.dim]);
}

template <typename scalar_t>
__global__ void fixture_scale_dx_kernel(FixtureScaleParams<scalar_t, float> p) {
  const int64_t total = p.rows * p.dim;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x)
    p.dx[e] = static_cast<scalar_t>(static_cast<float>(p.dy[e]) * p.w[e % p.dim]);
}

template <typename scalar_t>
__global__ void fixture_scale_dw_kernel(FixtureScaleParams<scalar_t, float> p, int64_t rows_per_tile, float* partial) {
  const int64_t d = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (d >= p.dim) return;
  const int64_t first = blockIdx.y * rows_per_tile;
  const int64_t last = first + rows_per_tile < p.rows ? first + rows_per_tile : p.rows;
  float sum = 0.f;
  for (int64_t r = first; r < last; ++r)
    sum += static_cast<float>(p.dy[r * p.dim + d]) * static_cast<float>(p.x[r * p.dim + d]);
  partial[blockIdx.y * p.dim + d] = sum;
}

}  // namespace xlstm
