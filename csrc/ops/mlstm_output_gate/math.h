// The mLSTM layer's output stage, fused (../shared/xlstm-spec.md): the cell output h normalised per
// head (a layer norm over each head's DH features, no affine of its own), scaled per feature, plus
// the learnable skip of the conv branch, gated by SiLU of the other branch:
//
//   ĥ = (h - μ) ρ  (μ, ρ = 1 / sqrt(var + eps) of the head's segment),  a = w ĥ + s x_conv,  y = a silu(z)
//   g = dy silu(z):  dĥ = g w,  dh = ρ (dĥ - mean(dĥ) - ĥ mean(dĥ ĥ)),  dx_conv = g s,  dz = dy a silu'(z),
//   dw = Σ g ĥ,  ds = Σ g x_conv
//
// (means over the head's segment, sums over batch and time). The norm, the four elementwise ops and
// the layout change from the cell's head-major h to (B, S, D) rows, and their backward, as one pass
// each: h is read where the cell wrote it. No ATen types.
#pragma once

#include <cstdint>

#include "common/numerics.h"

namespace xlstm {

// h (B, S, NH, DH) with unit stride over DH and strides h_b, h_s, h_h (the cell's head-major
// output is its transposed view); x_conv, z (B, S, D = NH DH) with unit stride over D; w, s (D) in
// acc_t; y (B, S, D) contiguous. Backward: dy like y; dh with h_*'s layout in dh_*; dx_conv, dz like y.
template <typename scalar_t, typename acc_t>
struct MlstmOutputGateParams {
  int64_t B, S, NH, DH;
  acc_t eps;
  const scalar_t *h, *x_conv, *z;
  int64_t h_b, h_s, h_h, x_conv_b, x_conv_s, z_b, z_s;
  const acc_t *w, *s;
  scalar_t* y;
  const scalar_t* dy;
  scalar_t *dh, *dx_conv, *dz;
  int64_t dh_b, dh_s, dh_h;

  XLSTM_HOST_DEVICE int64_t rows() const { return B * S; }
  XLSTM_HOST_DEVICE int64_t dim() const { return NH * DH; }
  // Row r = (b, t) of the (B, S, ...) tensors, and head g's segment in it.
  XLSTM_HOST_DEVICE const scalar_t* h_segment(int64_t r, int64_t g) const {
    return h + (r / S) * h_b + (r % S) * h_s + g * h_h;
  }
  XLSTM_HOST_DEVICE scalar_t* dh_segment(int64_t r, int64_t g) const {
    return dh + (r / S) * dh_b + (r % S) * dh_s + g * dh_h;
  }
  XLSTM_HOST_DEVICE const scalar_t* x_conv_row(int64_t r) const { return x_conv + (r / S) * x_conv_b + (r % S) * x_conv_s; }
  XLSTM_HOST_DEVICE const scalar_t* z_row(int64_t r) const { return z + (r / S) * z_b + (r % S) * z_s; }
};

// ρ of a segment whose squared deviations from its mean sum to sq over n features (biased variance,
// as torch's layer norm).
template <typename T>
XLSTM_HOST_DEVICE T mlstm_norm_rstd(T sq, int64_t n, T eps) {
  return T(1) / sqrt_(sq / T(n) + eps);
}

template <typename T>
struct MlstmOutputGateGrads {
  T dh_normed, dx_conv, dz, dw, ds;  // dh_normed: dĥ, before the norm's backward
};

template <typename T>
XLSTM_HOST_DEVICE T mlstm_output_gate(T h_normed, T x_conv, T z, T w, T s) {
  return (w * h_normed + s * x_conv) * silu(z);
}

template <typename T>
XLSTM_HOST_DEVICE MlstmOutputGateGrads<T> mlstm_output_gate_backward(T dy, T h_normed, T x_conv, T z, T w, T s) {
  const T gate = silu(z), dy_gate = dy * gate;
  return {dy_gate * w, dy_gate * s, dy * (w * h_normed + s * x_conv) * silu_derivative(z), dy_gate * h_normed,
          dy_gate * x_conv};
}

// The norm's backward for one feature: mean_d = mean(dĥ), mean_dh = mean(dĥ ĥ) over the segment.
template <typename T>
XLSTM_HOST_DEVICE T mlstm_norm_backward(T dh_normed, T h_normed, T rstd, T mean_d, T mean_dh) {
  return rstd * (dh_normed - mean_d - h_normed * mean_dh);
}

}  // namespace xlstm
