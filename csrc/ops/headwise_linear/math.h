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
  XLSTM_HOST_DEVICE const scalar_t* x_row(int64_t b, int64_t s) const { return x + b * x_stride_b + s * x_stride_s; }
  XLSTM_HOST_DEVICE int64_t head_width() const { return out_width() / heads; }
  // The head-major layout of y and dy: output column c of row (b, s) is element
  // (out_head_row(b, head) + s) * head_width() + offset, with (head, offset) = out_column(c).
  struct OutColumn {
    int64_t head, offset;
  };
  XLSTM_HOST_DEVICE OutColumn out_column(int64_t c) const {
    const int64_t h = c / head_width();
    return {h, c - h * head_width()};
  }
  XLSTM_HOST_DEVICE int64_t out_head_row(int64_t b, int64_t head) const { return (b * heads + head) * seq; }
  // Where output column c of row n lives in y and dy.
  XLSTM_HOST_DEVICE int64_t out_index(int64_t n, int64_t c) const {
    const OutColumn col = out_column(c);
    return (out_head_row(n / seq, col.head) + n % seq) * head_width() + col.offset;
  }
};

// One group of one row on the CPU: y[o] = Σ_i w[o, i] x[i] for w (O, I) row-major; kO, kI the block
// sizes where the caller knows them (the loops unroll), 0 where they are read at run time.
template <int kO, int kI, typename scalar_t, typename acc_t, typename out_t>
inline void headwise_linear_group(const acc_t* w, const scalar_t* x, int64_t out_block, int64_t in_block, out_t* y) {
  const int64_t O = kO ? kO : out_block, I = kI ? kI : in_block;
  for (int64_t o = 0; o < O; ++o) {
    acc_t sum = 0;
    for (int64_t i = 0; i < I; ++i) sum += w[o * I + i] * acc_t(x[i]);
    y[o] = out_t(sum);
  }
}

}  // namespace xlstm
