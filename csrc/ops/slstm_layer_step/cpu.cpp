// slstm_layer_step on the CPU: the conv by batch rows, then per head the gate projections (small
// GEMMs over the batch, as the headwise op computes them) and the sLSTM op's own step loop, then
// the norm by batch rows.
#include "cpu/vector_math.h"  // first: before anything declares the math functions

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "common/registration.h"
#include "cpu/layer_norm.h"
#include "cpu/small_gemm.h"
#include "ops/slstm/cpu_tile.h"
#include "ops/slstm_layer_step/host.h"

namespace xlstm {
namespace {

template <typename T>
void conv_rows(const SlstmLayerStepParams<T>& p, int64_t first, int64_t last) {
  const int64_t D = p.conv.dim, K = p.conv.width;
  for (int64_t b = first; b < last; ++b) {
    T* x_conv = p.x_conv + b * D;
    pre_activation_row(p.conv, b, 0, 0, D, x_conv);
    XLSTM_INDEPENDENT_ITERATIONS
    for (int64_t d = 0; d < D; ++d) x_conv[d] = silu(x_conv[d]);
    if (K > 1) {
      const T* x = p.x + b * p.conv.x_stride_b;
      T* buffer = p.conv_buffer_new + b * (K - 1) * D;
      std::copy_n(p.conv.initial + (b * (K - 1) + 1) * D, (K - 2) * D, buffer);
      std::copy_n(x, D, buffer + (K - 2) * D);
    }
  }
}

// Head h: x_gates from its two sources, then the cell step over the batch in tiles.
template <typename T>
void head_step(const SlstmLayerStepParams<T>& p, int64_t h, bool conv, T* raw) {
  const SlstmParams<T, T>& cell = p.cell;
  const int64_t B = cell.batch, DH = cell.dh, D = cell.heads * DH;
  const T* sources[2] = {conv ? p.x_conv : p.x, p.x};
  const int64_t source_stride[2] = {conv ? D : p.conv.x_stride_b, p.conv.x_stride_b};
  for (int s = 0; s < 2; ++s)
    small_gemm(B, 2 * DH, DH, sources[s] + h * DH, source_stride[s], p.gate_weight_t + (2 * h + s) * DH * 2 * DH,
               2 * DH, p.x_gates + h * 4 * DH + s * 2 * DH, 4 * D);
  for (int64_t b0 = 0; b0 < B; b0 += kSlstmCpuBatchTile)
    slstm_fwd_tile(cell, h, b0, std::min(kSlstmCpuBatchTile, B - b0), raw);
}

}  // namespace

Tensors6 slstm_layer_step_cpu(const Tensor& x, const std::optional<Tensor>& conv_buffer,
                              const std::optional<Tensor>& conv_weight, const std::optional<Tensor>& conv_bias,
                              const Tensor& gate_weight, const Tensor& R, const Tensor& b, const Tensor& h,
                              const Tensor& c, const Tensor& n, const Tensor& m, const Tensor& norm_weight,
                              double norm_eps) {
  const SlstmLayerStepInputs in =
      slstm_layer_step_inputs(x, conv_buffer, conv_weight, conv_bias, gate_weight, R, b, h, c, n, m, norm_weight,
                              norm_eps);
  const SlstmLayerStepOutputs out = slstm_layer_step_outputs(in);
  Tensor scratch = at::empty({slstm_layer_step_scratch(in)}, in.x.options());
  AT_DISPATCH_FLOATING_TYPES(in.x.scalar_type(), "slstm_layer_step_cpu", [&] {
    using T = scalar_t;
    const auto p = slstm_layer_step_params<T>(in, norm_eps, out, scratch.data_ptr<T>());
    const int64_t B = in.B, D = in.D, NH = in.NH, DH = in.DH;
    if (in.K > 0) at::parallel_for(0, B, 1, [&](int64_t first, int64_t last) { conv_rows(p, first, last); });
    // The gate weight's (2 DH, DH) blocks per head and source, transposed for the products.
    const T* weight = in.gate_weight.data_ptr<T>();
    for (int64_t block = 0; block < 2 * NH; ++block)
      transpose_into(weight + block * 2 * DH * DH, 2 * DH, DH, DH, p.gate_weight_t + block * DH * 2 * DH);
    // The state into the trace's slot 0; the step writes slot 1.
    const T* state[4] = {in.h.data_ptr<T>(), in.c.data_ptr<T>(), in.n.data_ptr<T>(), in.m.data_ptr<T>()};
    for (int g = 0; g < 4; ++g)
      for (int64_t r = 0; r < B; ++r) std::copy_n(state[g] + r * D, D, p.cell.trace + p.cell.trace_index(g, r, 0, 0));
    at::parallel_for(0, NH, 1, [&](int64_t first, int64_t last) {
      std::vector<T> raw(kSlstmCpuBatchTile * 4 * DH);
      for (int64_t head = first; head < last; ++head) head_step(p, head, in.K > 0, raw.data());
    });
    T* new_state[4] = {std::get<2>(out).data_ptr<T>(), std::get<3>(out).data_ptr<T>(), std::get<4>(out).data_ptr<T>(),
                       std::get<5>(out).data_ptr<T>()};
    for (int g = 0; g < 4; ++g)
      for (int64_t r = 0; r < B; ++r)
        std::copy_n(p.cell.trace + p.cell.trace_index(g, r, 1, 0), D, new_state[g] + r * D);
    at::parallel_for(0, B, 1, [&](int64_t first, int64_t last) {
      for (int64_t r = first; r < last; ++r) {
        T* y = p.y + r * D;
        for (int64_t head = 0; head < NH; ++head) normalise_features(y + head * DH, DH, p.norm_eps);
        XLSTM_INDEPENDENT_ITERATIONS
        for (int64_t d = 0; d < D; ++d) y[d] *= p.norm_weight[d];
      }
    });
  });
  return out;
}

}  // namespace xlstm

XLSTM_CPU_KERNELS(m) { m.impl("slstm_layer_step", &xlstm::slstm_layer_step_cpu); }
