// sLSTM: the cell math shared by the CPU and CUDA kernels, and the CPU per-(batch, head) loops.
//
//   raw = x[t] + h[t-1] R + b                                      (per head; gates i, f, z, o)
//   m   = raw_i                          where n[t-1] == 0, else max(raw_i, logσ(raw_f) + m[t-1])
//   i'  = min(1, exp(raw_i - m)),  f' = min(1, exp(logσ(raw_f) + m[t-1] - m))
//   c   = f' c[t-1] + i' tanh(raw_z),  n = f' n[t-1] + i',  h = σ(raw_o) c / n
//
// m is a constant for differentiation. No ATen types here.
#pragma once

#include <cstdint>

#include "numerics.h"

namespace xlstm {

// x_gates (B, S, NH, 4, DH) with (4, DH) contiguous; R (NH, DH, 4*DH) and its transpose
// RT (NH, 4*DH, DH) contiguous; h_out (B, S, NH, DH) contiguous. trace (8, B, slots, NH, DH),
// contiguous, is what the forward pass leaves for the backward: planes 0-3 the states h, c, n, m
// after each step ([:, :, 0] the initial state), planes 4-7 the pre-activations i, f, z, o of each
// step (at t + 1; [:, :, 0] zero). Step t lives in slot t % slots: slots = S + 1 keeps every step
// (for the backward pass), slots = 2 only the latest (inference: memory independent of S).
template <typename scalar_t, typename acc_t>
struct SlstmParams {
  int64_t batch, seq, heads, dh;
  const scalar_t* x;
  int64_t x_stride_b, x_stride_t;
  const acc_t *R, *RT, *bias;
  acc_t* trace;
  int64_t slots;
  scalar_t* h_out;

