// HeadwiseLinear (block-diagonal) linear map: the mLSTM layer's q, k and v projections
// (../shared/xlstm-spec.md: per-head blocks of size 4). Block g of the output row is W[g] (O x I)
// times block g of the input row:
//
//   y[n, g O + o] = Σ_i W[g, o, i] x[n, g I + i]
//   dx[n, g I + i] = Σ_o W[g, o, i] dy[n, g O + o],   dW[g, o, i] = Σ_n dy[n, g O + o] x[n, g I + i]
//
// As a library call this is a grouped convolution or a batched product of 4 x 4 matrices, each
// needing transposed copies of the activations; here it is one pass over the rows. No ATen types.
#pragma once

#include <cstdint>

#include "common/cuda_compat.h"

namespace xlstm {

// x (B, S, G*I) with any batch and time strides (unit stride within a row), weight (G, O, I)
// contiguous in acc_t. The output y (and dy) is head-major, (B, heads, S, G*O / heads) contiguous,
// the layout the mLSTM cell reads q, k and v in (heads = 1: plain (B, S, G*O)); G is a multiple of
// heads, so a group's outputs stay within one head. dx (B, S, G*I) contiguous. Rows n = b S + s.
template <typename scalar_t, typename acc_t>
struct HeadwiseLinearParams {
  int64_t batch, seq, groups, out_block, in_block, heads;
  const scalar_t* x;
  int64_t x_stride_b, x_stride_s;
  const acc_t* weight;
  scalar_t* y;
  const scalar_t* dy;
  scalar_t* dx;

  XLSTM_HOST_DEVICE int64_t rows() const { return batch * seq; }
  XLSTM_HOST_DEVICE int64_t in_width() const { return groups * in_block; }
  XLSTM_HOST_DEVICE int64_t out_width() const { return groups * out_block; }
  XLSTM_HOST_DEVICE const scalar_t* x_row(int64_t n) const { return x + n / seq * x_stride_b + n % seq * x_stride_s; }
  // Where output column c of row n lives in y and dy.
  XLSTM_HOST_DEVICE int64_t out_index(int64_t n, int64_t c) const {
    const int64_t width = out_width() / heads, h = c / width;
    return ((n / seq * heads + h) * seq + n % seq) * width + c - h * width;
  }
  // Output column c of row n.
  XLSTM_HOST_DEVICE acc_t output(int64_t n, int64_t c) const {
    const acc_t* w = weight + c * in_block;  // W[g, o, :]
    const scalar_t* xg = x_row(n) + c / out_block * in_block;
    acc_t sum = 0;
    for (int64_t i = 0; i < in_block; ++i) sum += w[i] * acc_t(xg[i]);
    return sum;
  }
  // Input column c of row n of the gradient.
  XLSTM_HOST_DEVICE acc_t input_grad(int64_t n, int64_t c) const {
    const int64_t g = c / in_block, i = c % in_block;
    const acc_t* w = weight + g * out_block * in_block + i;  // W[g, :, i], stride I
    const scalar_t* dyg = dy + out_index(n, g * out_block);
    acc_t sum = 0;
    for (int64_t o = 0; o < out_block; ++o) sum += w[o * in_block] * acc_t(dyg[o]);
    return sum;
  }
  // dW[g, o, i] (entry e of the flattened weight) over rows [first, last).
  XLSTM_HOST_DEVICE acc_t weight_grad(int64_t e, int64_t first, int64_t last) const {
    const int64_t c = e / in_block, i = e % in_block, g = c / out_block;
    acc_t sum = 0;
    for (int64_t n = first; n < last; ++n) sum += acc_t(dy[out_index(n, c)]) * acc_t(x_row(n)[g * in_block + i]);
    return sum;
  }
};

}  // namespace xlstm
