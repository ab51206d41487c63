// The mLSTM output gate on the CPU: threads own ranges of features (so the weight gradients need
// no reduction between them) and sweep the rows; the loops over a range's features vectorize.
#include "cpu/vector_math.h"  // first: before anything declares the math functions

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <vector>

#include "common/registration.h"
#include "ops/mlstm_output_gate/host.h"

namespace xlstm {
namespace {

constexpr int64_t kFeatureGrain = 16;

}  // namespace

Tensor mlstm_output_gate_cpu(const Tensor& h, const Tensor& x_conv, const Tensor& z, const Tensor& norm_weight,
                             const Tensor& skip) {
  const MlstmOutputGateInputs in =
      mlstm_output_gate_inputs(h, x_conv, z, norm_weight, skip, "mlstm_output_gate", at::kCPU, true);
  Tensor y = mlstm_output_gate_output(in, empty_cpu_output);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.h.scalar_type(), "mlstm_output_gate_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto p = mlstm_output_gate_params<scalar_t, acc_t>(in);
    p.y = y.data_ptr<scalar_t>();
    at::parallel_for(0, in.rows, 64, [&](int64_t first, int64_t last) {
      for (int64_t r = first; r < last; ++r) {
        XLSTM_INDEPENDENT_ITERATIONS
        for (int64_t d = 0; d < p.dim; ++d)
          p.y[r * p.dim + d] =
              scalar_t(mlstm_output_gate(p.h_at(r, d), p.x_conv_at(r, d), p.z_at(r, d), p.w[d], p.s[d]));
      }
    });
  });
  return y;
}

Tensors5 mlstm_output_gate_backward_cpu(const Tensor& dy, const Tensor& h, const Tensor& x_conv, const Tensor& z,
                                        const Tensor& norm_weight, const Tensor& skip) {
  const char* op = "mlstm_output_gate_backward";
  const MlstmOutputGateInputs in = mlstm_output_gate_inputs(h, x_conv, z, norm_weight, skip, op, at::kCPU, true);
  const MlstmOutputGateBackwardTensors t = mlstm_output_gate_backward_tensors(in, dy, op, empty_cpu_output);
  Tensor dw = at::empty({in.D}, in.w.options()), ds = at::empty({in.D}, in.w.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.h.scalar_type(), "mlstm_output_gate_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto p = mlstm_output_gate_params<scalar_t, acc_t>(in);
    p.dy = t.dy.data_ptr<scalar_t>();
    p.dh = t.dh.data_ptr<scalar_t>();
    p.dx_conv = t.dx_conv.data_ptr<scalar_t>();
    p.dz = t.dz.data_ptr<scalar_t>();
    acc_t *dw_out = dw.data_ptr<acc_t>(), *ds_out = ds.data_ptr<acc_t>();
    at::parallel_for(0, in.D, kFeatureGrain, [&](int64_t d0, int64_t d1) {
      std::vector<acc_t> dw_sum(d1 - d0, acc_t(0)), ds_sum(d1 - d0, acc_t(0));
      for (int64_t r = 0; r < p.rows; ++r) {
        XLSTM_INDEPENDENT_ITERATIONS
        for (int64_t d = d0; d < d1; ++d) {
          const int64_t e = r * p.dim + d;
          const MlstmOutputGateGrads<acc_t> g =
              mlstm_output_gate_backward(acc_t(p.dy[e]), p.h_at(r, d), p.x_conv_at(r, d), p.z_at(r, d), p.w[d], p.s[d]);
          p.dh[e] = scalar_t(g.dh);
          p.dx_conv[e] = scalar_t(g.dx_conv);
          p.dz[e] = scalar_t(g.dz);
          dw_sum[d - d0] += g.dw;
          ds_sum[d - d0] += g.ds;
        }
      }
      std::copy(dw_sum.begin(), dw_sum.end(), dw_out + d0);
      std::copy(ds_sum.begin(), ds_sum.end(), ds_out + d0);
    });
  });
  return {t.dh, t.dx_conv, t.dz, dw.to(norm_weight.scalar_type()), ds.to(skip.scalar_type())};
}

}  // namespace xlstm

XLSTM_CPU_KERNELS(m) {
  m.impl("mlstm_output_gate", &xlstm::mlstm_output_gate_cpu);
  m.impl("mlstm_output_gate_backward", &xlstm::mlstm_output_gate_backward_cpu);
}
