// Tensor side of the causal conv + SiLU shared by the CPU and CUDA entry points: validation,
// layouts and outputs.
// Entry points (causal_conv1d_silu{,_backward}_{cpu,cuda}): y (B, S, D); the backward (dx, d_weight,
// d_bias, d_initial).
#pragma once

#include <ATen/ATen.h>

#include <tuple>

#include "common/checks.h"
#include "common/op_types.h"
#include "ops/causal_conv1d_silu/math.h"

namespace xlstm {

struct CausalConv1dSiluInputs {
  at::Tensor x;        // (B, S, D), unit stride over D
  at::Tensor weight;   // (K, D) in the accumulation dtype, contiguous
  at::Tensor bias;     // (D) in the accumulation dtype
  at::Tensor initial;  // (B, K - 1, D) contiguous, dtype of x
  int64_t B, S, D, K;
};

inline CausalConv1dSiluInputs causal_conv1d_silu_inputs(const at::Tensor& x, const at::Tensor& weight,
                                                        const at::Tensor& bias, const at::Tensor& initial,
                                                        const char* op, at::DeviceType device_type, bool float64_ok) {
  check_rank(x, op, "x", 3, "[B, S, D]");
  check_leading_input(x, op, "x", device_type, float64_ok);
  const at::ScalarType s = x.scalar_type();
  const int64_t B = x.size(0), S = x.size(1), D = x.size(2);
  TORCH_CHECK(x.numel() > 0, op, ": x is empty (shape ", x.sizes(), ")");
  TORCH_CHECK(weight.defined() && weight.dim() == 2 && weight.size(1) >= 1, op,
              ": weight must have shape [D, K] with K >= 1, got ",
              weight.defined() ? weight.sizes() : at::IntArrayRef{});
  const int64_t K = weight.size(1);
  const at::ScalarType acc = state_dtype(s);
  const at::ScalarType w = weight.scalar_type() == s ? s : acc;
  const at::Device dev = x.device();
  check_tensor(weight, op, "weight", {D, K}, w, dev, "[D, K], float32 or the dtype of x");
  check_tensor(bias, op, "bias", {D}, weight.scalar_type(), dev, "[D], dtype of weight");
  // Not check_tensor: for K = 1 the buffer is empty, and valid.
  TORCH_CHECK(initial.defined() && initial.dim() == 3 && initial.size(0) == B && initial.size(1) == K - 1 &&
                  initial.size(2) == D,
              op, ": initial must have shape [", B, ", ", K - 1, ", ", D,
              "] ([B, K - 1, D]: the inputs before x), got ", initial.defined() ? initial.sizes() : at::IntArrayRef{});
  TORCH_CHECK(initial.scalar_type() == s && initial.device() == dev, op, ": initial must be ", s, " on ", dev,
              " like x, got ", initial.scalar_type(), " on ", initial.device());
  return {unit_last_stride(x), weight.to(acc).t().contiguous(), bias.to(acc).contiguous(), initial.contiguous(),
          B, S, D, K};
}

template <typename scalar_t, typename acc_t>
CausalConv1dSiluParams<scalar_t, acc_t> causal_conv1d_silu_params(const CausalConv1dSiluInputs& in,
                                                                  const at::Tensor& y) {
  CausalConv1dSiluParams<scalar_t, acc_t> p;
  p.batch = in.B;
  p.seq = in.S;
  p.dim = in.D;
  p.width = in.K;
  p.x = in.x.data_ptr<scalar_t>();
  p.x_stride_b = in.x.stride(0);
  p.x_stride_t = in.x.stride(1);
  p.initial = in.initial.data_ptr<scalar_t>();
  p.weight = in.weight.data_ptr<acc_t>();
  p.bias = in.bias.data_ptr<acc_t>();
  p.y = y.defined() ? y.data_ptr<scalar_t>() : nullptr;
  return p;
}

struct CausalConv1dSiluGrads {
  at::Tensor dy, dx, d_initial;
};

inline CausalConv1dSiluGrads causal_conv1d_silu_grads(const CausalConv1dSiluInputs& in, const at::Tensor& dy,
                                                      const char* op, OutputAllocator alloc) {
  check_tensor(dy, op, "dy", {in.B, in.S, in.D}, in.x.scalar_type(), in.x.device(), "[B, S, D], like x");
  const auto o = in.x.options();
  return {dy.contiguous(), alloc({in.B, in.S, in.D}, o), alloc({in.B, in.K - 1, in.D}, o)};
}

template <typename scalar_t, typename acc_t>
CausalConv1dSiluBwdParams<scalar_t, acc_t> causal_conv1d_silu_bwd_params(const CausalConv1dSiluInputs& in,
                                                                         const CausalConv1dSiluGrads& g) {
  CausalConv1dSiluBwdParams<scalar_t, acc_t> p;
  static_cast<CausalConv1dSiluParams<scalar_t, acc_t>&>(p) =
      causal_conv1d_silu_params<scalar_t, acc_t>(in, at::Tensor());
  p.dy = g.dy.data_ptr<scalar_t>();
  p.dx = g.dx.data_ptr<scalar_t>();
  p.d_initial = g.d_initial.data_ptr<scalar_t>();
  return p;
}

// d_weight_t (K, D) and d_bias (D) in the accumulation dtype, returned as the parameters' shapes and dtypes.
inline std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> causal_conv1d_silu_backward_result(
    const CausalConv1dSiluGrads& g, const at::Tensor& d_weight_t, const at::Tensor& d_bias, const at::Tensor& weight,
    const at::Tensor& bias) {
  return {g.dx, d_weight_t.t().to(weight.scalar_type()).contiguous(), d_bias.to(bias.scalar_type()), g.d_initial};
}

// The forward's output, y (B, S, D) like x: at::empty on the CPU, NaN-poisoned in the emulation.
inline at::Tensor causal_conv1d_silu_output(const CausalConv1dSiluInputs& in, OutputAllocator alloc) {
  return alloc({in.B, in.S, in.D}, in.x.options());
}

}  // namespace xlstm
