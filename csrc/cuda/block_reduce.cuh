// Block-wide sums for kernels whose block size is a multiple of the warp size.
#pragma once

#include "common/cuda_compat.h"

namespace xlstm {

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = warpSize / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sums N values over the block; every thread gets the totals. `scratch` holds N * 32 floats.
// Also acts as a block barrier for everything written before it.
template <int N>
__device__ __forceinline__ void block_sum(float (&v)[N], float* scratch) {
  const int lane = threadIdx.x % warpSize, warp = threadIdx.x / warpSize;
  const int warps = blockDim.x / warpSize;
  for (int e = 0; e < N; ++e) v[e] = warp_sum(v[e]);
  __syncthreads();  // scratch may still be read by the previous call
  if (lane == 0)
    for (int e = 0; e < N; ++e) scratch[e * 32 + warp] = v[e];
  __syncthreads();
  for (int e = 0; e < N; ++e) {
    float total = 0.f;
    for (int w = 0; w < warps; ++w) total += scratch[e * 32 + w];
    v[e] = total;
  }
}

// Sums each of N values per thread over the rows (threadIdx.y) of a 2-D block, for each column
// (threadIdx.x): the threads in row 0 get their column's totals, the others 0 (two barriers in
// all). `scratch` holds N * blockDim.x * blockDim.y floats. Every thread of the block must call it.
template <int N>
__device__ __forceinline__ void block_column_sums(float (&v)[N], float* scratch) {
  const unsigned threads = blockDim.x * blockDim.y, self = threadIdx.y * blockDim.x + threadIdx.x;
  for (int e = 0; e < N; ++e) scratch[e * threads + self] = v[e];
  __syncthreads();
  for (int e = 0; e < N; ++e) {
    float total = 0.f;
    if (threadIdx.y == 0)
      for (unsigned y = 0; y < blockDim.y; ++y) total += scratch[e * threads + y * blockDim.x + threadIdx.x];
    v[e] = total;
  }
  __syncthreads();  // scratch may be reused by the next call
}

}  // namespace xlstm
