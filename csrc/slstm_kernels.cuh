// CUDA kernels of the sLSTM: one persistent block per (head, tile of kSlstmBatchTile batch rows)
// runs the whole sequence, so a step costs no launch and no host round trip. R (or, backward, Rᵀ)
// stays in shared memory when it fits (kRShared) and is read from L2 otherwise.
#pragma once

#include "slstm.h"

namespace xlstm {

constexpr int kSlstmBatchTile = 4;

// Dynamic shared memory, in floats: [R or Rᵀ if shared] + per-tile buffers.
inline int64_t slstm_fwd_smem_floats(int64_t dh, bool r_shared) {
  return (r_shared ? 4 * dh * dh : 0) + kSlstmBatchTile * 5 * dh;  // h, raw
}
inline int64_t slstm_bwd_smem_floats(int64_t dh, bool r_shared) {
  return (r_shared ? 4 * dh * dh : 0) + kSlstmBatchTile * 7 * dh;  // d_raw, dh, dc, dn
}

// What a block works on: head h, batch rows b0 .. b0 + rows - 1; and its thread layout.
struct SlstmBlock {
  int DH, G, tid, T, rows;
  int64_t h, b0;
};

template <typename scalar_t>
__device__ __forceinline__ SlstmBlock slstm_block(const SlstmParams<scalar_t, float>& p) {
  const int64_t b0 = static_cast<int64_t>(blockIdx.y) * kSlstmBatchTile;
  const int rows = static_cast<int>(p.batch - b0 < kSlstmBatchTile ? p.batch - b0 : kSlstmBatchTile);
  const int DH = static_cast<int>(p.dh);
  return {DH, 4 * DH, static_cast<int>(threadIdx.x), static_cast<int>(blockDim.x), rows, blockIdx.x, b0};
}

template <typename scalar_t, bool kRShared>
__global__ void slstm_fwd_kernel(SlstmParams<scalar_t, float> p) {
  XLSTM_DYNAMIC_SHARED(float, smem);
  const auto [DH, G, tid, T, rows, h, b0] = slstm_block(p);
  float* R_s = smem;
  float* h_s = smem + (kRShared ? DH * G : 0);  // h[t-1] of the tile
  float* raw_s = h_s + kSlstmBatchTile * DH;    // the step's pre-activations
  const float* R = kRShared ? R_s : p.R + h * DH * G;
  const float* bias = p.bias + h * G;
  if (kRShared)
    for (int idx = tid; idx < DH * G; idx += T) R_s[idx] = p.R[h * DH * G + idx];
  for (int idx = tid; idx < kSlstmBatchTile * DH; idx += T) {
    const int bb = idx / DH, j = idx % DH;
    h_s[idx] = bb < rows ? p.trace[p.trace_index(0, b0 + bb, 0, h) + j] : 0.f;
  }
  __syncthreads();

  for (int64_t t = 0; t < p.seq; ++t) {
    // raw[b, gj] = x + bias + Σ_k h[b, k] R[k, gj]: a thread per column, the tile's rows at once.
    for (int gj = tid; gj < G; gj += T) {
      float acc[kSlstmBatchTile];
#pragma unroll
      for (int bb = 0; bb < kSlstmBatchTile; ++bb)
        acc[bb] = bias[gj] + (bb < rows ? static_cast<float>(p.x[(b0 + bb) * p.x_stride_b + t * p.x_stride_t + h * G + gj]) : 0.f);
      for (int k = 0; k < DH; ++k) {
        const float r = R[k * G + gj];
#pragma unroll
        for (int bb = 0; bb < kSlstmBatchTile; ++bb) acc[bb] += h_s[bb * DH + k] * r;
      }
#pragma unroll
      for (int bb = 0; bb < kSlstmBatchTile; ++bb) raw_s[bb * G + gj] = acc[bb];
    }
    __syncthreads();
    for (int idx = tid; idx < rows * DH; idx += T) {
      const int bb = idx / DH, j = idx % DH;
      const int64_t b = b0 + bb;
      const float* raw = raw_s + bb * G;
      const float n_prev = p.trace[p.trace_index(2, b, t, h) + j];
      const SlstmGates<float> g =
          slstm_gates(raw[j], raw[DH + j], raw[2 * DH + j], raw[3 * DH + j], n_prev, p.trace[p.trace_index(3, b, t, h) + j]);
      const SlstmCell<float> cell = slstm_cell(g, p.trace[p.trace_index(1, b, t, h) + j], n_prev);
      p.trace[p.trace_index(0, b, t + 1, h) + j] = cell.h;
      p.trace[p.trace_index(1, b, t + 1, h) + j] = cell.c;
      p.trace[p.trace_index(2, b, t + 1, h) + j] = cell.n;
      p.trace[p.trace_index(3, b, t + 1, h) + j] = cell.m;
#pragma unroll
      for (int gate = 0; gate < 4; ++gate) p.trace[p.trace_index(4 + gate, b, t + 1, h) + j] = raw[gate * DH + j];
      p.h_out[((b * p.seq + t) * p.heads + h) * DH + j] = static_cast<scalar_t>(cell.h);
      h_s[idx] = cell.h;
    }
    __syncthreads();
  }
}

template <typename scalar_t, bool kRShared>
__global__ void slstm_bwd_kernel(SlstmBwdParams<scalar_t, float> p) {
  XLSTM_DYNAMIC_SHARED(float, smem);
  const auto [DH, G, tid, T, rows, h, b0] = slstm_block(p);
  const int64_t BND = p.batch * p.heads * DH;
  float* RT_s = smem;
  float* dr_s = smem + (kRShared ? G * DH : 0);   // the step's d_raw, (tile, G)
  float* dh_s = dr_s + kSlstmBatchTile * G;       // gradient reaching h[t] through R
  float* dc_s = dh_s + kSlstmBatchTile * DH;
  float* dn_s = dc_s + kSlstmBatchTile * DH;
  const float* RT = kRShared ? RT_s : p.RT + h * G * DH;
  if (kRShared)
    for (int idx = tid; idx < G * DH; idx += T) RT_s[idx] = p.RT[h * G * DH + idx];
  for (int idx = tid; idx < kSlstmBatchTile * G; idx += T) dr_s[idx] = 0.f;  // rows past the batch stay 0
  for (int idx = tid; idx < rows * DH; idx += T) {
    const int64_t at = (b0 + idx / DH) * p.heads * DH + h * DH + idx % DH;
    dh_s[idx] = p.d_last[at];
    dc_s[idx] = p.d_last[BND + at];
    dn_s[idx] = p.d_last[2 * BND + at];
  }
  __syncthreads();

  for (int64_t t = p.seq - 1; t >= 0; --t) {
    for (int idx = tid; idx < rows * DH; idx += T) {
      const int bb = idx / DH, j = idx % DH;
      const int64_t b = b0 + bb, step = (b * p.seq + t) * p.heads + h;
      const float* raw_i = p.trace + p.trace_index(4, b, t + 1, h);
      const int64_t plane = p.plane();
      const float c_prev = p.trace[p.trace_index(1, b, t, h) + j];
      const float n_prev = p.trace[p.trace_index(2, b, t, h) + j];
      const float raw_f = raw_i[plane + j];
      const SlstmGates<float> g = slstm_gates(raw_i[j], raw_f, raw_i[2 * plane + j], raw_i[3 * plane + j], n_prev,
                                              p.trace[p.trace_index(3, b, t, h) + j]);
      const SlstmCellGrads<float> d = slstm_cell_backward(
          raw_f, g, c_prev, n_prev, static_cast<float>(p.d_h[step * DH + j]) + dh_s[idx], dc_s[idx], dn_s[idx]);
#pragma unroll
      for (int gate = 0; gate < 4; ++gate) {
        dr_s[bb * G + gate * DH + j] = d.d_raw[gate];
        p.d_raw[step * G + gate * DH + j] = d.d_raw[gate];
      }
      dc_s[idx] = d.dc_prev;
      dn_s[idx] = d.dn_prev;
    }
    __syncthreads();
    // dh[t-1, k] = Σ_gj R[k, gj] d_raw[gj]: a thread per (row, k), Rᵀ read along k.
    for (int idx = tid; idx < rows * DH; idx += T) {
      const int bb = idx / DH, k = idx % DH;
      float acc = 0.f;
      for (int gj = 0; gj < G; ++gj) acc += RT[gj * DH + k] * dr_s[bb * G + gj];
      dh_s[idx] = acc;
    }
    __syncthreads();
  }
  for (int idx = tid; idx < rows * DH; idx += T) {
    const int64_t at = (b0 + idx / DH) * p.heads * DH + h * DH + idx % DH;
    p.d_first[at] = dh_s[idx];
    p.d_first[BND + at] = dc_s[idx];
    p.d_first[2 * BND + at] = dn_s[idx];
  }
}

}  // namespace xlstm