  XLSTM_HOST_DEVICE int64_t plane() const { return batch * slots * heads * dh; }
  // Element 0 of plane g (0-3: h, c, n, m; 4-7: pre-activations i, f, z, o) at step t, row (b, h).
  XLSTM_HOST_DEVICE int64_t trace_index(int g, int64_t b, int64_t t, int64_t h) const {
    return g * plane() + ((b * slots + t % slots) * heads + h) * dh;
  }
};

// Backward: dh (B, S, NH, DH) contiguous;
// d_last (4 = h, c, n, m; B, NH, DH), m's ignored; outputs d_raw (like raw) and d_first (like
// d_last; m's left to the caller), all contiguous.
template <typename scalar_t, typename acc_t>
struct SlstmBwdParams : SlstmParams<scalar_t, acc_t> {
  const scalar_t* d_h;
  const acc_t* d_last;
  acc_t* d_raw;
  acc_t* d_first;
};

template <typename T>
struct SlstmCell {
  T h, c, n, m;
};

template <typename T>
struct SlstmGates {
  T log_f, m, i_gate, f_gate, tanh_z, sig_o;
  bool i_passes, f_passes;  // min(1, x) lets the gradient through (x <= 1)
};

template <typename T>
XLSTM_HOST_DEVICE SlstmGates<T> slstm_gates(T raw_i, T raw_f, T raw_z, T raw_o, T n_prev, T m_prev) {
  SlstmGates<T> g;
  g.log_f = log_sigmoid(raw_f);
  // Where n[t-1] == 0 the forget candidate drops out of the max (a select, not a branch, so that
  // the CPU loops vectorize).
  const T no_history = n_prev == T(0) ? -INFINITY : T(0);
  g.m = max_(raw_i, g.log_f + m_prev + no_history);
  const T i_exp = exp_(raw_i - g.m), f_exp = exp_(g.log_f + m_prev - g.m);
  g.i_passes = !(i_exp > T(1));
  g.f_passes = !(f_exp > T(1));
  g.i_gate = g.i_passes ? i_exp : T(1);
  g.f_gate = g.f_passes ? f_exp : T(1);
  g.tanh_z = tanh_(raw_z);
  g.sig_o = sigmoid(raw_o);
  return g;
}

template <typename T>
XLSTM_HOST_DEVICE SlstmCell<T> slstm_cell(const SlstmGates<T>& g, T c_prev, T n_prev) {
  const T c = g.f_gate * c_prev + g.i_gate * g.tanh_z;
  const T n = g.f_gate * n_prev + g.i_gate;
  return {g.sig_o * c / n, c, n, g.m};
}

template <typename T>
struct SlstmCellGrads {
  T d_raw[4];  // i, f, z, o
  T dc_prev, dn_prev;
};

// Gradients through one cell step, given those of its h, c and n (each the total).
template <typename T>
XLSTM_HOST_DEVICE SlstmCellGrads<T> slstm_cell_backward(T raw_f, const SlstmGates<T>& g, T c_prev, T n_prev,
                                                        T dh, T dc, T dn) {
  const SlstmCell<T> cell = slstm_cell(g, c_prev, n_prev);
  const T c_over_n = cell.c / cell.n;
  dc += dh * g.sig_o / cell.n;
  dn -= dh * g.sig_o * c_over_n / cell.n;
  const T d_i_gate = dc * g.tanh_z + dn, d_f_gate = dc * c_prev + dn * n_prev;
  SlstmCellGrads<T> out;
  out.d_raw[0] = g.i_passes ? d_i_gate * g.i_gate : T(0);
  out.d_raw[1] = g.f_passes ? d_f_gate * g.f_gate * sigmoid(-raw_f) : T(0);
  out.d_raw[2] = dc * g.i_gate * (T(1) - g.tanh_z * g.tanh_z);
  out.d_raw[3] = dh * c_over_n * g.sig_o * (T(1) - g.sig_o);
  out.dc_prev = dc * g.f_gate;
  out.dn_prev = dn * g.f_gate;
  return out;
}

// CPU forward for one head and a tile of `rows` batch rows from b0, over the whole sequence.
// Rows are processed together so that each row of R is reused from L1 across the tile; the cell
// update runs as one loop over (row, unit) that the compiler vectorizes. raw: rows*4*DH scratch.
template <typename scalar_t, typename acc_t>
void slstm_fwd_tile(const SlstmParams<scalar_t, acc_t>& p, int64_t h, int64_t b0, int64_t rows, acc_t* raw) {
  const int64_t DH = p.dh, G = 4 * DH;
  const acc_t* R = p.R + h * DH * G;
  const acc_t* bias = p.bias + h * G;
  for (int64_t t = 0; t < p.seq; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      const scalar_t* x = p.x + (b0 + r) * p.x_stride_b + t * p.x_stride_t + h * G;
      acc_t* raw_r = raw + r * G;
      for (int64_t gj = 0; gj < G; ++gj) raw_r[gj] = acc_t(x[gj]) + bias[gj];
    }
    for (int64_t k = 0; k < DH; ++k) {
      const acc_t* Rk = R + k * G;
      for (int64_t r = 0; r < rows; ++r) {
        const acc_t hk = p.trace[p.trace_index(0, b0 + r, t, h) + k];
        acc_t* raw_r = raw + r * G;
        for (int64_t gj = 0; gj < G; ++gj) raw_r[gj] += hk * Rk[gj];
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      const acc_t* raw_r = raw + r * G;
      const acc_t* c_prev = p.trace + p.trace_index(1, b0 + r, t, h);
      const acc_t* n_prev = p.trace + p.trace_index(2, b0 + r, t, h);
      const acc_t* m_prev = p.trace + p.trace_index(3, b0 + r, t, h);
      acc_t* h_new = p.trace + p.trace_index(0, b0 + r, t + 1, h);
      acc_t* c_new = p.trace + p.trace_index(1, b0 + r, t + 1, h);
      acc_t* n_new = p.trace + p.trace_index(2, b0 + r, t + 1, h);
      acc_t* m_new = p.trace + p.trace_index(3, b0 + r, t + 1, h);
      acc_t* raw_saved = p.trace + p.trace_index(4, b0 + r, t + 1, h);  // planes 4-7, a plane apart
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
        m_new[j] = cell.m;
        out[j] = scalar_t(cell.h);
        for (int gate = 0; gate < 4; ++gate) raw_saved[gate * plane + j] = raw_r[gate * DH + j];
      }
    }
  }
}

