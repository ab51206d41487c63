// CUDA entry points of the causal conv + SiLU; g++ compiles this file too, for the host emulation.
#include "causal_conv1d_binding.h"
#include "causal_conv1d_kernels.cuh"
#include "launch.h"
#include "ops.h"

namespace xlstm {
namespace {

using Shape = CausalConvLaunchShape;

// Rows of (batch, time) per block: at least 64, more where the grid's y extent would overflow.
struct RowTiling {
  int64_t rows_per_block;
  dim3 grid;
};

RowTiling row_tiling(int64_t rows, int64_t dim) {
  constexpr int64_t kMaxGridY = 65535;
  const int64_t per_block = std::max<int64_t>(64, (rows + kMaxGridY - 1) / kMaxGridY);
  return {per_block, dim3(static_cast<unsigned>((dim + Shape::kChannels - 1) / Shape::kChannels),
                          static_cast<unsigned>((rows + per_block - 1) / per_block))};
}

const dim3 kBlock(Shape::kChannels, Shape::kRows);

// Checked in the forward too, so that training fails at its first step rather than its first backward.
void check_width(const CausalConvInputs& in, const char* op) {
  TORCH_CHECK(in.K <= Shape::kMaxWidth, op, ": the CUDA kernels take kernel sizes up to ", Shape::kMaxWidth,
              ", got K = ", in.K);
}

}  // namespace

Tensor causal_conv1d_silu_cuda(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& initial) {
  const CausalConvInputs in =
      causal_conv_inputs(x, weight, bias, initial, "causal_conv1d_silu", XLSTM_KERNEL_DEVICE, false);
  check_width(in, "causal_conv1d_silu");
  const DeviceScope scope(in.x);
  Tensor y = empty_output({in.B, in.S, in.D}, in.x.options());
  const RowTiling tiling = row_tiling(in.B * in.S, in.D);
  XLSTM_DISPATCH_KERNEL_TYPES(in.x.scalar_type(), "causal_conv1d_silu_cuda", [&] {
    launch_kernel(causal_conv_fwd_kernel<scalar_t>, tiling.grid, kBlock, 0, scope.stream(),
                  causal_conv_params<scalar_t, float>(in, y), tiling.rows_per_block);
  });
  return y;
}

Tensors4 causal_conv1d_silu_backward_cuda(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& bias,
                                          const Tensor& initial) {
  const char* op = "causal_conv1d_silu_backward";
  const CausalConvInputs in = causal_conv_inputs(x, weight, bias, initial, op, XLSTM_KERNEL_DEVICE, false);
  check_width(in, op);
  const DeviceScope scope(in.x);
  const CausalConvGrads g = causal_conv_grads(in, dy, op, empty_output);
  const RowTiling tiling = row_tiling(in.B * (in.S + in.K - 1), in.D);
  Tensor partial = empty_output({tiling.grid.y, in.K + 1, in.D}, in.weight.options());
  XLSTM_DISPATCH_KERNEL_TYPES(in.x.scalar_type(), "causal_conv1d_silu_backward_cuda", [&] {
    launch_kernel(causal_conv_bwd_kernel<scalar_t>, tiling.grid, kBlock,
                  sizeof(float) * Shape::kChannels * Shape::kRows, scope.stream(),
                  causal_conv_bwd_params<scalar_t, float>(in, g), tiling.rows_per_block,
                  partial.data_ptr<float>());
  });
  const Tensor totals = partial.sum(0);  // (K + 1, D), a fixed order: deterministic
  return causal_conv_backward_result(g, totals.narrow(0, 0, in.K), totals[in.K].clone(), weight, bias);
}

}  // namespace xlstm
