// CUDA entry points of the headwise linear map; g++ compiles this file too, for the host emulation.
#include "common/launch.h"
#include "common/registration.h"
#include "ops/headwise_linear/host.h"
#include "ops/headwise_linear/kernels.cuh"

namespace xlstm {
namespace {

using Shape = HeadwiseLinearLaunchShape;
constexpr LaunchBounds kBounds{Shape::kThreads};  // the kernels' __launch_bounds__

// A block per (256 columns, rows_per_block time steps, batch row).
dim3 headwise_grid(const HeadwiseLinearInputs& in, int64_t columns, int64_t rows_per_block, const char* op) {
  const int64_t tiles = (in.S + rows_per_block - 1) / rows_per_block;
  check_grid_extent(tiles, op, "the time tiles");
  check_grid_extent(in.B, op, "the batch size B");
  return dim3(static_cast<unsigned>((columns + Shape::kThreads - 1) / Shape::kThreads), static_cast<unsigned>(tiles),
              static_cast<unsigned>(in.B));
}

// 4 inputs per load where every group's inputs start on a 4-element boundary.
bool headwise_vector_loads(const HeadwiseLinearInputs& in) {
  return in.I % 4 == 0 && in.x.stride(0) % 4 == 0 && in.x.stride(1) % 4 == 0 &&
         aligned_to(in.x.data_ptr(), 4 * in.x.element_size()) && aligned_to(in.weight.data_ptr(), 4 * sizeof(float));
}

}  // namespace

Tensor headwise_linear_cuda(const Tensor& x, const Tensor& weight, int64_t heads) {
  const char* op = "headwise_linear";
  const HeadwiseLinearInputs in = headwise_linear_inputs(x, weight, heads, op, XLSTM_KERNEL_DEVICE, false);
  const DeviceScope scope(in.x);
  Tensor y = headwise_linear_output(in, empty_output);
  const dim3 grid = headwise_grid(in, in.G * in.O, Shape::kRowsPerBlock, op);
  const bool vector_loads = headwise_vector_loads(in);
  XLSTM_DISPATCH_KERNEL_TYPES(in.x.scalar_type(), "headwise_linear_cuda", [&] {
    const auto p = headwise_linear_params<scalar_t, float>(in, y, Tensor(), Tensor());
    if (vector_loads)
      launch_kernel(headwise_linear_fwd_kernel<scalar_t, 4>, kBounds, grid, dim3(Shape::kThreads), 0, scope.stream(), p);
    else
      launch_kernel(headwise_linear_fwd_kernel<scalar_t, 1>, kBounds, grid, dim3(Shape::kThreads), 0, scope.stream(), p);
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
  const int64_t entries = in.weight.numel();
  const dim3 dx_grid = headwise_grid(in, in.G * in.I, Shape::kRowsPerBlock, op);
  const dim3 dw_grid = headwise_grid(in, entries, Shape::kWeightGradRows, op);
  Tensor partial = empty_output({int64_t(dw_grid.z) * dw_grid.y, entries}, in.weight.options());
  XLSTM_DISPATCH_KERNEL_TYPES(in.x.scalar_type(), "headwise_linear_backward_cuda", [&] {
    const auto p = headwise_linear_params<scalar_t, float>(in, Tensor(), dy_c, dx);
    launch_kernel(headwise_linear_dx_kernel<scalar_t>, kBounds, dx_grid, dim3(Shape::kThreads), 0, scope.stream(), p);
    launch_kernel(headwise_linear_dw_kernel<scalar_t>, kBounds, dw_grid, dim3(Shape::kThreads), 0, scope.stream(), p,
                  partial.data_ptr<float>());
  });
  return {dx, sum_tile_partials(partial).reshape(in.weight.sizes()).to(weight.scalar_type())};
}

}  // namespace xlstm

XLSTM_CUDA_KERNELS(m) {
  m.impl("headwise_linear", &xlstm::headwise_linear_cuda);
  m.impl("headwise_linear_backward", &xlstm::headwise_linear_backward_cuda);
}