// CPU backward for one head and a tile of batch rows: writes d_raw for every step and the
// initial-state grads. work: 3*rows*DH scratch (dh, dc, dn carried backwards).
template <typename scalar_t, typename acc_t>
void slstm_bwd_tile(const SlstmBwdParams<scalar_t, acc_t>& p, int64_t h, int64_t b0, int64_t rows, acc_t* work) {
  const int64_t DH = p.dh, G = 4 * DH, BND = p.batch * p.heads * DH;
  const acc_t* RT = p.RT + h * G * DH;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t at = ((b0 + r) * p.heads + h) * DH;
    for (int64_t j = 0; j < DH; ++j) {
      work[r * DH + j] = p.d_last[at + j];
      work[(rows + r) * DH + j] = p.d_last[BND + at + j];
      work[(2 * rows + r) * DH + j] = p.d_last[2 * BND + at + j];
    }
  }
  for (int64_t t = p.seq - 1; t >= 0; --t) {
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t b = b0 + r, step = (b * p.seq + t) * p.heads + h;
      const acc_t* raw_i = p.trace + p.trace_index(4, b, t + 1, h);
      const int64_t plane = p.plane();
      acc_t* d_raw = p.d_raw + step * G;
      const scalar_t* dh_out = p.d_h + step * DH;
      const acc_t* c_prev = p.trace + p.trace_index(1, b, t, h);
      const acc_t* n_prev = p.trace + p.trace_index(2, b, t, h);
      const acc_t* m_prev = p.trace + p.trace_index(3, b, t, h);
      acc_t *dh = work + r * DH, *dc = work + (rows + r) * DH, *dn = work + (2 * rows + r) * DH;
      XLSTM_INDEPENDENT_ITERATIONS
      for (int64_t j = 0; j < DH; ++j) {
        const acc_t raw_f = raw_i[plane + j];
        const SlstmGates<acc_t> g =
            slstm_gates(raw_i[j], raw_f, raw_i[2 * plane + j], raw_i[3 * plane + j], n_prev[j], m_prev[j]);
        const SlstmCellGrads<acc_t> d =
            slstm_cell_backward(raw_f, g, c_prev[j], n_prev[j], acc_t(dh_out[j]) + dh[j], dc[j], dn[j]);
        d_raw[j] = d.d_raw[0];
        d_raw[DH + j] = d.d_raw[1];
        d_raw[2 * DH + j] = d.d_raw[2];
        d_raw[3 * DH + j] = d.d_raw[3];
        dc[j] = d.dc_prev;
        dn[j] = d.dn_prev;
        dh[j] = 0;
      }
    }
    // dh[t-1] = d_raw Rᵀ, a row of Rᵀ reused across the tile.
    for (int64_t gj = 0; gj < G; ++gj) {
      const acc_t* RTg = RT + gj * DH;
      for (int64_t r = 0; r < rows; ++r) {
        const acc_t dg = p.d_raw[((b0 + r) * p.seq + t) * p.heads * G + h * G + gj];
        acc_t* dh = work + r * DH;
        for (int64_t k = 0; k < DH; ++k) dh[k] += RTg[k] * dg;
      }
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t at = ((b0 + r) * p.heads + h) * DH;
    for (int64_t j = 0; j < DH; ++j) {
      p.d_first[at + j] = work[r * DH + j];
      p.d_first[BND + at + j] = work[(rows + r) * DH + j];
      p.d_first[2 * BND + at + j] = work[(2 * rows + r) * DH + j];
    }
  }
}

}  // namespace xlstm
