// Tensor side of the headwise linear map shared by the CPU and CUDA entry points.
// Entry points (headwise_linear{,_backward}_{cpu,cuda}): y (B, heads, S, G·O / heads); the backward
// (dx, d_weight).
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "common/checks.h"
#include "common/op_types.h"
#include "ops/headwise_linear/math.h"

namespace xlstm {

struct HeadwiseLinearInputs {
  at::Tensor x;       // (B, S, G*I), unit stride within rows
  at::Tensor weight;  // (G, O, I) in the accumulation dtype, contiguous
  int64_t B, S, G, O, I, heads;
  std::vector<int64_t> out_sizes() const { return {B, heads, S, G * O / heads}; }
};

inline HeadwiseLinearInputs headwise_linear_inputs(const at::Tensor& x, const at::Tensor& weight, int64_t heads,
                                                   const char* op, at::DeviceType device_type, bool float64_ok) {
  check_rank(x, op, "x", 3, "[B, S, G * I]");
  check_leading_input(x, op, "x", device_type, float64_ok);
  const at::ScalarType s = x.scalar_type();
  TORCH_CHECK(x.numel() > 0, op, ": x is empty (shape ", x.sizes(), ")");
  TORCH_CHECK(weight.defined() && weight.dim() == 3 && weight.numel() > 0, op,
              ": weight must have shape [G, O, I] (one O x I block per group), got ",
              weight.defined() ? weight.sizes() : at::IntArrayRef{});
  const int64_t G = weight.size(0), O = weight.size(1), I = weight.size(2);
  TORCH_CHECK(x.size(2) == G * I, op, ": x has ", x.size(2), " features but weight ", weight.sizes(),
              " takes G * I = ", G * I);
  TORCH_CHECK(heads >= 1 && G % heads == 0, op, ": heads must be >= 1 and divide the number of groups G = ", G,
              ", got ", heads);
  const at::ScalarType acc = state_dtype(s);
  check_tensor(weight, op, "weight", {G, O, I}, weight.scalar_type() == s ? s : acc, x.device(),
               "[G, O, I], float32 or the dtype of x");
  return {unit_last_stride(x), weight.to(acc).contiguous(), x.size(0), x.size(1), G, O, I, heads};
}

template <typename scalar_t, typename acc_t>
HeadwiseLinearParams<scalar_t, acc_t> headwise_linear_params(const HeadwiseLinearInputs& in, const at::Tensor& y,
                                                             const at::Tensor& dy, const at::Tensor& dx) {
  HeadwiseLinearParams<scalar_t, acc_t> p;
  p.batch = in.B;
  p.seq = in.S;
  p.groups = in.G;
  p.out_block = in.O;
  p.in_block = in.I;
  p.heads = in.heads;
  p.x = in.x.data_ptr<scalar_t>();
  p.x_stride_b = in.x.stride(0);
  p.x_stride_s = in.x.stride(1);
  p.weight = in.weight.data_ptr<acc_t>();
  p.y = y.defined() ? y.data_ptr<scalar_t>() : nullptr;
  p.dy = dy.defined() ? dy.data_ptr<scalar_t>() : nullptr;
  p.dx = dx.defined() ? dx.data_ptr<scalar_t>() : nullptr;
  return p;
}

inline at::Tensor headwise_linear_dy(const HeadwiseLinearInputs& in, const at::Tensor& dy, const char* op) {
  const std::vector<int64_t> sizes = in.out_sizes();
  check_tensor(dy, op, "dy", {sizes[0], sizes[1], sizes[2], sizes[3]}, in.x.scalar_type(), in.x.device(),
               "[B, heads, S, G * O / heads], like the output");
  return dy.contiguous();
}

// The forward's output and the backward's dx, like y and x (at::empty on the CPU, NaN-poisoned in
// the emulation).
inline at::Tensor headwise_linear_output(const HeadwiseLinearInputs& in, OutputAllocator alloc) {
  return alloc(in.out_sizes(), in.x.options());
}
inline at::Tensor headwise_linear_dx(const HeadwiseLinearInputs& in, OutputAllocator alloc) {
  return alloc({in.B, in.S, in.G * in.I}, in.x.options());
}

}  // namespace xlstm
