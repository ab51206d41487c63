// skinny_linear on the CPU: the checks, and the weight's rows split over the threads (math.h).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "common/checks.h"
#include "common/registration.h"
#include "ops/skinny_linear/math.h"

namespace xlstm {

at::Tensor skinny_linear_cpu(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias) {
  const char* op = "skinny_linear";
  TORCH_CHECK(x.defined() && x.dim() >= 1, op, ": x must have shape [..., in_features], got ",
              x.defined() ? x.sizes() : at::IntArrayRef{});
  TORCH_CHECK(x.device().is_cpu(), op, ": x must be a CPU tensor (the op has no CUDA kernel), got ", x.device());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, op,
              ": x must be float32 or float64, got ", x.scalar_type());
  const int64_t K = x.size(-1);
  check_rank(weight, op, "weight", 2, "[out_features, in_features]");
  const int64_t N = weight.size(0);
  check_tensor(weight, op, "weight", {N, K}, x.scalar_type(), x.device(), "x's last dimension");
  // A copy of a transposed weight per call would cost more than the product: the caller keeps it so.
  TORCH_CHECK(weight.stride(1) == 1 || K <= 1, op,
              ": weight must be row-major (unit stride along in_features), got strides ", weight.strides(),
              "; store it as weight.contiguous()");
  if (bias.has_value()) check_tensor(*bias, op, "bias", {N}, x.scalar_type(), x.device(), "weight's rows");
  const at::Tensor rows = unit_last_stride(x.reshape({-1, K}));
  const int64_t M = rows.size(0);
  std::vector<int64_t> out_sizes(x.sizes().begin(), x.sizes().end() - 1);
  out_sizes.push_back(N);
  at::Tensor y = at::empty({M, N}, x.options());
  if (M == 0 || N == 0) return y.reshape(out_sizes);
  const at::Tensor b = bias.has_value() ? bias->contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "skinny_linear", [&] {
    SkinnyLinearParams<scalar_t> p;
    p.x = rows.data_ptr<scalar_t>();
    p.weight = weight.data_ptr<scalar_t>();
    p.bias = b.defined() ? b.data_ptr<scalar_t>() : nullptr;
    p.y = y.data_ptr<scalar_t>();
    p.M = M, p.N = N, p.K = K, p.x_stride = rows.stride(0), p.weight_stride = weight.stride(0);
    // Blocks of weight rows; a thread's share at least 64 KiB of W, so small maps stay on one thread.
    constexpr int64_t kRows = skinny_linear::kWeightRows;
    const int64_t blocks = (N + kRows - 1) / kRows;
    const int64_t grain = std::max<int64_t>(1, (64 << 10) / (kRows * std::max<int64_t>(K, 1) * sizeof(scalar_t)));
    at::parallel_for(0, blocks, grain, [&](int64_t b0, int64_t b1) {
      skinny_linear::rows(p, b0 * kRows, std::min(b1 * kRows, N));
    });
  });
  return y.reshape(out_sizes);
}

}  // namespace xlstm

XLSTM_CPU_KERNELS(m) { m.impl("skinny_linear", &xlstm::skinny_linear_cpu); }
