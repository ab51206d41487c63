// xLSTM 7B's block (xLSTMLarge, python_ref/xlstm_large.md) on one token per batch row, fused for
// the CPU (inference: no backward): a decode step's ~20 library calls per block cost more in
// dispatch than their work below the 7B sizes, and each one's output is a fresh allocation.
//
//   a = rmsnorm(x) w_a;  q, k, v, o = a W_qkvo;  i, f = cap tanh((a W_if + b_if) / cap)
//   h, (C, n, m) = mlstm_step(q, k, v, i, f, (C, n, m))            (mlstm_step's row math)
//   x' = x + (σ(o) · headnorm(h) w_h) W_out                       (headnorm: per head, no affine)
//   y = x' + (silu(g) · z) W_down,  g, z = (rmsnorm(x') w_f) W_up  (the SwiGLU)
//
// and the model's head after the last block: logits = cap tanh((rmsnorm(x) w_out) W_head / cap).
// The products are skinny_linear's (the weights read once, in rows split over the threads); this
// header holds the elementwise rows between them. No ATen types here.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/numerics.h"
#include "cpu/layer_norm.h"
#include "ops/mlstm_step/math.h"
#include "ops/skinny_linear/math.h"

namespace xlstm {

// One dtype T (float32 or float64) throughout. The products' params read and write the scratch
// rows below; cell reads q, k, v from qkvo's rows and i, f from gates', and writes h.
template <typename T>
struct XlstmLargeBlockStepParams {
  int64_t B, D, NH, DV, inner;
  const T* x;                                                              // (B, D) dense
  const T *norm_mlstm_weight, *multihead_norm_weight, *norm_ffn_weight;  // (D), (NH DV), (D)
  T norm_eps, gate_soft_cap;                                               // cap <= 0: none
  T *normed, *qkvo, *gates, *up;  // scratch: (B, D), (B, 2 NH DK + 2 NH DV), (B, 2 NH), (B, 2 inner)
  int64_t qkvo_width;
  MlstmStepParams<T, T> cell;  // h: (B, NH DV), then σ(o) · headnorm(h) w_h in place
  T* y;                        // (B, D): x', then the block's output
};

namespace xlstm_large_block {

// out = x / sqrt(mean(x²) + eps) · w over one row of n features (RMSNorm, eps inside the root).
template <typename T>
inline void rms_norm_row(const T* x, const T* w, int64_t n, T eps, T* out) {
  T squares = 0;
  XLSTM_VECTOR_SUM(squares)
  for (int64_t j = 0; j < n; ++j) squares += x[j] * x[j];
  const T rstd = T(1) / std::sqrt(squares / T(n) + eps);
  XLSTM_INDEPENDENT_ITERATIONS
  for (int64_t j = 0; j < n; ++j) out[j] = x[j] * rstd * w[j];
}

// Soft capping in place (the gates' pre-activations, the logits): cap tanh(g / cap), or g as it is
// for cap <= 0. The loop vectorizes through libmvec's tanh (cpu/vector_math.h).
template <typename T>
inline void soft_cap_row(T* g, int64_t n, T cap) {
  if (cap <= T(0)) return;
  XLSTM_INDEPENDENT_ITERATIONS
  for (int64_t j = 0; j < n; ++j) g[j] = cap * tanh_(g[j] / cap);
}

// The cell's output row b (NH heads of DV) normalised per head, scaled by w and gated by σ(o).
template <typename T>
inline void gated_head_norm_row(const XlstmLargeBlockStepParams<T>& p, int64_t b) {
  const int64_t V = p.NH * p.DV;
  T* h = p.cell.h + b * V;
  const T* o = p.qkvo + b * p.qkvo_width + p.qkvo_width - V;  // o: the last V columns
  for (int64_t head = 0; head < p.NH; ++head) normalise_features(h + head * p.DV, p.DV, p.norm_eps);
  XLSTM_INDEPENDENT_ITERATIONS
  for (int64_t j = 0; j < V; ++j) h[j] = sigmoid(o[j]) * (h[j] * p.multihead_norm_weight[j]);
}

// Row b of the SwiGLU's input in place: silu(g) · z into g, the first inner of up's 2 inner.
template <typename T>
inline void swiglu_row(const XlstmLargeBlockStepParams<T>& p, int64_t b) {
  T* g = p.up + b * 2 * p.inner;
  const T* z = g + p.inner;
  XLSTM_INDEPENDENT_ITERATIONS
  for (int64_t j = 0; j < p.inner; ++j) g[j] = silu(g[j]) * z[j];
}

}  // namespace xlstm_large_block
}  // namespace xlstm
