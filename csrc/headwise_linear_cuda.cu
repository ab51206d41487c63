// CUDA entry points of the headwise linear map; g++ compiles this file too, for the host emulation.
#include "headwise_linear_binding.h"
#include "headwise_linear_kernels.cuh"
#include "launch.h"
#include "ops.h"

namespace xlstm {
namespace {

constexpr int kThreads = 256;

// Enough blocks to cover `total` elements once, capped (the kernels grid-stride beyond).
dim3 elementwise_grid(int64_t total) {
  return dim3(static_cast<unsigned>(std::min<int64_t>((total + kThreads - 1) / kThreads, 65535)));
}

}  // namespace

Tensor headwise_linear_cuda(const Tensor& x, const Tensor& weight, int64_t heads) {
  const HeadwiseInputs in = headwise_inputs(x, weight, heads, "headwise_linear", XLSTM_KERNEL_DEVICE, false);
  const DeviceScope scope(in.x);
  Tensor y = empty_output(in.out_sizes(), in.x.options());
  XLSTM_DISPATCH_KERNEL_TYPES(in.x.scalar_type(), "headwise_linear_cuda", [&] {
    launch_kernel(headwise_fwd_kernel<scalar_t>, elementwise_grid(y.numel()), dim3(kThreads), 0, scope.stream(),
                  headwise_params<scalar_t, float>(in, y, Tensor(), Tensor()));
  });
  return y;
}

std::tuple<Tensor, Tensor> headwise_linear_backward_cuda(const Tensor& dy, const Tensor& x, const Tensor& weight,
                                                         int64_t heads) {
  const char* op = "headwise_linear_backward";
  const HeadwiseInputs in = headwise_inputs(x, weight, heads, op, XLSTM_KERNEL_DEVICE, false);
  const DeviceScope scope(in.x);
  const Tensor dy_c = headwise_dy(in, dy, op);
  Tensor dx = empty_output({in.B, in.S, in.G * in.I}, in.x.options());
  // Row tiles for the weight gradient: at least 256 rows each, fewer than 65536 tiles.
  const int64_t rows = in.B * in.S, rows_per_block = std::max<int64_t>(256, (rows + 65534) / 65535);
  const int64_t tiles = (rows + rows_per_block - 1) / rows_per_block, entries = in.weight.numel();
  Tensor partial = empty_output({tiles, entries}, in.weight.options());
  XLSTM_DISPATCH_KERNEL_TYPES(in.x.scalar_type(), "headwise_linear_backward_cuda", [&] {
    const auto p = headwise_params<scalar_t, float>(in, Tensor(), dy_c, dx);
    launch_kernel(headwise_dx_kernel<scalar_t>, elementwise_grid(dx.numel()), dim3(kThreads), 0, scope.stream(), p);
    launch_kernel(headwise_dw_kernel<scalar_t>,
                  dim3(static_cast<unsigned>((entries + kThreads - 1) / kThreads), static_cast<unsigned>(tiles)),
                  dim3(kThreads), 0, scope.stream(), p, rows_per_block, partial.data_ptr<float>());
  });
  // Summed in a fixed order: deterministic.
  return {dx, partial.sum(0).reshape(in.weight.sizes()).to(weight.scalar_type())};
}

}  // namespace xlstm
