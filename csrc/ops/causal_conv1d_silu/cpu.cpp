// Causal conv + SiLU on the CPU: threads own disjoint ranges of channels (so the weight gradient
// needs no reduction between them) and sweep batch and time; the loops over a range's channels are
// contiguous and vectorize.
#include "cpu/vector_math.h"  // first: before anything declares the math functions

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <vector>

#include "common/registration.h"
#include "ops/causal_conv1d_silu/host.h"

namespace xlstm {
namespace {

constexpr int64_t kChannelGrain = 16;

template <typename scalar_t, typename acc_t>
void causal_conv1d_silu_fwd_channels(const CausalConv1dSiluParams<scalar_t, acc_t>& p, int64_t d0, int64_t d1) {
  const int64_t D = p.dim;
  std::vector<acc_t> pre(d1 - d0);
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t t = 0; t < p.seq; ++t) {
      pre_activation_row(p, b, t, d0, d1, pre.data());
      scalar_t* y = p.y + (b * p.seq + t) * D;
      XLSTM_INDEPENDENT_ITERATIONS
      for (int64_t d = d0; d < d1; ++d) y[d] = scalar_t(silu(pre[d - d0]));
    }
  }
}

// dxp[s] needs g of the K steps up to s: they are kept in a ring of K rows (zero before t = 0 and
// from t = S on). d_weight_t (K, D), d_bias (D): the range's columns are written, not accumulated.
template <typename scalar_t, typename acc_t>
void causal_conv1d_silu_bwd_channels(const CausalConv1dSiluBwdParams<scalar_t, acc_t>& p, int64_t d0, int64_t d1,
                                     acc_t* d_weight_t, acc_t* d_bias) {
  const int64_t D = p.dim, K = p.width, n = d1 - d0;
  std::vector<acc_t> ring(K * n), dw(K * n, acc_t(0)), db(n, acc_t(0)), pre(n);
  for (int64_t b = 0; b < p.batch; ++b) {
    std::fill(ring.begin(), ring.end(), acc_t(0));
    for (int64_t s = 0; s < p.seq + K - 1; ++s) {
      acc_t* g = ring.data() + (s % K) * n;  // g[s], replacing g[s - K]
      if (s < p.seq) {
        pre_activation_row(p, b, s, d0, d1, pre.data());
        const scalar_t* dy = p.dy + (b * p.seq + s) * D;
        XLSTM_INDEPENDENT_ITERATIONS
        for (int64_t d = d0; d < d1; ++d) {
          g[d - d0] = acc_t(dy[d]) * silu_derivative(pre[d - d0]);
          db[d - d0] += g[d - d0];
        }
        for (int64_t k = 0; k < K; ++k) {
          const scalar_t* row = p.padded_row(b, s + k);
          acc_t* dwk = dw.data() + k * n;
          XLSTM_INDEPENDENT_ITERATIONS
          for (int64_t d = d0; d < d1; ++d) dwk[d - d0] += g[d - d0] * acc_t(row[d]);
        }
      } else {
        std::fill(g, g + n, acc_t(0));
      }
      // dxp[s] = Σ_k w[k] g[s - k]; pre serves as the row's accumulator.
      for (int64_t d = 0; d < n; ++d) pre[d] = 0;
      for (int64_t k = 0; k < K && k <= s; ++k) {
        const acc_t* gk = ring.data() + ((s - k) % K) * n;
        const acc_t* w = p.weight + k * D;
        XLSTM_INDEPENDENT_ITERATIONS
        for (int64_t d = d0; d < d1; ++d) pre[d - d0] += w[d] * gk[d - d0];
      }
      scalar_t* dxp = p.d_padded_row(b, s);
      for (int64_t d = d0; d < d1; ++d) dxp[d] = scalar_t(pre[d - d0]);
    }
  }
  for (int64_t k = 0; k < K; ++k)
    for (int64_t d = d0; d < d1; ++d) d_weight_t[k * D + d] = dw[k * n + d - d0];
  for (int64_t d = d0; d < d1; ++d) d_bias[d] = db[d - d0];
}

}  // namespace

Tensor causal_conv1d_silu_cpu(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& initial) {
  const CausalConv1dSiluInputs in =
      causal_conv1d_silu_inputs(x, weight, bias, initial, "causal_conv1d_silu", at::kCPU, true);
  Tensor y = causal_conv1d_silu_output(in, empty_cpu_output);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.x.scalar_type(), "causal_conv1d_silu_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto p = causal_conv1d_silu_params<scalar_t, acc_t>(in, y);
    at::parallel_for(0, in.D, kChannelGrain,
                     [&](int64_t d0, int64_t d1) { causal_conv1d_silu_fwd_channels(p, d0, d1); });
  });
  return y;
}

Tensors4 causal_conv1d_silu_backward_cpu(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& bias,
                                         const Tensor& initial) {
  const char* op = "causal_conv1d_silu_backward";
  const CausalConv1dSiluInputs in = causal_conv1d_silu_inputs(x, weight, bias, initial, op, at::kCPU, true);
  const CausalConv1dSiluGrads g = causal_conv1d_silu_grads(in, dy, op, empty_cpu_output);
  Tensor d_weight_t = at::empty({in.K, in.D}, in.weight.options()), d_bias = at::empty({in.D}, in.bias.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.x.scalar_type(), "causal_conv1d_silu_backward_cpu",
                                  [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto p = causal_conv1d_silu_bwd_params<scalar_t, acc_t>(in, g);
    at::parallel_for(0, in.D, kChannelGrain, [&](int64_t d0, int64_t d1) {
      causal_conv1d_silu_bwd_channels(p, d0, d1, d_weight_t.data_ptr<acc_t>(), d_bias.data_ptr<acc_t>());
    });
  });
  return causal_conv1d_silu_backward_result(g, d_weight_t, d_bias, weight, bias);
}

}  // namespace xlstm

XLSTM_CPU_KERNELS(m) {
  m.impl("causal_conv1d_silu", &xlstm::causal_conv1d_silu_cpu);
  m.impl("causal_conv1d_silu_backward", &xlstm::causal_conv1d_silu_backward_cpu);
}
