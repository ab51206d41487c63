// skinny_linear on the CPU: the checks, and the weight's rows split over the threads (parallel.h).
#include <ATen/ATen.h>

#include <optional>
#include <type_traits>
#include <vector>

#include "common/checks.h"
#include "common/registration.h"
#include "ops/skinny_linear/parallel.h"

namespace xlstm {

at::Tensor skinny_linear_cpu(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  const char* op = "skinny_linear";
  TORCH_CHECK(x.defined() && x.dim() >= 1, op, ": x must have shape [..., in_features], got ",
              x.defined() ? x.sizes() : at::IntArrayRef{});
  TORCH_CHECK(x.device().is_cpu(), op, ": x must be a CPU tensor (the op has no CUDA kernel), got ", x.device());
  const at::ScalarType dt = x.scalar_type();
  TORCH_CHECK(dt == at::kFloat || dt == at::kDouble || dt == at::kBFloat16, op,
              ": x must be float32, float64 or bfloat16, got ", dt);
  const int64_t K = x.size(-1);
  check_rank(weight, op, "weight", 2, "[out_features, in_features]");
  const int64_t N = weight.size(0);
  check_tensor(weight, op, "weight", {N, K}, dt, x.device(), "x's last dimension");
  // A copy of a transposed weight per call would cost more than the product: the caller keeps it so.
  TORCH_CHECK(weight.stride(1) == 1 || K <= 1, op,
              ": weight must be row-major (unit stride along in_features), got strides ", weight.strides(),
              "; store it as weight.contiguous()");
  if (bias.has_value()) check_tensor(*bias, op, "bias", {N}, dt, x.device(), "weight's rows");
  // bfloat16 computes in float32: x and the bias widened here (a few rows), the weight as it is read.
  const at::ScalarType compute = dt == at::kBFloat16 ? at::kFloat : dt;
  const at::Tensor rows = unit_last_stride(x.reshape({-1, K}).to(compute));
  const int64_t M = rows.size(0);
  std::vector<int64_t> out_sizes(x.sizes().begin(), x.sizes().end() - 1);
  out_sizes.push_back(N);
  at::Tensor y = at::empty({M, N}, x.options().dtype(compute));
  if (M > 0 && N > 0) {
    const at::Tensor b = bias.has_value() ? bias->to(compute).contiguous() : at::Tensor();
    const auto fill = [&](auto& p) {  // all but the weight, in p's compute type
      using T = std::remove_pointer_t<decltype(p.y)>;
      p.x = rows.data_ptr<T>();
      p.bias = b.defined() ? b.data_ptr<T>() : nullptr;
      p.y = y.data_ptr<T>();
      p.M = M, p.N = N, p.K = K, p.x_stride = rows.stride(0), p.weight_stride = weight.stride(0), p.y_stride = N;
    };
    if (dt == at::kBFloat16) {
      SkinnyLinearParams<float, uint16_t> p;
      fill(p);
      p.weight = reinterpret_cast<const uint16_t*>(weight.data_ptr<at::BFloat16>());
      skinny_linear_parallel(&p, 1);
    } else {
      AT_DISPATCH_FLOATING_TYPES(dt, "skinny_linear", [&] {
        SkinnyLinearParams<scalar_t> p;
        fill(p);
        p.weight = weight.data_ptr<scalar_t>();
        skinny_linear_parallel(&p, 1);
      });
    }
  }
  return y.to(dt).reshape(out_sizes);
}

}  // namespace xlstm

XLSTM_CPU_KERNELS(m) { m.impl("skinny_linear", &xlstm::skinny_linear_cpu); }
