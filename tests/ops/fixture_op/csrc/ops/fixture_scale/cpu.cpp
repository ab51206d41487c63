// fixture_scale on the CPU: rows in parallel forward and for dx; features in parallel for dw.
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include "common/registration.h"
#include "ops/fixture_scale/host.h"

namespace xlstm {

Tensor fixture_scale_cpu(const Tensor& x, const Tensor& w) {
  const FixtureScaleInputs in = fixture_scale_inputs(x, w, "fixture_scale", at::kCPU, true);
  Tensor y = fixture_scale_output(in, empty_cpu_output);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.x.scalar_type(), "fixture_scale_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto p = fixture_scale_params<scalar_t, acc_t>(in, y, Tensor(), Tensor());
    at::parallel_for(0, p.rows, 64, [&](int64_t first, int64_t last) {
      for (int64_t e = first * p.dim; e < last * p.dim; ++e) p.y[e] = scalar_t(acc_t(p.x[e]) * p.w[e % p.dim]);
    });
  });
  return y;
}

Tensors2 fixture_scale_backward_cpu(const Tensor& dy, const Tensor& x, const Tensor& w) {
  const char* op = "fixture_scale_backward";
  const FixtureScaleInputs in = fixture_scale_inputs(x, w, op, at::kCPU, true);
  const Tensor dy_c = fixture_scale_dy(in, dy, op);
  Tensor dx = fixture_scale_output(in, empty_cpu_output), dw = at::empty_like(in.w);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.x.scalar_type(), "fixture_scale_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto p = fixture_scale_params<scalar_t, acc_t>(in, Tensor(), dy_c, dx);
    acc_t* dw_out = dw.data_ptr<acc_t>();
    at::parallel_for(0, p.dim, 16, [&](int64_t d0, int64_t d1) {
      for (int64_t d = d0; d < d1; ++d) {
        acc_t sum = 0;
        for (int64_t r = 0; r < p.rows; ++r) {
          const int64_t e = r * p.dim + d;
          p.dx[e] = scalar_t(acc_t(p.dy[e]) * p.w[d]);
          sum += acc_t(p.dy[e]) * acc_t(p.x[e]);
        }
        dw_out[d] = sum;
      }
    });
  });
  return {dx, dw.to(w.scalar_type())};
}

}  // namespace xlstm

XLSTM_CPU_KERNELS(m) {
  m.impl("fixture_scale", &xlstm::fixture_scale_cpu);
  m.impl("fixture_scale_backward", &xlstm::fixture_scale_backward_cpu);
}
