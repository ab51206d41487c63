// CUDA kernels of the sLSTM: one persistent block per (head, tile of kSlstmBatchTile batch rows)
// runs the whole sequence, so a step costs no launch and no host round trip. R (or, backward, Rᵀ)
// stays on chip across the steps where it fits: in shared memory, or split between registers (the
// first kSlstmRegisterRows rows of each thread's slice) and shared memory, which takes fp32 heads
// of 128 units (256 KiB of R) on sm_90. Larger heads read R from L2, or, forward on sm_90, run
// across a thread-block cluster that holds R in the shared memory of its blocks.
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

// What a block of a cluster works on (SlstmClusterShape): head h, batch rows b0 .. b0 + rows - 1,
// units rank·U .. rank·U + U - 1; and the cell's thread layout: thread tid < rows·U runs the cell
// of unit `unit` in row b0 + cell_row.
struct SlstmClusterBlock {
  int DH, G, U, columns, rank, blocks, rows, tid, cell_row, unit;
  int64_t h, b0;
  bool cell_thread;
  // R's column of the block's column c (gate-major: c = gate·U + u).
  XLSTM_HOST_DEVICE int r_column(int c) const { return c / U * DH + rank * U + c % U; }
};

template <typename scalar_t>
__device__ __forceinline__ SlstmClusterBlock slstm_cluster_block(const SlstmParams<scalar_t, float>& p,
                                                                 const SlstmClusterShape& shape) {
  SlstmClusterBlock k;
  k.DH = static_cast<int>(p.dh);
  k.G = kSlstmGates * k.DH;
  k.U = shape.units;
  k.columns = kSlstmGates * k.U;
  k.rank = static_cast<int>(__clusterRelativeBlockRank());
  k.blocks = static_cast<int>(__clusterSizeInBlocks());
  k.h = blockIdx.x / k.blocks;
  k.b0 = static_cast<int64_t>(blockIdx.y) * kSlstmBatchTile;
  k.rows = static_cast<int>(p.batch - k.b0 < kSlstmBatchTile ? p.batch - k.b0 : kSlstmBatchTile);
  k.tid = static_cast<int>(threadIdx.x);
  k.cell_thread = k.tid < k.rows * k.U;
  k.cell_row = k.tid / k.U;
  k.unit = k.rank * k.U + k.tid % k.U;
  return k;
}

