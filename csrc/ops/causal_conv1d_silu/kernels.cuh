// CUDA kernels of the causal conv + SiLU: grid (channel vectors / 32, time tiles, batch), a block of
// 32 x 8 threads; each thread owns kVec consecutive channels (one 16- or 8-byte access where the
// launch code found the layout aligned, else kVec = 1) and walks kStepsPerThread consecutive time
// steps of one batch row, keeping the last K - 1 inputs in registers (a sliding window), so every
// input is loaded about once (plus a halo of K - 1 per thread) and no index is divided.
#pragma once

#include "common/cuda_compat.h"
#include "cuda/block_reduce.cuh"
#include "cuda/vector_access.cuh"
#include "ops/causal_conv1d_silu/math.h"

namespace xlstm {

struct CausalConv1dSiluLaunchShape {
  static constexpr int kChannelThreads = 32, kRowThreads = 8, kStepsPerThread = 16;
  static constexpr int kStepsPerBlock = kRowThreads * kStepsPerThread, kThreads = kChannelThreads * kRowThreads;
  static constexpr int kMaxWidth = 8;  // the kernels are instantiated for K = 1 .. kMaxWidth
  // __launch_bounds__(kThreads, kMinBlocks): left to itself, ptxas held the K = 5 backward to 128
  // registers and spilled 8 bytes; one block per SM as the floor lets it take the 136 it needs.
  static constexpr int kMinBlocks = 1;
};

// The per-thread sliding window over the padded sequence xp of one batch row, kVec channels wide,
// for kernel size K (a template argument, so that every register array is indexed statically):
// window[k] = xp[s + k] (k < K - 1) before step s reads newest = xp[s + K - 1].
template <typename scalar_t, int kVec, int K>
struct CausalConvWindow {
  float w[K][kVec], bias[kVec], window[K > 1 ? K - 1 : 1][kVec];

