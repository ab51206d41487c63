#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <vector>

#include "common/registration.h"
#include "ops/mlstm_step/host.h"

namespace xlstm {

Tensors4 mlstm_step_cpu(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i, const Tensor& f,
                        const Tensor& C, const Tensor& n, const Tensor& m, double eps) {
  const MlstmStepInputs in = mlstm_step_inputs(q, k, v, i, f, C, n, m, eps, "mlstm_step", at::kCPU, true);
  const MlstmStepOutputs out = mlstm_step_outputs(in, empty_cpu_output);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.q.scalar_type(), "mlstm_step_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto p = mlstm_step_fwd_params<scalar_t, acc_t>(in, eps, out);
    at::parallel_for(0, in.B * in.NH, 1, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> work(2 * in.DV);
      for (int64_t r = begin; r < end; ++r) mlstm_step_fwd_row(p, r / in.NH, r % in.NH, work.data());
    });
  });
  return out;
}

Tensors8 mlstm_step_backward_cpu(const Tensor& dh, const Tensor& dC_new, const Tensor& dn_new, const Tensor& dm_new,
                                 const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i, const Tensor& f,
                                 const Tensor& C, const Tensor& n, const Tensor& m, double eps) {
  const char* op = "mlstm_step_backward";
  const MlstmStepInputs in = mlstm_step_inputs(q, k, v, i, f, C, n, m, eps, op, at::kCPU, true);
  const MlstmStepGrads grads = mlstm_step_grads(in, dh, dC_new, dn_new, dm_new, op);
  const MlstmStepInputGrads out = mlstm_step_input_grads(in, empty_cpu_output);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, in.q.scalar_type(), "mlstm_step_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto p = mlstm_step_bwd_params<scalar_t, acc_t>(in, eps, grads, out);
    at::parallel_for(0, in.B * in.NH, 1, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> work(3 * in.DV + 2 * in.DQK);
      for (int64_t r = begin; r < end; ++r) mlstm_step_bwd_row(p, r / in.NH, r % in.NH, work.data());
    });
  });
  return out;
}

}  // namespace xlstm

XLSTM_CPU_KERNELS(m) {
  m.impl("mlstm_step", &xlstm::mlstm_step_cpu);
  m.impl("mlstm_step_backward", &xlstm::mlstm_step_backward_cpu);
}
