// Causal depthwise convolution over time followed by SiLU: the input stage of both xLSTM layers
// (../shared/xlstm-spec.md), fused so that the layers make one pass over memory instead of K
// shifted products, an activation and their autograd bookkeeping.
//
//   xp = [initial | x] along time (initial: the K - 1 inputs before x, zeros for a fresh sequence)
//   pre[b, t, d] = bias[d] + Σ_k w[k, d] xp[b, t + k, d],   y = pre σ(pre)
//
// Backward, with g = dy silu'(pre): dxp[s] = Σ_k w[k] g[s - k] (0 <= s - k < S),
// dw[k] = Σ_{b,t} g[t] xp[t + k], dbias = Σ_{b,t} g[t]. No ATen types here.
#pragma once

#include <cstdint>

#include "common/numerics.h"

namespace xlstm {

// x (B, S, D) with unit stride over D, initial (B, K - 1, D) contiguous, both in scalar_t; the
// weights transposed to (K, D) and the bias (D) in acc_t; y (B, S, D) contiguous.
template <typename scalar_t, typename acc_t>
struct CausalConv1dSiluParams {
  int64_t batch, seq, dim, width;
  const scalar_t* x;
  int64_t x_stride_b, x_stride_t;
  const scalar_t* initial;
  const acc_t *weight, *bias;
  scalar_t* y;

  // Row s of the padded sequence xp of batch row b.
  XLSTM_HOST_DEVICE const scalar_t* padded_row(int64_t b, int64_t s) const {
    return s < width - 1 ? initial + (b * (width - 1) + s) * dim : x + b * x_stride_b + (s - (width - 1)) * x_stride_t;
  }
  XLSTM_HOST_DEVICE acc_t pre_activation(int64_t b, int64_t t, int64_t d) const {
    acc_t pre = bias[d];
    for (int64_t k = 0; k < width; ++k) pre += weight[k * dim + d] * acc_t(padded_row(b, t + k)[d]);
    return pre;
  }
};

// CPU: pre[d - d0] = the pre-activation of step t of batch row b, channels [d0, d1), the loop over
// channels innermost (it vectorizes).
template <typename scalar_t, typename acc_t>
inline void pre_activation_row(const CausalConv1dSiluParams<scalar_t, acc_t>& p, int64_t b, int64_t t, int64_t d0,
                               int64_t d1, acc_t* pre) {
  for (int64_t d = d0; d < d1; ++d) pre[d - d0] = p.bias[d];
  for (int64_t k = 0; k < p.width; ++k) {
    const scalar_t* row = p.padded_row(b, t + k);
    const acc_t* w = p.weight + k * p.dim;
    XLSTM_INDEPENDENT_ITERATIONS
    for (int64_t d = d0; d < d1; ++d) pre[d - d0] += w[d] * acc_t(row[d]);
  }
}

// dy (B, S, D) contiguous; dx like dy, d_initial like initial (scalar_t).
template <typename scalar_t, typename acc_t>
struct CausalConv1dSiluBwdParams : CausalConv1dSiluParams<scalar_t, acc_t> {
  const scalar_t* dy;
  scalar_t *dx, *d_initial;
  // Row s of dxp: d_initial for s < K - 1, else dx.
  XLSTM_HOST_DEVICE scalar_t* d_padded_row(int64_t b, int64_t s) const {
    const int64_t K = this->width, D = this->dim;
    return s < K - 1 ? d_initial + (b * (K - 1) + s) * D : dx + (b * this->seq + s - (K - 1)) * D;
  }
};

}  // namespace xlstm
