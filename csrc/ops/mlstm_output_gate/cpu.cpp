// The mLSTM output gate on the CPU: threads own ranges of (batch, time) rows and sweep each row's
// heads (statistics, then the elementwise pass; the loops over a head's features vectorize). The
// backward's weight gradients are summed per fixed tile of rows, then over the tiles in order: the
// same result for any thread count.
#include "cpu/vector_math.h"  // first: before anything declares the math functions

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <vector>

#include "common/registration.h"
#include "cpu/layer_norm.h"
#include "ops/mlstm_output_gate/host.h"

namespace xlstm {
namespace {

constexpr int64_t kRowGrain = 16, kRowsPerTile = 256;

}  // namespace

Tensor mlstm_output_gate_cpu(const Tensor& h, const Tensor& x_conv, const Tensor& z, const Tensor& norm_weight,
                             const Tensor& skip, double eps) {
  const MlstmOutputGateInputs in =
      mlstm_output_gate_inputs(h, x_conv, z, norm_weight, skip, eps, "mlstm_output_gate", at::kCPU, true);
  Tensor y = mlstm_output_gate_output(in, empty_cpu_output);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.h.scalar_type(), "mlstm_output_gate_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto p = mlstm_output_gate_params<scalar_t, acc_t>(in);
    p.y = y.data_ptr<scalar_t>();
    at::parallel_for(0, p.rows(), kRowGrain, [&](int64_t first, int64_t last) {
      const int64_t DH = p.DH;
      for (int64_t r = first; r < last; ++r) {
        const scalar_t *x_row = p.x_conv_row(r), *z_row = p.z_row(r);
        for (int64_t g = 0; g < p.NH; ++g) {
          const scalar_t* hs = p.h_segment(r, g);
          const FeatureStats<acc_t> st = feature_stats(hs, DH, p.eps);
          const int64_t o = g * DH;
          scalar_t* y_out = p.y + r * p.dim() + o;
          XLSTM_INDEPENDENT_ITERATIONS
          for (int64_t j = 0; j < DH; ++j)
            y_out[j] = scalar_t(mlstm_output_gate((acc_t(hs[j]) - st.mean) * st.rstd, acc_t(x_row[o + j]),
                                                  acc_t(z_row[o + j]), p.w[o + j], p.s[o + j]));
        }
      }
    });
  });
  return y;
}

Tensors5 mlstm_output_gate_backward_cpu(const Tensor& dy, const Tensor& h, const Tensor& x_conv, const Tensor& z,
                                        const Tensor& norm_weight, const Tensor& skip, double eps) {
  const char* op = "mlstm_output_gate_backward";
  const MlstmOutputGateInputs in = mlstm_output_gate_inputs(h, x_conv, z, norm_weight, skip, eps, op, at::kCPU, true);
  const MlstmOutputGateBackwardTensors t = mlstm_output_gate_backward_tensors(in, dy, op, empty_cpu_output);
  const int64_t rows = in.B * in.S, D = in.NH * in.DH, tiles = (rows + kRowsPerTile - 1) / kRowsPerTile;
  Tensor partial = at::zeros({tiles, 2, D}, in.w.options());  // per tile: d norm_weight, d skip
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.h.scalar_type(), "mlstm_output_gate_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto p = mlstm_output_gate_backward_params<scalar_t, acc_t>(in, t);
    acc_t* partial_all = partial.data_ptr<acc_t>();
    at::parallel_for(0, tiles, 1, [&](int64_t tile_first, int64_t tile_last) {
      const int64_t DH = p.DH;
      std::vector<acc_t> normed(DH), d_normed(DH);
      for (int64_t tile = tile_first; tile < tile_last; ++tile) {
        acc_t *dw_sum = partial_all + tile * 2 * D, *ds_sum = dw_sum + D;
        for (int64_t r = tile * kRowsPerTile; r < std::min(rows, (tile + 1) * kRowsPerTile); ++r) {
          const scalar_t *x_row = p.x_conv_row(r), *z_row = p.z_row(r), *dy_row = p.dy + r * D;
          scalar_t *dx_row = p.dx_conv + r * D, *dz_row = p.dz + r * D;
          for (int64_t g = 0; g < p.NH; ++g) {
            const scalar_t* hs = p.h_segment(r, g);
            const FeatureStats<acc_t> st = feature_stats(hs, DH, p.eps);
            const int64_t o = g * DH;
            acc_t *hn = normed.data(), *dhn = d_normed.data();
            XLSTM_INDEPENDENT_ITERATIONS
            for (int64_t j = 0; j < DH; ++j) {
              hn[j] = (acc_t(hs[j]) - st.mean) * st.rstd;
              const MlstmOutputGateGrads<acc_t> gr = mlstm_output_gate_backward(
                  acc_t(dy_row[o + j]), hn[j], acc_t(x_row[o + j]), acc_t(z_row[o + j]), p.w[o + j], p.s[o + j]);
              dhn[j] = gr.dh_normed;
              dx_row[o + j] = scalar_t(gr.dx_conv);
              dz_row[o + j] = scalar_t(gr.dz);
              dw_sum[o + j] += gr.dw;
              ds_sum[o + j] += gr.ds;
            }
            acc_t sum_d = 0, sum_dh = 0;
            XLSTM_VECTOR_SUM(sum_d)
            for (int64_t j = 0; j < DH; ++j) sum_d += dhn[j];
            XLSTM_VECTOR_SUM(sum_dh)
            for (int64_t j = 0; j < DH; ++j) sum_dh += dhn[j] * hn[j];
            const acc_t mean_d = sum_d / acc_t(DH), mean_dh = sum_dh / acc_t(DH);
            scalar_t* dh_out = p.dh_segment(r, g);
            XLSTM_INDEPENDENT_ITERATIONS
            for (int64_t j = 0; j < DH; ++j) dh_out[j] = scalar_t(mlstm_norm_backward(dhn[j], hn[j], st.rstd, mean_d, mean_dh));
          }
        }
      }
    });
  });
  // Over the tiles, in order; two sums, so that the two gradients are tensors of their own.
  const Tensor dw = partial.select(1, 0).sum(0), ds = partial.select(1, 1).sum(0);
  return {t.dh, t.dx_conv, t.dz, dw.to(norm_weight.scalar_type()), ds.to(skip.scalar_type())};
}

}  // namespace xlstm

XLSTM_CPU_KERNELS(m) {
  m.impl("mlstm_output_gate", &xlstm::mlstm_output_gate_cpu);
  m.impl("mlstm_output_gate_backward", &xlstm::mlstm_output_gate_backward_cpu);
}