// The forward across a thread-block cluster. Per step: partial products over k (a thread per
// (column, k part)) → the cell of the block's units, whose c, n, m stay in registers → h written
// into every block's next h buffer (distributed shared memory) → one cluster barrier, split so
// that the trace and output stores and the next step's x load overlap the wait.
template <typename scalar_t>
__global__ void __launch_bounds__(kSlstmClusterMaxThreads, 1)  // one block per SM: its shared memory holds R
    slstm_fwd_cluster_kernel(SlstmParams<scalar_t, float> p, SlstmClusterShape shape) {
#if defined(XLSTM_SIM) || !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
  constexpr int kRows = kSlstmBatchTile;
  XLSTM_DYNAMIC_SHARED(float, smem);
  const SlstmClusterBlock k = slstm_cluster_block(p, shape);
  const int DH = k.DH, G = k.G, columns = k.columns, KS = shape.k_split, KR = shape.shared_rows, tid = k.tid;
  float* R_s = smem;                     // [k < KR][column]
  float* h_s = R_s + KR * columns;       // [step parity][k][row]: h[t-1] of the tile
  float* part_s = h_s + 2 * DH * kRows;  // [k part][row][column]
  const float* R_head = p.R + k.h * DH * G;
  for (int idx = tid; idx < KR * columns; idx += blockDim.x) R_s[idx] = R_head[idx / columns * G + k.r_column(idx % columns)];
  // Rows past the batch stay 0 in both buffers; the others of buffer 1 come from the peers.
  for (int idx = tid; idx < DH * kRows; idx += blockDim.x) {
    const int j = idx / kRows, bb = idx % kRows;
    h_s[idx] = bb < k.rows ? p.trace[p.trace_index(0, k.b0 + bb, 0, k.h) + j] : 0.f;
    if (bb >= k.rows) h_s[DH * kRows + idx] = 0.f;
  }
  const int64_t b = k.b0 + k.cell_row;
  float c_state = 0.f, n_state = 0.f, m_state = 0.f, bias[kSlstmGates], x_gate[kSlstmGates];
  const auto load_x = [&](int64_t t) {
    const scalar_t* x = p.x + b * p.x_stride_b + t * p.x_stride_t + k.h * p.x_stride_h + k.unit;
#pragma unroll
    for (int gate = 0; gate < kSlstmGates; ++gate) x_gate[gate] = static_cast<float>(x[gate * DH]);
  };
  if (k.cell_thread) {
    c_state = p.trace[p.trace_index(1, b, 0, k.h) + k.unit];
    n_state = p.trace[p.trace_index(2, b, 0, k.h) + k.unit];
    m_state = p.trace[p.trace_index(3, b, 0, k.h) + k.unit];
#pragma unroll
    for (int gate = 0; gate < kSlstmGates; ++gate) bias[gate] = p.bias[k.h * G + gate * DH + k.unit];
    load_x(0);
  }
  const bool product_thread = tid < KS * columns;
  const int pc = tid % columns, q = tid / columns;
  const float* R_global = R_head + k.r_column(pc);
  // Every block has started (its shared memory may be written by peers) and this one's is filled.
  __cluster_barrier_arrive();
  __cluster_barrier_wait();

  for (int64_t t = 0; t < p.seq; ++t) {
    const float* h_prev = h_s + (t % 2) * DH * kRows;
    float* h_next = h_s + ((t + 1) % 2) * DH * kRows;
    if (product_thread) {
      float acc[kRows] = {};
      int j = q;
      for (; j < KR; j += KS) {
        const float r = R_s[j * columns + pc];
#pragma unroll
        for (int bb = 0; bb < kRows; ++bb) acc[bb] += h_prev[j * kRows + bb] * r;
      }
      for (; j < DH; j += KS) {
        const float r = R_global[j * G];
#pragma unroll
        for (int bb = 0; bb < kRows; ++bb) acc[bb] += h_prev[j * kRows + bb] * r;
      }
#pragma unroll
      for (int bb = 0; bb < kRows; ++bb) part_s[(q * kRows + bb) * columns + pc] = acc[bb];
    }
    __syncthreads();
    SlstmCell<float> cell{};
    SlstmGates<float> g{};
    if (k.cell_thread) {
      float raw[kSlstmGates];
#pragma unroll
      for (int gate = 0; gate < kSlstmGates; ++gate) {
        raw[gate] = x_gate[gate] + bias[gate];
        for (int part = 0; part < KS; ++part)
          raw[gate] += part_s[(part * kRows + k.cell_row) * columns + gate * k.U + tid % k.U];
      }
      g = slstm_gates(raw[0], raw[1], raw[2], raw[3], n_state, m_state);
      cell = slstm_cell(g, c_state, n_state);
      for (int peer = 0; peer < k.blocks; ++peer)
        static_cast<float*>(__cluster_map_shared_rank(h_next, peer))[k.unit * kRows + k.cell_row] = cell.h;
    }
    __cluster_barrier_arrive();
    if (k.cell_thread) {
      p.trace[p.trace_index(0, b, t + 1, k.h) + k.unit] = cell.h;
      p.trace[p.trace_index(1, b, t + 1, k.h) + k.unit] = cell.c;
      p.trace[p.trace_index(2, b, t + 1, k.h) + k.unit] = cell.n;
      slstm_store_gates(p.trace + p.trace_index(3, b, t + 1, k.h), p.plane(), k.unit, g);
      p.h_out[((b * p.seq + t) * p.heads + k.h) * DH + k.unit] = static_cast<scalar_t>(cell.h);
      c_state = cell.c;
      n_state = cell.n;
      m_state = cell.m;
      if (t + 1 < p.seq) load_x(t + 1);
    }
    // The peers' h of this step has arrived; no block exits while a peer may still write to it.
    __cluster_barrier_wait();
  }
#endif
}

