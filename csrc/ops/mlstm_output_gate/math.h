// The mLSTM layer's output stage, fused (../shared/xlstm-spec.md): the normalised cell output h
// scaled per feature, plus the learnable skip of the conv branch, gated by SiLU of the other branch:
//
//   a = w h + s x_conv,   y = a silu(z)
//   dh = dy silu(z) w,  dx_conv = dy silu(z) s,  dz = dy a silu'(z),  dw = Σ dy silu(z) h,  ds = Σ dy silu(z) x_conv
//
// (sums over batch and time). Four elementwise ops and their backward as one pass each. No ATen types.
#pragma once

#include <cstdint>

#include "common/numerics.h"

namespace xlstm {

// h, x_conv, z (rows, D) with unit stride within rows and their own row strides; w, s (D) in acc_t;
// y (rows, D) contiguous. Backward: dy like y, dh, dx_conv, dz (rows, D) contiguous.
template <typename scalar_t, typename acc_t>
struct MlstmOutputGateParams {
  int64_t rows, dim;
  const scalar_t *h, *x_conv, *z;
  int64_t h_stride, x_conv_stride, z_stride;
  const acc_t *w, *s;
  scalar_t* y;
  const scalar_t* dy;
  scalar_t *dh, *dx_conv, *dz;

  XLSTM_HOST_DEVICE acc_t h_at(int64_t r, int64_t d) const { return acc_t(h[r * h_stride + d]); }
  XLSTM_HOST_DEVICE acc_t x_conv_at(int64_t r, int64_t d) const { return acc_t(x_conv[r * x_conv_stride + d]); }
  XLSTM_HOST_DEVICE acc_t z_at(int64_t r, int64_t d) const { return acc_t(z[r * z_stride + d]); }
};

template <typename T>
struct MlstmOutputGateGrads {
  T dh, dx_conv, dz, dw, ds;
};

template <typename T>
XLSTM_HOST_DEVICE T mlstm_output_gate(T h, T x_conv, T z, T w, T s) {
  return (w * h + s * x_conv) * silu(z);
}

template <typename T>
XLSTM_HOST_DEVICE MlstmOutputGateGrads<T> mlstm_output_gate_backward(T dy, T h, T x_conv, T z, T w, T s) {
  const T gate = silu(z), dy_gate = dy * gate;
  return {dy_gate * w, dy_gate * s, dy * (w * h + s * x_conv) * silu_derivative(z), dy_gate * h, dy_gate * x_conv};
}

}  // namespace xlstm
