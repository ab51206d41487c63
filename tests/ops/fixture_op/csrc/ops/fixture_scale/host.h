// Tensor side of fixture_scale shared by the CPU and CUDA entry points: checks, outputs, params.
// Entry points (fixture_scale{,_backward}_{cpu,cuda}): y (N, D); the backward (dx, dw).
#pragma once

#include <ATen/ATen.h>

#include "common/checks.h"
#include "common/op_types.h"
#include "ops/fixture_scale/math.h"

namespace xlstm {

struct FixtureScaleInputs {
  at::Tensor x, w;  // (N, D) contiguous; (D) in the accumulation dtype
  int64_t rows, dim;
};

inline FixtureScaleInputs fixture_scale_inputs(const at::Tensor& x, const at::Tensor& w, const char* op,
                                               at::DeviceType device_type, bool float64_ok) {
  check_rank(x, op, "x", 2, "[N, D]");
  check_leading_input(x, op, "x", device_type, float64_ok);
  const int64_t N = x.size(0), D = x.size(1);
  check_tensor(x, op, "x", {N, D}, x.scalar_type(), x.device(), "[N, D]");
  const at::ScalarType acc = state_dtype(x.scalar_type());
  check_tensor(w, op, "w", {D}, w.scalar_type() == x.scalar_type() ? x.scalar_type() : acc, x.device(),
               "[D], float32 or the dtype of x");
  return {x.contiguous(), w.to(acc).contiguous(), N, D};
}

// The forward's output, and the backward's dx, like x (at::empty on the CPU, NaN-poisoned in the emulation).
inline at::Tensor fixture_scale_output(const FixtureScaleInputs& in, OutputAllocator alloc) {
  return alloc({in.rows, in.dim}, in.x.options());
}

inline at::Tensor fixture_scale_dy(const FixtureScaleInputs& in, const at::Tensor& dy, const char* op) {
  check_tensor(dy, op, "dy", {in.rows, in.dim}, in.x.scalar_type(), in.x.device(), "[N, D], like the output");
  return dy.contiguous();
}

template <typename scalar_t, typename acc_t>
FixtureScaleParams<scalar_t, acc_t> fixture_scale_params(const FixtureScaleInputs& in, const at::Tensor& y,
                                                         const at::Tensor& dy, const at::Tensor& dx) {
  FixtureScaleParams<scalar_t, acc_t> p{};
  p.rows = in.rows;
  p.dim = in.dim;
  p.x = in.x.data_ptr<scalar_t>();
  p.w = in.w.data_ptr<acc_t>();
  p.y = y.defined() ? y.data_ptr<scalar_t>() : nullptr;
  p.dy = dy.defined() ? dy.data_ptr<scalar_t>() : nullptr;
  p.dx = dx.defined() ? dx.data_ptr<scalar_t>() : nullptr;
  return p;
}

}  // namespace xlstm