// The backward across a thread-block cluster, on the forward's trace. Per step (t descending):
// the cell's gradients of the block's units (dc, dn in registers) → d_raw of its columns →
// partial sums over them of R d_raw for every k (a thread per (k, column part)) → each k's sum
// written to the block that owns unit k (distributed shared memory) → one cluster barrier; the
// owner adds the blocks' sums at the next step, whose trace and dh it loaded while waiting. R's slice is [column][k] here, so that the
// threads of a warp (consecutive k) read consecutive words; rows past shared_rows come from Rᵀ.
template <typename scalar_t>
__global__ void __launch_bounds__(kSlstmClusterMaxThreads, 1)  // one block per SM: its shared memory holds R
    slstm_bwd_cluster_kernel(SlstmBwdParams<scalar_t, float> p, SlstmClusterShape shape) {
#if defined(XLSTM_SIM) || !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
  constexpr int kRows = kSlstmBatchTile;
  XLSTM_DYNAMIC_SHARED(float, smem);
  const SlstmClusterBlock k = slstm_cluster_block(p, shape);
  const int DH = k.DH, G = k.G, U = k.U, columns = k.columns, KQ = shape.k_split, KR = shape.shared_rows;
  const int tid = k.tid, T = static_cast<int>(blockDim.x);
  const int64_t BND = p.batch * p.heads * DH;
  float* R_s = smem;                         // [column][k < KR]
  float* dr_s = R_s + KR * columns;          // [column][row]: the step's d_raw
  float* part_s = dr_s + kRows * columns;    // [column part][row][k]
  float* recv_s = part_s + KQ * kRows * DH;  // [step parity][source rank][row][unit - rank·U]
  const float* RT_head = p.RT + k.h * G * DH;
  for (int idx = tid; idx < columns * KR; idx += T) R_s[idx] = RT_head[k.r_column(idx / KR) * DH + idx % KR];
  for (int idx = tid; idx < kRows * columns; idx += T) dr_s[idx] = 0.f;  // rows past the batch stay 0
  const int64_t b = k.b0 + k.cell_row, at = b * p.heads * DH + k.h * DH + k.unit;
  float dh_through_r = 0.f, dc = 0.f, dn = 0.f;
  if (k.cell_thread) {
    dh_through_r = p.d_last[at];
    dc = p.d_last[BND + at];
    dn = p.d_last[2 * BND + at];
  }
  // What the cell reads of step t, loaded a step ahead (between the barrier's arrive and wait).
  struct StepInputs {
    SlstmGates<float> g;
    float c_prev, n_prev, d_h;
  } in{};
  const auto load_step = [&](int64_t t) {
    in.c_prev = p.trace[p.trace_index(1, b, t, k.h) + k.unit];
    in.n_prev = p.trace[p.trace_index(2, b, t, k.h) + k.unit];
    in.g = slstm_load_gates(p.trace + p.trace_index(3, b, t + 1, k.h), p.plane(), k.unit);
    in.d_h = static_cast<float>(p.d_h[((b * p.seq + t) * p.heads + k.h) * DH + k.unit]);
  };
  if (k.cell_thread) load_step(p.seq - 1);
  // The sum of the blocks' contributions to this thread's unit, from buffer `parity`.
  const auto received = [&](int64_t parity) {
    float total = 0.f;
    for (int src = 0; src < k.blocks; ++src)
      total += recv_s[((parity * k.blocks + src) * kRows + k.cell_row) * U + k.tid % U];
    return total;
  };
  __cluster_barrier_arrive();
  __cluster_barrier_wait();

  for (int64_t t = p.seq - 1; t >= 0; --t) {
    if (k.cell_thread) {
      if (t + 1 < p.seq) dh_through_r = received((t + 1) % 2);
      const int64_t step = (b * p.seq + t) * p.heads + k.h;
      const SlstmCellGrads<float> d = slstm_cell_backward(in.g, in.c_prev, in.n_prev, in.d_h + dh_through_r, dc, dn);
#pragma unroll
      for (int gate = 0; gate < kSlstmGates; ++gate) {
        dr_s[(gate * U + k.tid % U) * kRows + k.cell_row] = d.d_raw[gate];
        p.d_raw[step * G + gate * DH + k.unit] = d.d_raw[gate];
      }
      dc = d.dc_prev;
      dn = d.dn_prev;
    }
    __syncthreads();
    for (int slot = tid; slot < KQ * DH; slot += T) {
      const int j = slot % DH, q = slot / DH;
      float acc[kRows] = {};
      const auto add = [&](int c, float r) {
#pragma unroll
        for (int bb = 0; bb < kRows; ++bb) acc[bb] += r * dr_s[c * kRows + bb];
      };
      if (j < KR) {
        for (int c = q; c < columns; c += KQ) add(c, R_s[c * KR + j]);
      } else {
        for (int c = q; c < columns; c += KQ) add(c, RT_head[k.r_column(c) * DH + j]);
      }
#pragma unroll
      for (int bb = 0; bb < kRows; ++bb) part_s[(q * kRows + bb) * DH + j] = acc[bb];
    }
    __syncthreads();
    float* recv_next = recv_s + (t % 2) * k.blocks * kRows * U;
    for (int idx = tid; idx < k.rows * DH; idx += T) {
      const int bb = idx / DH, j = idx % DH;
      float total = 0.f;
      for (int q = 0; q < KQ; ++q) total += part_s[(q * kRows + bb) * DH + j];
      static_cast<float*>(__cluster_map_shared_rank(recv_next, j / U))[(k.rank * kRows + bb) * U + j % U] = total;
    }
    __cluster_barrier_arrive();
    if (k.cell_thread && t > 0) load_step(t - 1);
    __cluster_barrier_wait();
  }
  if (k.cell_thread) {
    p.d_first[at] = received(0);
    p.d_first[BND + at] = dc;
    p.d_first[2 * BND + at] = dn;
  }
#endif
}

}  // namespace xlstm
