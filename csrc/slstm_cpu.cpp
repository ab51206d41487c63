#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <vector>

#include "ops.h"
#include "slstm_binding.h"

namespace xlstm {

Tensors3 slstm_forward_cpu(const Tensor& x, const Tensor& R, const Tensor& b, const Tensor& initial) {
  const SlstmInputs in = slstm_inputs(x, R, b, initial, "slstm_forward", at::kCPU, true);
  auto [h, states] = slstm_forward_outputs(in, empty_cpu_output);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.x.scalar_type(), "slstm_forward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    SlstmParams<scalar_t, acc_t> p;
    fill_slstm_params(p, in, states);
    p.h_out = h.data_ptr<scalar_t>();
    at::parallel_for(0, in.B * in.NH, 1, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> raw(4 * in.DH);
      for (int64_t r = begin; r < end; ++r) slstm_fwd_row(p, r / in.NH, r % in.NH, raw.data());
    });
  });
  return slstm_forward_result(in, h, states);
}

Tensors4 slstm_backward_cpu(const Tensor& dh, const Tensor& d_last, const Tensor& x, const Tensor& R,
                            const Tensor& b, const Tensor& states) {
  const char* op = "slstm_backward";
  const SlstmInputs in = slstm_inputs(x, R, b, states.select(2, 0), op, at::kCPU, true);
  const SlstmBackwardTensors t = slstm_backward_tensors(in, dh, d_last, states, op, empty_cpu_output);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.x.scalar_type(), "slstm_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto p = slstm_bwd_params<scalar_t, acc_t>(in, t);
    at::parallel_for(0, in.B * in.NH, 1, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> work(3 * in.DH);
      for (int64_t r = begin; r < end; ++r) slstm_bwd_row(p, r / in.NH, r % in.NH, work.data());
    });
  });
  return slstm_backward_result(in, t, R, b);
}

}  // namespace xlstm
