// mlstm_layer_step on the CPU: threads own batch rows; each row runs the parts in order (conv, q /
// k / v, gates, cell, norm, output gate, buffer shift) on data that stays in L1.
#include "cpu/vector_math.h"  // first: before anything declares the math functions

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "common/registration.h"
#include "cpu/layer_norm.h"
#include "ops/headwise_linear/math.h"
#include "ops/mlstm_layer_step/host.h"
#include "ops/mlstm_output_gate/math.h"

namespace xlstm {
namespace {

// y = headwise(x) (+ bias) over a row of `width` features in blocks of p.qkv_block; kBlock: the
// block size where it is the layers' 4 (the loops unroll), else 0.
template <int kBlock, typename T>
void headwise_row(const MlstmLayerStepParams<T>& p, const T* weight, const T* bias, const T* x, int64_t width, T* y) {
  const int64_t block = kBlock ? kBlock : p.qkv_block;
  for (int64_t g = 0; g < width / block; ++g)
    headwise_linear_group<kBlock, kBlock>(weight + g * block * block, x + g * block, block, block, y + g * block);
  if (bias != nullptr) {
    XLSTM_INDEPENDENT_ITERATIONS
    for (int64_t d = 0; d < width; ++d) y[d] += bias[d];
  }
}

// Batch row b. cell_work: the cell step's 2 DH accumulators.
template <int kBlock, typename T>
void mlstm_layer_step_row(const MlstmLayerStepParams<T>& p, int64_t b, T* cell_work) {
  const int64_t D = p.conv.dim, K = p.conv.width, NH = p.cell.heads, DH = p.cell.dv;
  const T* x_m = p.conv.x + b * p.conv.x_stride_b;
  const T* z = p.z + b * p.conv.x_stride_b;
  T *x_conv = p.x_conv + b * D, *qkv = p.qkv + b * 3 * D, *gates = p.gates + b * 2 * NH, *out = p.out + b * D;

  pre_activation_row(p.conv, b, 0, 0, D, x_conv);
  XLSTM_INDEPENDENT_ITERATIONS
  for (int64_t d = 0; d < D; ++d) x_conv[d] = silu(x_conv[d]);

  headwise_row<kBlock>(p, p.q_weight, p.q_bias, x_conv, D, qkv);
  headwise_row<kBlock>(p, p.k_weight, p.k_bias, x_conv, D, qkv + D);
  headwise_row<kBlock>(p, p.v_weight, p.v_bias, x_m, D, qkv + 2 * D);

  for (int64_t r = 0; r < 2 * NH; ++r) {
    const T* w = p.gate_weight + r * 3 * D;
    T sum = 0;
    XLSTM_VECTOR_SUM(sum)
    for (int64_t c = 0; c < 3 * D; ++c) sum += w[c] * qkv[c];
    gates[r] = sum + p.gate_bias[r];
  }

  for (int64_t h = 0; h < NH; ++h) {
    mlstm_step_fwd_row(p.cell, b, h, cell_work);  // h into out, (b, h)'s rows
    normalise_features(out + h * DH, DH, p.norm_eps);
  }
  XLSTM_INDEPENDENT_ITERATIONS
  for (int64_t d = 0; d < D; ++d) out[d] = mlstm_output_gate(out[d], x_conv[d], z[d], p.norm_weight[d], p.skip[d]);

  if (K > 1) {
    T* buffer = p.conv_buffer_new + b * (K - 1) * D;
    std::copy_n(p.conv.initial + (b * (K - 1) + 1) * D, (K - 2) * D, buffer);
    std::copy_n(x_m, D, buffer + (K - 2) * D);
  }
}

}  // namespace

Tensors5 mlstm_layer_step_cpu(const Tensor& up, const Tensor& conv_buffer, const Tensor& conv_weight,
                              const Tensor& conv_bias, const Tensor& q_weight, const Tensor& k_weight,
                              const Tensor& v_weight, const std::optional<Tensor>& q_bias,
                              const std::optional<Tensor>& k_bias, const std::optional<Tensor>& v_bias,
                              const Tensor& gate_weight, const Tensor& gate_bias, const Tensor& C, const Tensor& n,
                              const Tensor& m, const Tensor& norm_weight, const Tensor& skip, double norm_eps,
                              double eps) {
  const MlstmLayerStepInputs in = mlstm_layer_step_inputs(up, conv_buffer, conv_weight, conv_bias, q_weight, k_weight,
                                                          v_weight, q_bias, k_bias, v_bias, gate_weight, gate_bias, C,
                                                          n, m, norm_weight, skip, norm_eps, eps);
  const MlstmLayerStepOutputs out = mlstm_layer_step_outputs(in);
  Tensor scratch = at::empty({in.B * (5 * in.D + 2 * in.NH)}, in.up.options());
  AT_DISPATCH_FLOATING_TYPES(in.up.scalar_type(), "mlstm_layer_step_cpu", [&] {
    const auto p = mlstm_layer_step_params<scalar_t>(in, norm_eps, eps, out, scratch.data_ptr<scalar_t>());
    at::parallel_for(0, in.B, 1, [&](int64_t first, int64_t last) {
      std::vector<scalar_t> cell_work(2 * in.DH);
      for (int64_t b = first; b < last; ++b) {
        if (in.block == 4)
          mlstm_layer_step_row<4>(p, b, cell_work.data());
        else
          mlstm_layer_step_row<0>(p, b, cell_work.data());
      }
    });
  });
  return out;
}

}  // namespace xlstm

XLSTM_CPU_KERNELS(m) { m.impl("mlstm_layer_step", &xlstm::mlstm_layer_step_cpu); }
