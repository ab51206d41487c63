// CUDA entry points of the headwise linear map; g++ compiles this file too, for the host emulation.
#include "common/launch.h"
#include "common/registration.h"
#include "ops/headwise_linear/host.h"
#include "ops/headwise_linear/kernels.cuh"

namespace xlstm {
namespace {

constexpr int kThreads = 256;

}  // namespace

Tensor headwise_linear_cuda(const Tensor& x, const Tensor& weight, int64_t heads) {
  const HeadwiseLinearInputs in =
      headwise_linear_inputs(x, weight, heads, "headwise_linear", XLSTM_KERNEL_DEVICE, false);
  const DeviceScope scope(in.x);
  Tensor y = headwise_linear_output(in, empty_output);
  XLSTM_DISPATCH_KERNEL_TYPES(in.x.scalar_type(), "headwise_linear_cuda", [&] {
    launch_kernel(headwise_linear_fwd_kernel<scalar_t>, grid_stride_blocks(y.numel(), kThreads), dim3(kThreads), 0,
                  scope.stream(), headwise_linear_params<scalar_t, float>(in, y, Tensor(), Tensor()));
  });
  return y;
}

std::tuple<Tensor, Tensor> headwise_linear_backward_cuda(const Tensor& dy, const Tensor& x, const Tensor& weight,
                                                         int64_t heads) {
  const char* op = "headwise_linear_backward";
  const HeadwiseLinearInputs in = headwise_linear_inputs(x, weight, heads, op, XLSTM_KERNEL_DEVICE, false);
  const DeviceScope scope(in.x);
  const Tensor dy_c = headwise_linear_dy(in, dy, op);
  Tensor dx = headwise_linear_dx(in, empty_output);
  const RowTiles tiles = row_tiles(in.B * in.S, 256);
  const int64_t entries = in.weight.numel();
  Tensor partial = empty_output({tiles.count, entries}, in.weight.options());
  XLSTM_DISPATCH_KERNEL_TYPES(in.x.scalar_type(), "headwise_linear_backward_cuda", [&] {
    const auto p = headwise_linear_params<scalar_t, float>(in, Tensor(), dy_c, dx);
    launch_kernel(headwise_linear_dx_kernel<scalar_t>, grid_stride_blocks(dx.numel(), kThreads), dim3(kThreads), 0,
                  scope.stream(), p);
    launch_kernel(headwise_linear_dw_kernel<scalar_t>,
                  dim3(static_cast<unsigned>((entries + kThreads - 1) / kThreads), static_cast<unsigned>(tiles.count)),
                  dim3(kThreads), 0, scope.stream(), p, tiles.rows_per_tile, partial.data_ptr<float>());
  });
  return {dx, sum_tile_partials(partial).reshape(in.weight.sizes()).to(weight.scalar_type())};
}

}  // namespace xlstm

XLSTM_CUDA_KERNELS(m) {
  m.impl("headwise_linear", &xlstm::headwise_linear_cuda);
  m.impl("headwise_linear_backward", &xlstm::headwise_linear_backward_cuda);
}
