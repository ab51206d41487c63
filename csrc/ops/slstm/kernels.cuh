// CUDA kernels of the sLSTM: one persistent block per (head, tile of kSlstmBatchTile batch rows)
// runs the whole sequence, so a step costs no launch and no host round trip. R (or, backward, Rᵀ)
// stays on chip across the steps where it fits: in shared memory, or split between registers (the
// first kSlstmRegisterRows rows of each thread's slice) and shared memory, which takes fp32 heads
// of 128 units (256 KiB of R) on sm_90. Larger heads read R from L2.
#pragma once

#include "ops/slstm/math.h"
#include "ops/slstm/traits.h"

namespace xlstm {

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

// Thread per gate column gj. With R split, a thread owns exactly one column (blockDim >= 4·DH)
// and holds its first kSlstmRegisterRows entries in registers; shared memory has rows from there on.
template <typename scalar_t, SlstmRPlace kPlace>
__global__ void __launch_bounds__(slstm_max_threads(kPlace))
    slstm_fwd_kernel(SlstmParams<scalar_t, float> p) {
  constexpr int kRegRows = slstm_register_rows(kPlace);
  XLSTM_DYNAMIC_SHARED(float, smem);
  const auto [DH, G, tid, T, rows, h, b0] = slstm_block(p);
  const int k_first = kRegRows;                        // first row of R outside registers
  const bool on_chip = kPlace != SlstmRPlace::kGlobal;
  float* R_s = smem;
  float* h_s = smem + (on_chip ? (DH - k_first) * G : 0);  // h[t-1] of the tile
  float* raw_s = h_s + kSlstmBatchTile * DH;               // the step's pre-activations
  const float* R_head = p.R + h * DH * G;
  const float* R_rest = on_chip ? R_s : R_head + k_first * G;  // rows k_first.. of R
  const float* bias = p.bias + h * G;
  float R_reg[kRegRows > 0 ? kRegRows : 1];
  for (int k = 0; k < kRegRows; ++k) R_reg[k] = tid < G ? R_head[k * G + tid] : 0.f;
  if (on_chip)
    for (int idx = tid; idx < (DH - k_first) * G; idx += T) R_s[idx] = R_head[k_first * G + idx];
  for (int idx = tid; idx < kSlstmBatchTile * DH; idx += T) {
    const int bb = idx / DH, j = idx % DH;
    h_s[idx] = bb < rows ? p.trace[p.trace_index(0, b0 + bb, 0, h) + j] : 0.f;
  }
  __syncthreads();

  for (int64_t t = 0; t < p.seq; ++t) {
    // raw[b, gj] = (bias + Σ_k h[b, k] R[k, gj]) + x: a thread per column, the tile's rows at once; x
    // last, so that a large x (gates of 1e4) costs one rounding at its magnitude, not one per product.
    for (int gj = tid; gj < G; gj += T) {
      float acc[kSlstmBatchTile];
#pragma unroll
      for (int bb = 0; bb < kSlstmBatchTile; ++bb) acc[bb] = bias[gj];
#pragma unroll
      for (int k = 0; k < kRegRows; ++k)
#pragma unroll
        for (int bb = 0; bb < kSlstmBatchTile; ++bb) acc[bb] += h_s[bb * DH + k] * R_reg[k];
      for (int k = k_first; k < DH; ++k) {
        const float r = R_rest[(k - k_first) * G + gj];
#pragma unroll
        for (int bb = 0; bb < kSlstmBatchTile; ++bb) acc[bb] += h_s[bb * DH + k] * r;
      }
#pragma unroll
      for (int bb = 0; bb < kSlstmBatchTile; ++bb)
        raw_s[bb * G + gj] =
            acc[bb] +
            (bb < rows ? static_cast<float>(p.x[(b0 + bb) * p.x_stride_b + t * p.x_stride_t + h * p.x_stride_h + gj])
                       : 0.f);
    }
    __syncthreads();
    for (int idx = tid; idx < rows * DH; idx += T) {
      const int bb = idx / DH, j = idx % DH;
      const int64_t b = b0 + bb;
      const float* raw = raw_s + bb * G;
      const float n_prev = p.trace[p.trace_index(2, b, t, h) + j];
      const SlstmGates<float> g = slstm_gates(raw[j], raw[DH + j], raw[2 * DH + j], raw[3 * DH + j], n_prev,
                                              p.trace[p.trace_index(3, b, t, h) + j]);
      const SlstmCell<float> cell = slstm_cell(g, p.trace[p.trace_index(1, b, t, h) + j], n_prev);
      p.trace[p.trace_index(0, b, t + 1, h) + j] = cell.h;
      p.trace[p.trace_index(1, b, t + 1, h) + j] = cell.c;
      p.trace[p.trace_index(2, b, t + 1, h) + j] = cell.n;
      slstm_store_gates(p.trace + p.trace_index(3, b, t + 1, h), p.plane(), j, g);
      p.h_out[((b * p.seq + t) * p.heads + h) * DH + j] = static_cast<scalar_t>(cell.h);
      h_s[idx] = cell.h;
    }
    __syncthreads();
  }
}

// Thread per (row, unit) for the cell; for dh through R, thread per (gate, unit k) summing that
// gate's DH columns of Rᵀ for every row of the tile, then the four gates' partial sums added. With
// Rᵀ split, a thread holds the first kSlstmRegisterRows entries of its (gate, k) slice in registers.
template <typename scalar_t, SlstmRPlace kPlace>
__global__ void __launch_bounds__(slstm_max_threads(kPlace))
    slstm_bwd_kernel(SlstmBwdParams<scalar_t, float> p) {
  constexpr int kRegRows = slstm_register_rows(kPlace);
  XLSTM_DYNAMIC_SHARED(float, smem);
  const auto [DH, G, tid, T, rows, h, b0] = slstm_block(p);
  const int64_t BND = p.batch * p.heads * DH;
  const int k_first = kRegRows;  // first row of each gate's slice of Rᵀ outside registers
  const int rest_rows = DH - k_first;
  const bool on_chip = kPlace != SlstmRPlace::kGlobal;
  float* RT_s = smem;                                          // [gate][row - k_first][k]
  float* dr_s = smem + (on_chip ? 4 * rest_rows * DH : 0);     // the step's d_raw, (tile, G)
  float* dh_s = dr_s + kSlstmBatchTile * G;                    // gradient reaching h[t] through R
  float* dc_s = dh_s + kSlstmBatchTile * DH;
  float* dn_s = dc_s + kSlstmBatchTile * DH;
  float* part_s = dn_s + kSlstmBatchTile * DH;                 // [gate][row][k] partial sums
  const float* RT_head = p.RT + h * G * DH;
  // Slots (gate, k) of the dh pass, slot = gate·DH + k; with Rᵀ split each thread has at most one.
  float R_reg[kRegRows > 0 ? kRegRows : 1];
  for (int j = 0; j < kRegRows; ++j) R_reg[j] = tid < G ? RT_head[(tid / DH * DH + j) * DH + tid % DH] : 0.f;
  if (on_chip)
    for (int idx = tid; idx < 4 * rest_rows * DH; idx += T) {
      const int g = idx / (rest_rows * DH), j = idx / DH % rest_rows, kk = idx % DH;
      RT_s[idx] = RT_head[(g * DH + k_first + j) * DH + kk];
    }
  // Rows k_first.. of each gate's slice: [gate][row - k_first][k] in either place (k_first = 0 off chip).
  const float* RT_rest = on_chip ? RT_s : RT_head;
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
      const float c_prev = p.trace[p.trace_index(1, b, t, h) + j];
      const float n_prev = p.trace[p.trace_index(2, b, t, h) + j];
      const SlstmGates<float> g = slstm_load_gates(p.trace + p.trace_index(3, b, t + 1, h), p.plane(), j);
      const SlstmCellGrads<float> d = slstm_cell_backward(
          g, c_prev, n_prev, static_cast<float>(p.d_h[step * DH + j]) + dh_s[idx], dc_s[idx], dn_s[idx]);
#pragma unroll
      for (int gt = 0; gt < 4; ++gt) {
        dr_s[bb * G + gt * DH + j] = d.d_raw[gt];
        p.d_raw[step * G + gt * DH + j] = d.d_raw[gt];
      }
      dc_s[idx] = d.dc_prev;
      dn_s[idx] = d.dn_prev;
    }
    __syncthreads();
    // dh[t-1, k] = Σ_gj R[k, gj] d_raw[gj], as four per-gate partial sums.
    for (int slot = tid; slot < G; slot += T) {
      const int gate = slot / DH, k = slot % DH;
      float acc[kSlstmBatchTile];
#pragma unroll
      for (int bb = 0; bb < kSlstmBatchTile; ++bb) acc[bb] = 0.f;
      const float* dr_gate = dr_s + gate * DH;
#pragma unroll
      for (int j = 0; j < kRegRows; ++j)
#pragma unroll
        for (int bb = 0; bb < kSlstmBatchTile; ++bb) acc[bb] += R_reg[j] * dr_gate[bb * G + j];
      for (int j = k_first; j < DH; ++j) {
        const float r = RT_rest[(gate * rest_rows + j - k_first) * DH + k];
#pragma unroll
        for (int bb = 0; bb < kSlstmBatchTile; ++bb) acc[bb] += r * dr_gate[bb * G + j];
      }
#pragma unroll
      for (int bb = 0; bb < kSlstmBatchTile; ++bb) part_s[(gate * kSlstmBatchTile + bb) * DH + k] = acc[bb];
    }
    __syncthreads();
    for (int idx = tid; idx < rows * DH; idx += T) {
      const int bb = idx / DH, kk = idx % DH;
      float total = 0.f;
#pragma unroll
      for (int gt = 0; gt < 4; ++gt) total += part_s[(gt * kSlstmBatchTile + bb) * DH + kk];
      dh_s[idx] = total;
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
