// The sLSTM's CPU forward loop over one head and a tile of batch rows, shared by the sequence op
// (cpu.cpp) and the sLSTM layer's fused generation step (ops/slstm_layer_step). CPU kernel files
// only: include cpu/vector_math.h first.
#pragma once

#include <cstdint>

#include "cpu/small_gemm.h"
#include "ops/slstm/math.h"

namespace xlstm {

// Batch rows per tile: h R of a tile is one register-blocked product per step.
constexpr int64_t kSlstmCpuBatchTile = 8;

// CPU forward for one head and a tile of `rows` batch rows from b0, over the whole sequence.
// h R for the tile's rows is one register-blocked product per step; the cell update runs as a loop
// over units that the compiler vectorizes. raw: rows*4*DH scratch.
template <typename scalar_t, typename acc_t>
inline void slstm_fwd_tile(const SlstmParams<scalar_t, acc_t>& p, int64_t h, int64_t b0, int64_t rows, acc_t* raw) {
  const int64_t DH = p.dh, G = 4 * DH;
  const acc_t* R = p.R + h * DH * G;
  const acc_t* bias = p.bias + h * G;
  for (int64_t t = 0; t < p.seq; ++t) {
    // raw = (h R + bias) + x: x last, so that a large x (gates of 1e4) costs one rounding at its
    // magnitude rather than one per product accumulated into it.
    const acc_t* h_prev = p.trace + p.trace_index(0, b0, t, h);  // rows a batch row's trace apart
    small_gemm(rows, G, DH, h_prev, p.slots * p.heads * DH, R, G, raw, G);
    for (int64_t r = 0; r < rows; ++r) {
      const scalar_t* x = p.x + (b0 + r) * p.x_stride_b + t * p.x_stride_t + h * p.x_stride_h;
      acc_t* raw_r = raw + r * G;
      for (int64_t gj = 0; gj < G; ++gj) raw_r[gj] = (raw_r[gj] + bias[gj]) + acc_t(x[gj]);
    }
    for (int64_t r = 0; r < rows; ++r) {
      const acc_t* raw_r = raw + r * G;
      const acc_t* c_prev = p.trace + p.trace_index(1, b0 + r, t, h);
      const acc_t* n_prev = p.trace + p.trace_index(2, b0 + r, t, h);
      const acc_t* m_prev = p.trace + p.trace_index(3, b0 + r, t, h);
      acc_t* h_new = p.trace + p.trace_index(0, b0 + r, t + 1, h);
      acc_t* c_new = p.trace + p.trace_index(1, b0 + r, t + 1, h);
      acc_t* n_new = p.trace + p.trace_index(2, b0 + r, t + 1, h);
      acc_t* m_new = p.trace + p.trace_index(3, b0 + r, t + 1, h);  // and the gates after it
      const int64_t plane = p.plane();
      scalar_t* out = p.h_out + (((b0 + r) * p.seq + t) * p.heads + h) * DH;
      XLSTM_INDEPENDENT_ITERATIONS
      for (int64_t j = 0; j < DH; ++j) {
        const SlstmGates<acc_t> g =
            slstm_gates(raw_r[j], raw_r[DH + j], raw_r[2 * DH + j], raw_r[3 * DH + j], n_prev[j], m_prev[j]);
        const SlstmCell<acc_t> cell = slstm_cell(g, c_prev[j], n_prev[j]);
        h_new[j] = cell.h;
        c_new[j] = cell.c;
        n_new[j] = cell.n;
        out[j] = scalar_t(cell.h);
        slstm_store_gates(m_new, plane, j, g);
      }
    }
  }
}

}  // namespace xlstm
