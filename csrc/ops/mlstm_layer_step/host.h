// Tensor side of mlstm_layer_step (CPU only): input checks, outputs, the params.
// Entry point mlstm_layer_step_cpu: (out (B, inner), conv buffer (B, K - 1, inner), C, n, m).
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <optional>

#include "common/checks.h"
#include "common/op_types.h"
#include "ops/mlstm_layer_step/math.h"

namespace xlstm {

struct MlstmLayerStepInputs {
  at::Tensor up, conv_buffer, conv_weight_t, conv_bias, q_weight, k_weight, v_weight;
  std::optional<at::Tensor> q_bias, k_bias, v_bias;
  at::Tensor gate_weight, gate_bias, C, n, m, norm_weight, skip;
  int64_t B, D, K, NH, DH, block;
};

// Checks every input against the sizes that up, conv_weight, q_weight and gate_weight fix; every
// tensor in up's dtype (float32 or float64: the step computes in it), on the CPU.
inline MlstmLayerStepInputs mlstm_layer_step_inputs(
    const at::Tensor& up, const at::Tensor& conv_buffer, const at::Tensor& conv_weight, const at::Tensor& conv_bias,
    const at::Tensor& q_weight, const at::Tensor& k_weight, const at::Tensor& v_weight,
    const std::optional<at::Tensor>& q_bias, const std::optional<at::Tensor>& k_bias,
    const std::optional<at::Tensor>& v_bias, const at::Tensor& gate_weight, const at::Tensor& gate_bias,
    const at::Tensor& C, const at::Tensor& n, const at::Tensor& m, const at::Tensor& norm_weight,
    const at::Tensor& skip, double norm_eps, double eps) {
  const char* op = "mlstm_layer_step";
  check_rank(up, op, "up", 2, "[B, 2 * inner]");
  check_leading_input(up, op, "up", at::kCPU, true);
  const at::ScalarType dt = up.scalar_type();
  TORCH_CHECK(dt == at::kFloat || dt == at::kDouble, op, ": up must be float32 or float64 (the CPU step), got ", dt);
  TORCH_CHECK(up.size(1) % 2 == 0, op, ": up must have shape [B, 2 * inner], got ", up.sizes());
  TORCH_CHECK(norm_eps >= 0.0 && std::isfinite(norm_eps), op, ": norm_eps must be finite and >= 0, got ", norm_eps);
  TORCH_CHECK(eps >= 0.0 && std::isfinite(eps), op, ": eps must be finite and >= 0, got ", eps);
  const at::Device dev = up.device();
  const int64_t B = up.size(0), D = up.size(1) / 2;
  check_tensor(up, op, "up", {B, 2 * D}, dt, dev, "[B, 2 * inner]");
  check_rank(conv_weight, op, "conv_weight", 3, "[inner, 1, K]");
  const int64_t K = conv_weight.size(2);
  check_tensor(conv_weight, op, "conv_weight", {D, 1, K}, dt, dev, "[inner, 1, K], the Conv1d weight, dtype of up");
  if (K > 1) {
    check_tensor(conv_buffer, op, "conv_buffer", {B, K - 1, D}, dt, dev, "[B, K - 1, inner], dtype of up");
  } else {
    TORCH_CHECK(conv_buffer.defined() && conv_buffer.dim() == 3 && conv_buffer.size(0) == B &&
                    conv_buffer.size(1) == 0 && conv_buffer.size(2) == D && conv_buffer.scalar_type() == dt &&
                    conv_buffer.device() == dev,
                op, ": conv_buffer must be an empty [B, 0, inner] tensor of up's dtype for K = 1");
  }
  check_tensor(conv_bias, op, "conv_bias", {D}, dt, dev, "[inner], dtype of up");
  check_rank(q_weight, op, "q_weight", 3, "[inner / block, block, block]");
  const int64_t block = q_weight.size(1);
  TORCH_CHECK(block > 0 && D % block == 0, op, ": q_weight's block size ", block, " does not divide inner ", D);
  check_tensor(q_weight, op, "q_weight", {D / block, block, block}, dt, dev, "[inner / block, block, block]");
  check_tensor(k_weight, op, "k_weight", {D / block, block, block}, dt, dev, "like q_weight");
  check_tensor(v_weight, op, "v_weight", {D / block, block, block}, dt, dev, "like q_weight");
  TORCH_CHECK(q_bias.has_value() == k_bias.has_value() && q_bias.has_value() == v_bias.has_value(), op,
              ": q_bias, k_bias and v_bias must be given all or none");
  if (q_bias.has_value()) {
    check_tensor(*q_bias, op, "q_bias", {D}, dt, dev, "[inner], dtype of up");
    check_tensor(*k_bias, op, "k_bias", {D}, dt, dev, "[inner], dtype of up");
    check_tensor(*v_bias, op, "v_bias", {D}, dt, dev, "[inner], dtype of up");
  }
  check_rank(gate_weight, op, "gate_weight", 2, "[2 * NH, 3 * inner]");
  const int64_t NH = gate_weight.size(0) / 2;
  TORCH_CHECK(NH > 0 && gate_weight.size(0) % 2 == 0 && D % NH == 0, op,
              ": gate_weight must have 2 * NH rows with NH dividing inner ", D, ", got ", gate_weight.sizes());
  const int64_t DH = D / NH;
  check_tensor(gate_weight, op, "gate_weight", {2 * NH, 3 * D}, dt, dev, "[2 * NH, 3 * inner], dtype of up");
  check_tensor(gate_bias, op, "gate_bias", {2 * NH}, dt, dev, "[2 * NH], dtype of up");
  check_tensor(C, op, "state C", {B, NH, DH, DH}, dt, dev, "[B, NH, DH, DH], dtype of up");
  check_tensor(n, op, "state n", {B, NH, DH}, dt, dev, "[B, NH, DH], dtype of up");
  check_tensor(m, op, "state m", {B, NH}, dt, dev, "[B, NH], dtype of up");
  check_tensor(norm_weight, op, "norm_weight", {D}, dt, dev, "[inner], dtype of up");
  check_tensor(skip, op, "skip", {D}, dt, dev, "[inner], dtype of up");
  const auto dense = [](const std::optional<at::Tensor>& t) {
    return t.has_value() ? std::optional<at::Tensor>(t->contiguous()) : std::nullopt;
  };
  return {unit_last_stride(up),
          conv_buffer.contiguous(),
          conv_weight.reshape({D, K}).t().contiguous(),
          conv_bias.contiguous(),
          q_weight.contiguous(),
          k_weight.contiguous(),
          v_weight.contiguous(),
          dense(q_bias),
          dense(k_bias),
          dense(v_bias),
          gate_weight.contiguous(),
          gate_bias.contiguous(),
          C.contiguous(),
          n.contiguous(),
          m.contiguous(),
          norm_weight.contiguous(),
          skip.contiguous(),
          B, D, K, NH, DH, block};
}

// out, conv buffer, C, n, m
using MlstmLayerStepOutputs = Tensors5;

inline MlstmLayerStepOutputs mlstm_layer_step_outputs(const MlstmLayerStepInputs& in) {
  const auto o = in.up.options();
  return {at::empty({in.B, in.D}, o), at::empty({in.B, in.K - 1, in.D}, o), at::empty(in.C.sizes(), o),
          at::empty(in.n.sizes(), o), at::empty(in.m.sizes(), o)};
}

// The params over the inputs, the outputs and `scratch` (B * (5 inner + 2 NH) elements).
template <typename T>
MlstmLayerStepParams<T> mlstm_layer_step_params(const MlstmLayerStepInputs& in, double norm_eps, double eps,
                                                const MlstmLayerStepOutputs& out, T* scratch) {
  const int64_t B = in.B, D = in.D, NH = in.NH;
  const auto ptr = [](const std::optional<at::Tensor>& t) { return t.has_value() ? t->data_ptr<T>() : nullptr; };
  MlstmLayerStepParams<T> p{};
  p.x_conv = scratch;
  p.qkv = scratch + B * D;
  p.gates = p.qkv + B * 3 * D;
  p.conv = {B, 1, D, in.K, in.up.data_ptr<T>(), in.up.stride(0), 0, in.conv_buffer.data_ptr<T>(),
            in.conv_weight_t.data_ptr<T>(), in.conv_bias.data_ptr<T>(), p.x_conv};
  p.cell.batch = B;
  p.cell.heads = NH;
  p.cell.dqk = p.cell.dv = in.DH;
  p.cell.q = {p.qkv, 3 * D, in.DH};
  p.cell.k = {p.qkv + D, 3 * D, in.DH};
  p.cell.v = {p.qkv + 2 * D, 3 * D, in.DH};
  p.cell.i = {p.gates, 2 * NH, 1};
  p.cell.f = {p.gates + NH, 2 * NH, 1};
  p.cell.C = in.C.data_ptr<T>();
  p.cell.n = in.n.data_ptr<T>();
  p.cell.m = in.m.data_ptr<T>();
  p.cell.scale = T(1) / std::sqrt(T(in.DH));
  p.cell.eps = T(eps);
  p.cell.h = std::get<0>(out).data_ptr<T>();
  p.cell.C_new = std::get<2>(out).data_ptr<T>();
  p.cell.n_new = std::get<3>(out).data_ptr<T>();
  p.cell.m_new = std::get<4>(out).data_ptr<T>();
  p.qkv_block = in.block;
  p.z = in.up.data_ptr<T>() + D;
  p.q_weight = in.q_weight.data_ptr<T>();
  p.k_weight = in.k_weight.data_ptr<T>();
  p.v_weight = in.v_weight.data_ptr<T>();
  p.q_bias = ptr(in.q_bias);
  p.k_bias = ptr(in.k_bias);
  p.v_bias = ptr(in.v_bias);
  p.gate_weight = in.gate_weight.data_ptr<T>();
  p.gate_bias = in.gate_bias.data_ptr<T>();
  p.norm_weight = in.norm_weight.data_ptr<T>();
  p.skip = in.skip.data_ptr<T>();
  p.norm_eps = T(norm_eps);
  p.out = std::get<0>(out).data_ptr<T>();
  p.conv_buffer_new = std::get<1>(out).data_ptr<T>();
  return p;
}

}  // namespace xlstm
