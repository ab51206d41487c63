// CUDA entry points of the causal conv + SiLU; g++ compiles this file too, for the host emulation.
#include "common/launch.h"
#include "common/registration.h"
#include "ops/causal_conv1d_silu/host.h"
#include "ops/causal_conv1d_silu/kernels.cuh"

namespace xlstm {
namespace {

using Shape = CausalConv1dSiluLaunchShape;

// A block per (32 channels, tile of (batch, time) rows).
dim3 conv_grid(const RowTiles& tiles, int64_t dim) {
  return dim3(static_cast<unsigned>((dim + Shape::kChannels - 1) / Shape::kChannels),
              static_cast<unsigned>(tiles.count));
}

const dim3 kBlock(Shape::kChannels, Shape::kRows);

// Checked in the forward too, so that training fails at its first step rather than its first backward.
void check_width(const CausalConv1dSiluInputs& in, const char* op) {
  TORCH_CHECK(in.K <= Shape::kMaxWidth, op, ": the CUDA kernels take kernel sizes up to ", Shape::kMaxWidth,
              ", got K = ", in.K);
}

}  // namespace

Tensor causal_conv1d_silu_cuda(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& initial) {
  const CausalConv1dSiluInputs in =
      causal_conv1d_silu_inputs(x, weight, bias, initial, "causal_conv1d_silu", XLSTM_KERNEL_DEVICE, false);
  check_width(in, "causal_conv1d_silu");
  const DeviceScope scope(in.x);
  Tensor y = causal_conv1d_silu_output(in, empty_output);
  const RowTiles tiles = row_tiles(in.B * in.S, 64);
  XLSTM_DISPATCH_KERNEL_TYPES(in.x.scalar_type(), "causal_conv1d_silu_cuda", [&] {
    launch_kernel(causal_conv1d_silu_fwd_kernel<scalar_t>, conv_grid(tiles, in.D), kBlock, 0, scope.stream(),
                  causal_conv1d_silu_params<scalar_t, float>(in, y), tiles.rows_per_tile);
  });
  return y;
}

Tensors4 causal_conv1d_silu_backward_cuda(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& bias,
                                          const Tensor& initial) {
  const char* op = "causal_conv1d_silu_backward";
  const CausalConv1dSiluInputs in = causal_conv1d_silu_inputs(x, weight, bias, initial, op, XLSTM_KERNEL_DEVICE, false);
  check_width(in, op);
  const DeviceScope scope(in.x);
  const CausalConv1dSiluGrads g = causal_conv1d_silu_grads(in, dy, op, empty_output);
  const RowTiles tiles = row_tiles(in.B * (in.S + in.K - 1), 64);
  Tensor partial = empty_output({tiles.count, in.K + 1, in.D}, in.weight.options());
  XLSTM_DISPATCH_KERNEL_TYPES(in.x.scalar_type(), "causal_conv1d_silu_backward_cuda", [&] {
    launch_kernel(causal_conv1d_silu_bwd_kernel<scalar_t>, conv_grid(tiles, in.D), kBlock,
                  sizeof(float) * Shape::kChannels * Shape::kRows, scope.stream(),
                  causal_conv1d_silu_bwd_params<scalar_t, float>(in, g), tiles.rows_per_tile,
                  partial.data_ptr<float>());
  });
  const Tensor totals = sum_tile_partials(partial);  // (K + 1, D)
  return causal_conv1d_silu_backward_result(g, totals.narrow(0, 0, in.K), totals[in.K].clone(), weight, bias);
}

}  // namespace xlstm

XLSTM_CUDA_KERNELS(m) {
  m.impl("causal_conv1d_silu", &xlstm::causal_conv1d_silu_cuda);
  m.impl("causal_conv1d_silu_backward", &xlstm::causal_conv1d_silu_backward_cuda);
}