  __device__ __forceinline__ void load_weights(const CausalConv1dSiluParams<scalar_t, float>& p, int64_t d) {
#pragma unroll
    for (int k = 0; k < K; ++k) load_floats<kVec>(w[k], p.weight + k * p.dim + d);
    load_floats<kVec>(bias, p.bias + d);
  }
  // Fills the window for step s (rows s .. s + K - 2 of xp; those at or past `span` as 0).
  __device__ __forceinline__ void start(const CausalConv1dSiluParams<scalar_t, float>& p, int64_t b, int64_t s,
                                        int64_t d, int64_t span) {
#pragma unroll
    for (int k = 0; k < K - 1; ++k) {
      if (s + k < span) {
        load_floats<kVec>(window[k], p.padded_row(b, s + k) + d);
      } else {
#pragma unroll
        for (int e = 0; e < kVec; ++e) window[k][e] = 0.f;
      }
    }
  }
  // xp[s + k] for k < K: the window, then newest.
  __device__ __forceinline__ float input(int k, int e, const float (&newest)[kVec]) const {
    return k < K - 1 ? window[k < K - 1 ? k : 0][e] : newest[e];
  }
  // pre[s], with the terms in the order of CausalConv1dSiluParams::pre_activation.
  __device__ __forceinline__ void pre_activation(const float (&newest)[kVec], float (&pre)[kVec]) const {
#pragma unroll
    for (int e = 0; e < kVec; ++e) {
      pre[e] = bias[e];
#pragma unroll
      for (int k = 0; k < K; ++k) pre[e] += w[k][e] * input(k, e, newest);
    }
  }
  __device__ __forceinline__ void advance(const float (&newest)[kVec]) {
#pragma unroll
    for (int k = 0; k < K - 1; ++k)
#pragma unroll
      for (int e = 0; e < kVec; ++e) window[k][e] = input(k + 1, e, newest);
  }
};

template <typename scalar_t, int kVec, int K>
__global__ void __launch_bounds__(CausalConv1dSiluLaunchShape::kThreads, CausalConv1dSiluLaunchShape::kMinBlocks)
    causal_conv1d_silu_fwd_kernel(CausalConv1dSiluParams<scalar_t, float> p) {
  using Shape = CausalConv1dSiluLaunchShape;
  const int64_t d = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * kVec;
  const int64_t b = blockIdx.z, first = (int64_t(blockIdx.y) * blockDim.y + threadIdx.y) * Shape::kStepsPerThread;
  if (d >= p.dim || first >= p.seq) return;  // no barriers below
  const int64_t last = first + Shape::kStepsPerThread < p.seq ? first + Shape::kStepsPerThread : p.seq;
  CausalConvWindow<scalar_t, kVec, K> conv;
  conv.load_weights(p, d);
  conv.start(p, b, first, d, p.seq + K - 1);
  for (int64_t t = first; t < last; ++t) {
    float newest[kVec], pre[kVec];
    load_floats<kVec>(newest, p.padded_row(b, t + K - 1) + d);
    conv.pre_activation(newest, pre);
#pragma unroll
    for (int e = 0; e < kVec; ++e) pre[e] = silu(pre[e]);
    store_floats<kVec>(p.y + (b * p.seq + t) * p.dim + d, pre);
    conv.advance(newest);
  }
}

// Steps here are s over the padded length S + K - 1: each thread writes dxp[s] = Σ_k w[k] g[s - k]
// for its steps, computing g[t] = dy silu'(pre[t]) once per t (and for the K - 1 steps before its
// first, which its first dxp need), and adds g[s]'s terms to its weight and bias gradient
// partials, which the block sums over its rows into partial[blockIdx.z * gridDim.y + blockIdx.y]
// ((K + 1, D): K rows of d_weight_t, then d_bias).
template <typename scalar_t, int kVec, int K>
__global__ void __launch_bounds__(CausalConv1dSiluLaunchShape::kThreads, CausalConv1dSiluLaunchShape::kMinBlocks)
    causal_conv1d_silu_bwd_kernel(CausalConv1dSiluBwdParams<scalar_t, float> p, float* partial) {
  using Shape = CausalConv1dSiluLaunchShape;
  XLSTM_DYNAMIC_SHARED(float, scratch);  // kVec x blockDim.y x blockDim.x
  const int64_t d = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * kVec;
  const int64_t S = p.seq, span = S + K - 1, b = blockIdx.z;
  const int64_t first = (int64_t(blockIdx.y) * blockDim.y + threadIdx.y) * Shape::kStepsPerThread;
  const int64_t last = first + Shape::kStepsPerThread < span ? first + Shape::kStepsPerThread : span;
  float dw[K][kVec] = {}, db[kVec] = {};
  if (d < p.dim && first < span) {
    CausalConvWindow<scalar_t, kVec, K> conv;
    conv.load_weights(p, d);
    const int64_t start = first - (K - 1) > 0 ? first - (K - 1) : 0;
    conv.start(p, b, start, d, span);
    float g_before[K > 1 ? K - 1 : 1][kVec] = {};  // g[s - 1 - k], 0 outside [0, S)
    for (int64_t s = start; s < last; ++s) {
      float g[kVec] = {};
      if (s < S) {
        float newest[kVec], pre[kVec], dy[kVec];
        load_floats<kVec>(newest, p.padded_row(b, s + K - 1) + d);
        load_floats<kVec>(dy, p.dy + (b * S + s) * p.dim + d);
        conv.pre_activation(newest, pre);
#pragma unroll
        for (int e = 0; e < kVec; ++e) g[e] = dy[e] * silu_derivative(pre[e]);
        if (s >= first) {
#pragma unroll
          for (int e = 0; e < kVec; ++e) {
#pragma unroll
            for (int k = 0; k < K; ++k) dw[k][e] += g[e] * conv.input(k, e, newest);
            db[e] += g[e];
          }
        }
        conv.advance(newest);
      }
      if (s >= first) {
        float dxp[kVec];
#pragma unroll
        for (int e = 0; e < kVec; ++e) {
          dxp[e] = conv.w[0][e] * g[e];
#pragma unroll
          for (int k = 1; k < K; ++k) dxp[e] += conv.w[k][e] * g_before[k - 1][e];
        }
        store_floats<kVec>(p.d_padded_row(b, s) + d, dxp);
      }
#pragma unroll
      for (int k = K - 2; k > 0; --k)
#pragma unroll
        for (int e = 0; e < kVec; ++e) g_before[k][e] = g_before[k - 1][e];
#pragma unroll
      for (int e = 0; e < kVec; ++e) g_before[0][e] = g[e];
    }
  }
  const int64_t tile = int64_t(blockIdx.z) * gridDim.y + blockIdx.y;
  const auto write_block_totals = [&](float (&values)[kVec], int64_t row) {
    block_column_sums(values, scratch);
    if (threadIdx.y == 0 && d < p.dim)
      for (int e = 0; e < kVec; ++e) partial[(tile * (K + 1) + row) * p.dim + d + e] = values[e];
  };
#pragma unroll
  for (int k = 0; k < K; ++k) write_block_totals(dw[k], k);
  write_block_totals(db, K);
}

}  // namespace xlstm
