// sLSTM: the cell math shared by the CPU and CUDA kernels (their loops: cpu.cpp, kernels.cuh).
//
//   raw = x[t] + h[t-1] R + b                                      (per head; gates i, f, z, o)
//   m   = raw_i                          where n[t-1] == 0, else max(raw_i, logσ(raw_f) + m[t-1])
//   i'  = min(1, exp(raw_i - m)),  f' = min(1, exp(logσ(raw_f) + m[t-1] - m))
//   c   = f' c[t-1] + i' tanh(raw_z),  n = f' n[t-1] + i',  h = σ(raw_o) c / n
//
// m is a constant for differentiation. No ATen types here.
#pragma once

#include <cstdint>

#include "common/numerics.h"

namespace xlstm {

// x_gates (B, S, NH, 4, DH) with each head's (4, DH) block dense (any batch, time, head strides); R (NH, DH, 4*DH) and its transpose
// RT (NH, 4*DH, DH) contiguous; h_out (B, S, NH, DH) contiguous. trace (9, B, slots, NH, DH),
// contiguous, is what the forward pass leaves for the backward: planes 0-3 the states h, c, n, m
// after each step ([:, :, 0] the initial state), planes 4-8 the gate activations of each step (at
// t + 1, see slstm_store_gates; [:, :, 0] zero), so that the backward pass evaluates no exp, log
// or tanh. Step t lives in slot t % slots: slots = S + 1 keeps every step (for the backward pass),
// slots = 2 only the latest (inference: memory independent of S).
constexpr int kSlstmTracePlanes = 9;

template <typename scalar_t, typename acc_t>
struct SlstmParams {
  int64_t batch, seq, heads, dh;
  const scalar_t* x;
  int64_t x_stride_b, x_stride_t, x_stride_h;
  const acc_t *R, *RT, *bias;
  acc_t* trace;
  int64_t slots;
  scalar_t* h_out;

  XLSTM_HOST_DEVICE int64_t plane() const { return batch * slots * heads * dh; }
  // Element 0 of plane g (0-3: h, c, n, m; 4-8: gate activations) at step t, row (b, h).
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

// A step's gates. d_f_gate = d f' / d raw_f (m a constant): f' σ(-raw_f) where the min lets the
// gradient through, else 0. i' needs no such factor: m >= raw_i, so exp(raw_i - m) <= 1 and the
// min never clamps it, and d i' / d raw_i = i'.
template <typename T>
struct SlstmGates {
  T m, i_gate, f_gate, d_f_gate, tanh_z, sig_o;
};

template <typename T>
XLSTM_HOST_DEVICE SlstmGates<T> slstm_gates(T raw_i, T raw_f, T raw_z, T raw_o, T n_prev, T m_prev) {
  SlstmGates<T> g;
  const LogSigmoid<T> log_f = log_sigmoid_with_derivative(raw_f);
  // Where n[t-1] == 0 the forget candidate drops out of the max (a select, not a branch, so that
  // the CPU loops vectorize).
  const T no_history = n_prev == T(0) ? -INFINITY : T(0);
  g.m = max_(raw_i, log_f.value + m_prev + no_history);
  // i' = 1 where raw_i attains the max, also at raw_i = m = -inf (a first step with raw_i = -inf: its
  // limit; exp(-inf - -inf) would be NaN).
  const T i_exp = raw_i == g.m ? T(1) : exp_(raw_i - g.m), f_exp = exp_(log_f.value + m_prev - g.m);
  g.i_gate = min_(i_exp, T(1));
  const bool f_passes = !(f_exp > T(1));
  g.f_gate = f_passes ? f_exp : T(1);
  g.d_f_gate = f_passes ? f_exp * log_f.derivative : T(0);
  g.tanh_z = tanh_(raw_z);
  g.sig_o = sigmoid(raw_o);
  return g;
}

// The gates in the trace, from the pointer to step t's m (plane 3 at slot t + 1), planes `plane`
// apart: m, then i', f', d_f_gate, tanh z, σ(o) in planes 4-8.
template <typename T>
XLSTM_HOST_DEVICE void slstm_store_gates(T* m_at, int64_t plane, int64_t j, const SlstmGates<T>& g) {
  m_at[j] = g.m;
  m_at[plane + j] = g.i_gate;
  m_at[2 * plane + j] = g.f_gate;
  m_at[3 * plane + j] = g.d_f_gate;
  m_at[4 * plane + j] = g.tanh_z;
  m_at[5 * plane + j] = g.sig_o;
}

template <typename T>
XLSTM_HOST_DEVICE SlstmGates<T> slstm_load_gates(const T* m_at, int64_t plane, int64_t j) {
  return {m_at[j], m_at[plane + j], m_at[2 * plane + j], m_at[3 * plane + j], m_at[4 * plane + j],
          m_at[5 * plane + j]};
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
XLSTM_HOST_DEVICE SlstmCellGrads<T> slstm_cell_backward(const SlstmGates<T>& g, T c_prev, T n_prev,
                                                        T dh, T dc, T dn) {
  const SlstmCell<T> cell = slstm_cell(g, c_prev, n_prev);
  const T c_over_n = cell.c / cell.n;
  dc += dh * g.sig_o / cell.n;
  dn -= dh * g.sig_o * c_over_n / cell.n;
  const T d_i_gate = dc * g.tanh_z + dn, d_f_gate = dc * c_prev + dn * n_prev;
  SlstmCellGrads<T> out;
  out.d_raw[0] = d_i_gate * g.i_gate;
  out.d_raw[1] = d_f_gate * g.d_f_gate;
  out.d_raw[2] = dc * g.i_gate * (T(1) - g.tanh_z * g.tanh_z);
  out.d_raw[3] = dh * c_over_n * g.sig_o * (T(1) - g.sig_o);
  out.dc_prev = dc * g.f_gate;
  out.dn_prev = dn * g.f_gate;
  return out;
}

}  // namespace xlstm
