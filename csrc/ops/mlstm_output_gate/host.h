// Tensor side of the mLSTM output gate shared by the CPU and CUDA entry points.
// Entry points (mlstm_output_gate{,_backward}_{cpu,cuda}): y (B, S, D); the backward (dh, dx_conv,
// dz, d norm_weight, d skip), dh in h's layout.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/checks.h"
#include "common/op_types.h"
#include "ops/mlstm_output_gate/math.h"

namespace xlstm {

struct MlstmOutputGateInputs {
  at::Tensor h;          // (B, S, NH, DH), unit stride over DH
  at::Tensor x_conv, z;  // (B, S, D), unit stride over D
  at::Tensor w, s;       // (D) in the accumulation dtype
  int64_t B, S, NH, DH;
  double eps;
};

inline MlstmOutputGateInputs mlstm_output_gate_inputs(const at::Tensor& h, const at::Tensor& x_conv,
                                                      const at::Tensor& z, const at::Tensor& w, const at::Tensor& s,
                                                      double eps, const char* op, at::DeviceType device_type,
                                                      bool float64_ok) {
  check_rank(h, op, "h", 4, "[B, S, NH, DH]");
  check_leading_input(h, op, "h", device_type, float64_ok);
  const at::ScalarType st = h.scalar_type();
  const int64_t B = h.size(0), S = h.size(1), NH = h.size(2), DH = h.size(3), D = NH * DH;
  check_tensor(h, op, "h", {B, S, NH, DH}, st, h.device(), "[B, S, NH, DH]");
  check_tensor(x_conv, op, "x_conv", {B, S, D}, st, h.device(), "[B, S, NH * DH], h's dtype");
  check_tensor(z, op, "z", {B, S, D}, st, h.device(), "[B, S, NH * DH], h's dtype");
  const at::ScalarType acc = state_dtype(st);
  check_tensor(w, op, "norm_weight", {D}, w.scalar_type() == st ? st : acc, h.device(), "[NH * DH], float32 or h's dtype");
  check_tensor(s, op, "skip", {D}, w.scalar_type(), h.device(), "[NH * DH], dtype of norm_weight");
  TORCH_CHECK(eps > 0 && std::isfinite(eps), op, ": eps must be positive and finite, got ", eps);
  return {unit_last_stride(h), unit_last_stride(x_conv), unit_last_stride(z), w.to(acc).contiguous(),
          s.to(acc).contiguous(), B, S, NH, DH, eps};
}

template <typename scalar_t, typename acc_t>
MlstmOutputGateParams<scalar_t, acc_t> mlstm_output_gate_params(const MlstmOutputGateInputs& in) {
  MlstmOutputGateParams<scalar_t, acc_t> p{};
  p.B = in.B;
  p.S = in.S;
  p.NH = in.NH;
  p.DH = in.DH;
  p.eps = static_cast<acc_t>(in.eps);
  p.h = in.h.data_ptr<scalar_t>();
  p.x_conv = in.x_conv.data_ptr<scalar_t>();
  p.z = in.z.data_ptr<scalar_t>();
  p.h_b = in.h.stride(0);
  p.h_s = in.h.stride(1);
  p.h_h = in.h.stride(2);
  p.x_conv_b = in.x_conv.stride(0);
  p.x_conv_s = in.x_conv.stride(1);
  p.z_b = in.z.stride(0);
  p.z_s = in.z.stride(1);
  p.w = in.w.data_ptr<acc_t>();
  p.s = in.s.data_ptr<acc_t>();
  return p;
}

// The forward's output (B, S, D) (at::empty on the CPU, NaN-poisoned in the emulation).
inline at::Tensor mlstm_output_gate_output(const MlstmOutputGateInputs& in, OutputAllocator alloc) {
  return alloc({in.B, in.S, in.NH * in.DH}, in.h.options());
}

// The backward's upstream gradient, checked and contiguous, and its gradients: dx_conv and dz like
// y; dh in h's layout (head-major for the cell's output), so that the cell's backward reads it
// without a copy.
struct MlstmOutputGateBackwardTensors {
  at::Tensor dy, dh, dx_conv, dz;
};
inline MlstmOutputGateBackwardTensors mlstm_output_gate_backward_tensors(const MlstmOutputGateInputs& in,
                                                                         const at::Tensor& dy, const char* op,
                                                                         OutputAllocator alloc) {
  check_tensor(dy, op, "dy", {in.B, in.S, in.NH * in.DH}, in.h.scalar_type(), in.h.device(),
               "[B, S, NH * DH], like the output");
  const at::Tensor& h = in.h;
  // The dimensions of h from the largest stride down: dh is allocated in that order, then viewed back.
  std::vector<int64_t> order{0, 1, 2};
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return h.stride(a) > h.stride(b); });
  std::vector<int64_t> sizes, inverse(4);
  for (int64_t d : order) sizes.push_back(h.size(d));
  sizes.push_back(in.DH);
  std::vector<int64_t> permutation(order.begin(), order.end());
  permutation.push_back(3);
  for (int64_t d = 0; d < 4; ++d) inverse[permutation[d]] = d;
  const at::Tensor dh = alloc(sizes, h.options()).permute(inverse);
  return {dy.contiguous(), dh, mlstm_output_gate_output(in, alloc), mlstm_output_gate_output(in, alloc)};
}

// The params of the backward: the forward's, with the upstream gradient and the gradients' pointers
// (dh in its own layout).
template <typename scalar_t, typename acc_t>
MlstmOutputGateParams<scalar_t, acc_t> mlstm_output_gate_backward_params(const MlstmOutputGateInputs& in,
                                                                         const MlstmOutputGateBackwardTensors& t) {
  MlstmOutputGateParams<scalar_t, acc_t> p = mlstm_output_gate_params<scalar_t, acc_t>(in);
  p.dy = t.dy.data_ptr<scalar_t>();
  p.dh = t.dh.data_ptr<scalar_t>();
  p.dh_b = t.dh.stride(0);
  p.dh_s = t.dh.stride(1);
  p.dh_h = t.dh.stride(2);
  p.dx_conv = t.dx_conv.data_ptr<scalar_t>();
  p.dz = t.dz.data_ptr<scalar_t>();
  return p;
}

}  // namespace xlstm
