// Tensor side of the mLSTM output gate shared by the CPU and CUDA entry points.
// Entry points (mlstm_output_gate{,_backward}_{cpu,cuda}): y (N, D); the backward (dh, dx_conv, dz,
// d norm_weight, d skip).
#pragma once

#include <ATen/ATen.h>

#include "common/checks.h"
#include "common/op_types.h"
#include "ops/mlstm_output_gate/math.h"

namespace xlstm {

struct MlstmOutputGateInputs {
  at::Tensor h, x_conv, z;  // (rows, D), unit stride within rows
  at::Tensor w, s;          // (D) in the accumulation dtype
  int64_t rows, D;
};

inline MlstmOutputGateInputs mlstm_output_gate_inputs(const at::Tensor& h, const at::Tensor& x_conv,
                                                      const at::Tensor& z, const at::Tensor& w, const at::Tensor& s,
                                                      const char* op, at::DeviceType device_type, bool float64_ok) {
  check_rank(h, op, "h", 2, "[N, D]");
  check_leading_input(h, op, "h", device_type, float64_ok);
  const at::ScalarType st = h.scalar_type();
  const int64_t N = h.size(0), D = h.size(1);
  check_tensor(h, op, "h", {N, D}, st, h.device(), "[N, D]");
  check_tensor(x_conv, op, "x_conv", {N, D}, st, h.device(), "[N, D], like h");
  check_tensor(z, op, "z", {N, D}, st, h.device(), "[N, D], like h");
  const at::ScalarType acc = state_dtype(st);
  check_tensor(w, op, "norm_weight", {D}, w.scalar_type() == st ? st : acc, h.device(), "[D], float32 or h's dtype");
  check_tensor(s, op, "skip", {D}, w.scalar_type(), h.device(), "[D], dtype of norm_weight");
  return {unit_last_stride(h), unit_last_stride(x_conv), unit_last_stride(z), w.to(acc).contiguous(),
          s.to(acc).contiguous(), N, D};
}

template <typename scalar_t, typename acc_t>
MlstmOutputGateParams<scalar_t, acc_t> mlstm_output_gate_params(const MlstmOutputGateInputs& in) {
  MlstmOutputGateParams<scalar_t, acc_t> p{};
  p.rows = in.rows;
  p.dim = in.D;
  p.h = in.h.data_ptr<scalar_t>();
  p.x_conv = in.x_conv.data_ptr<scalar_t>();
  p.z = in.z.data_ptr<scalar_t>();
  p.h_stride = in.h.stride(0);
  p.x_conv_stride = in.x_conv.stride(0);
  p.z_stride = in.z.stride(0);
  p.w = in.w.data_ptr<acc_t>();
  p.s = in.s.data_ptr<acc_t>();
  return p;
}

// The forward's output (N, D) like h (at::empty on the CPU, NaN-poisoned in the emulation).
inline at::Tensor mlstm_output_gate_output(const MlstmOutputGateInputs& in, OutputAllocator alloc) {
  return alloc({in.rows, in.D}, in.h.options());
}

// The backward's upstream gradient, checked and contiguous, and its row gradients, each like h.
struct MlstmOutputGateBackwardTensors {
  at::Tensor dy, dh, dx_conv, dz;
};
inline MlstmOutputGateBackwardTensors mlstm_output_gate_backward_tensors(const MlstmOutputGateInputs& in,
                                                                         const at::Tensor& dy, const char* op,
                                                                         OutputAllocator alloc) {
  check_tensor(dy, op, "dy", {in.rows, in.D}, in.h.scalar_type(), in.h.device(), "[N, D], like the output");
  return {dy.contiguous(), mlstm_output_gate_output(in, alloc), mlstm_output_gate_output(in, alloc),
          mlstm_output_gate_output(in, alloc)};
}

}  // namespace xlstm
