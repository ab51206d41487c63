// Tensor side of slstm_layer_step (CPU only): input checks, outputs, the params.
// Entry point slstm_layer_step_cpu: (y (B, D), conv buffer (B, K - 1, D), or empty without a conv,
// h, c, n, m (B, NH, DH) each).
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <optional>

#include "common/checks.h"
#include "common/op_types.h"
#include "ops/slstm_layer_step/math.h"

namespace xlstm {

struct SlstmLayerStepInputs {
  at::Tensor x, conv_buffer, conv_weight_t, conv_bias;  // the conv's undefined without one
  at::Tensor gate_weight, R, b, h, c, n, m, norm_weight;
  int64_t B, D, K, NH, DH;  // K = 0: no conv
};

// Checks every input against the sizes that x, conv_weight and gate_weight fix; every tensor in
// x's dtype (float32 or float64: the step computes in it), on the CPU.
inline SlstmLayerStepInputs slstm_layer_step_inputs(const at::Tensor& x, const std::optional<at::Tensor>& conv_buffer,
                                                    const std::optional<at::Tensor>& conv_weight,
                                                    const std::optional<at::Tensor>& conv_bias,
                                                    const at::Tensor& gate_weight, const at::Tensor& R,
                                                    const at::Tensor& b, const at::Tensor& h, const at::Tensor& c,
                                                    const at::Tensor& n, const at::Tensor& m,
                                                    const at::Tensor& norm_weight, double norm_eps) {
  const char* op = "slstm_layer_step";
  check_rank(x, op, "x", 2, "[B, D]");
  check_leading_input(x, op, "x", at::kCPU, true);
  const at::ScalarType dt = x.scalar_type();
  TORCH_CHECK(dt == at::kFloat || dt == at::kDouble, op, ": x must be float32 or float64 (the CPU step), got ", dt);
  TORCH_CHECK(norm_eps >= 0.0 && std::isfinite(norm_eps), op, ": norm_eps must be finite and >= 0, got ", norm_eps);
  const at::Device dev = x.device();
  const int64_t B = x.size(0), D = x.size(1);
  check_tensor(x, op, "x", {B, D}, dt, dev, "[B, D]");
  check_rank(gate_weight, op, "gate_weight", 4, "[NH, 4, DH, DH]");
  const int64_t NH = gate_weight.size(0), DH = gate_weight.size(2);
  TORCH_CHECK(NH * DH == D, op, ": gate_weight must have shape [NH, 4, DH, DH] with NH * DH = D = ", D, ", got ",
              gate_weight.sizes());
  check_tensor(gate_weight, op, "gate_weight", {NH, 4, DH, DH}, dt, dev, "[NH, 4, DH, DH], dtype of x");
  check_tensor(R, op, "R", {NH, DH, 4, DH}, dt, dev, "[NH, DH, 4, DH], dtype of x");
  check_tensor(b, op, "b", {NH, 4, DH}, dt, dev, "[NH, 4, DH], dtype of x");
  check_tensor(h, op, "state h", {B, NH, DH}, dt, dev, "[B, NH, DH], dtype of x");
  check_tensor(c, op, "state c", {B, NH, DH}, dt, dev, "[B, NH, DH], dtype of x");
  check_tensor(n, op, "state n", {B, NH, DH}, dt, dev, "[B, NH, DH], dtype of x");
  check_tensor(m, op, "state m", {B, NH, DH}, dt, dev, "[B, NH, DH], dtype of x");
  check_tensor(norm_weight, op, "norm_weight", {D}, dt, dev, "[D], dtype of x");
  TORCH_CHECK(conv_weight.has_value() == conv_bias.has_value() && conv_weight.has_value() == conv_buffer.has_value(),
              op, ": conv_buffer, conv_weight and conv_bias must be given all or none (no conv)");
  int64_t K = 0;
  at::Tensor buffer, weight_t, bias;
  if (conv_weight.has_value()) {
    check_rank(*conv_weight, op, "conv_weight", 3, "[D, 1, K]");
    K = conv_weight->size(2);
    check_tensor(*conv_weight, op, "conv_weight", {D, 1, K}, dt, dev, "[D, 1, K], the Conv1d weight, dtype of x");
    check_tensor(*conv_bias, op, "conv_bias", {D}, dt, dev, "[D], dtype of x");
    if (K > 1) {
      check_tensor(*conv_buffer, op, "conv_buffer", {B, K - 1, D}, dt, dev, "[B, K - 1, D], dtype of x");
    } else {
      TORCH_CHECK(conv_buffer->dim() == 3 && conv_buffer->size(0) == B && conv_buffer->size(1) == 0 &&
                      conv_buffer->size(2) == D && conv_buffer->scalar_type() == dt && conv_buffer->device() == dev,
                  op, ": conv_buffer must be an empty [B, 0, D] tensor of x's dtype for K = 1");
    }
    buffer = conv_buffer->contiguous();
    weight_t = conv_weight->reshape({D, K}).t().contiguous();
    bias = conv_bias->contiguous();
  }
  return {unit_last_stride(x), buffer, weight_t, bias, gate_weight.contiguous(), R.contiguous(), b.contiguous(),
          h.contiguous(), c.contiguous(), n.contiguous(), m.contiguous(), norm_weight.contiguous(), B, D, K, NH, DH};
}

// y, conv buffer, h, c, n, m
using SlstmLayerStepOutputs = Tensors6;

inline SlstmLayerStepOutputs slstm_layer_step_outputs(const SlstmLayerStepInputs& in) {
  const auto o = in.x.options();
  const auto state = [&] { return at::empty({in.B, in.NH, in.DH}, o); };
  return {at::empty({in.B, in.D}, o),
          in.K > 0 ? at::empty({in.B, in.K - 1, in.D}, o) : at::empty({0}, o),
          state(),
          state(),
          state(),
          state()};
}

// Scratch elements: x_conv and x_gates (B (D + 4 D)), the trace (9 B 2 D), the transposed gate
// weight (4 D DH).
inline int64_t slstm_layer_step_scratch(const SlstmLayerStepInputs& in) {
  return in.B * 5 * in.D + kSlstmTracePlanes * in.B * 2 * in.D + 4 * in.D * in.DH;
}

template <typename T>
SlstmLayerStepParams<T> slstm_layer_step_params(const SlstmLayerStepInputs& in, double norm_eps,
                                                const SlstmLayerStepOutputs& out, T* scratch) {
  const int64_t B = in.B, D = in.D, NH = in.NH, DH = in.DH;
  SlstmLayerStepParams<T> p{};
  p.x_conv = scratch;
  p.x_gates = scratch + B * D;
  T* trace = p.x_gates + B * 4 * D;
  p.gate_weight_t = trace + kSlstmTracePlanes * B * 2 * D;
  p.x = in.x.data_ptr<T>();
  if (in.K > 0)
    p.conv = {B, 1, D, in.K, p.x, in.x.stride(0), 0, in.conv_buffer.data_ptr<T>(), in.conv_weight_t.data_ptr<T>(),
              in.conv_bias.data_ptr<T>(), p.x_conv};
  p.conv.x_stride_b = in.x.stride(0);
  p.cell.batch = B;
  p.cell.seq = 1;
  p.cell.heads = NH;
  p.cell.dh = DH;
  p.cell.x = p.x_gates;
  p.cell.x_stride_b = p.cell.x_stride_t = 4 * D;
  p.cell.x_stride_h = 4 * DH;
  p.cell.R = in.R.data_ptr<T>();
  p.cell.RT = nullptr;  // the backward's
  p.cell.bias = in.b.data_ptr<T>();
  p.cell.trace = trace;
  p.cell.slots = 2;
  p.cell.h_out = std::get<0>(out).data_ptr<T>();
  p.norm_weight = in.norm_weight.data_ptr<T>();
  p.norm_eps = T(norm_eps);
  p.y = std::get<0>(out).data_ptr<T>();
  p.conv_buffer_new = in.K > 0 ? std::get<1>(out).data_ptr<T>() : nullptr;
  return p;
}

}  // namespace xlstm
