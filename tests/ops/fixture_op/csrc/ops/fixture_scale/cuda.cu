// fixture_scale's CUDA entry points; g++ compiles this file too, for the host emulation.
#include "common/launch.h"
#include "common/registration.h"
#include "ops/fixture_scale/host.h"
#include "ops/fixture_scale/kernels.cuh"

namespace xlstm {
namespace {

constexpr int kThreads = 256;

}  // namespace

Tensor fixture_scale_cuda(const Tensor& x, const Tensor& w) {
  const FixtureScaleInputs in = fixture_scale_inputs(x, w, "fixture_scale", XLSTM_KERNEL_DEVICE, false);
  const DeviceScope scope(in.x);
  Tensor y = fixture_scale_output(in, empty_output);
  XLSTM_DISPATCH_KERNEL_TYPES(in.x.scalar_type(), "fixture_scale_cuda", [&] {
    launch_kernel(fixture_scale_fwd_kernel<scalar_t>, grid_stride_blocks(y.numel(), kThreads), dim3(kThreads), 0,
                  scope.stream(), fixture_scale_params<scalar_t, float>(in, y, Tensor(), Tensor()));
  });
  return y;
}

Tensors2 fixture_scale_backward_cuda(const Tensor& dy, const Tensor& x, const Tensor& w) {
  const char* op = "fixture_scale_backward";
  const FixtureScaleInputs in = fixture_scale_inputs(x, w, op, XLSTM_KERNEL_DEVICE, false);
  const DeviceScope scope(in.x);
  const Tensor dy_c = fixture_scale_dy(in, dy, op);
  Tensor dx = fixture_scale_output(in, empty_output);
  const RowTiles tiles = row_tiles(in.rows, 64);
  Tensor partial = empty_output({tiles.count, in.dim}, in.w.options());
  XLSTM_DISPATCH_KERNEL_TYPES(in.x.scalar_type(), "fixture_scale_backward_cuda", [&] {
    const auto p = fixture_scale_params<scalar_t, float>(in, Tensor(), dy_c, dx);
    launch_kernel(fixture_scale_dx_kernel<scalar_t>, grid_stride_blocks(dx.numel(), kThreads), dim3(kThreads), 0,
                  scope.stream(), p);
    launch_kernel(fixture_scale_dw_kernel<scalar_t>,
                  dim3(static_cast<unsigned>((in.dim + kThreads - 1) / kThreads), static_cast<unsigned>(tiles.count)),
                  dim3(kThreads), 0, scope.stream(), p, tiles.rows_per_tile, partial.data_ptr<float>());
  });
  return {dx, sum_tile_partials(partial).to(w.scalar_type())};
}

}  // namespace xlstm

XLSTM_CUDA_KERNELS(m) {
  m.impl("fixture_scale", &xlstm::fixture_scale_cuda);
  m.impl("fixture_scale_backward", &xlstm::fixture_scale_backward_cuda);
}
