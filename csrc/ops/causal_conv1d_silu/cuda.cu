// CUDA entry points of the causal conv + SiLU; g++ compiles this file too, for the host emulation.
#include <initializer_list>

#include "common/launch.h"
#include "common/registration.h"
#include "common/static_switch.h"
#include "ops/causal_conv1d_silu/host.h"
#include "ops/causal_conv1d_silu/kernels.cuh"

namespace xlstm {
namespace {

using Shape = CausalConv1dSiluLaunchShape;

// A block per (32 channel vectors, kStepsPerBlock steps of `steps`, batch row).
dim3 conv_grid(const CausalConv1dSiluInputs& in, int vec, int64_t steps, const char* op) {
  const int64_t tiles = (steps + Shape::kStepsPerBlock - 1) / Shape::kStepsPerBlock;
  check_grid_extent(tiles, op, "the time tiles");
  check_grid_extent(in.B, op, "the batch size B");
  return dim3(static_cast<unsigned>((in.D + vec * Shape::kChannelThreads - 1) / (vec * Shape::kChannelThreads)),
              static_cast<unsigned>(tiles), static_cast<unsigned>(in.B));
}

const dim3 kBlock(Shape::kChannelThreads, Shape::kRowThreads);
constexpr LaunchBounds kBounds{Shape::kThreads};  // the kernels' __launch_bounds__

// Checked in the forward too, so that training fails at its first step rather than its first backward.
void check_width(const CausalConv1dSiluInputs& in, const char* op) {
  TORCH_CHECK(in.K <= Shape::kMaxWidth, op, ": the CUDA kernels take kernel sizes up to ", Shape::kMaxWidth,
              ", got K = ", in.K);
}

// body(std::integral_constant<int, K>) for the kernel size (checked by check_width).
template <typename Body>
void switch_width(const CausalConv1dSiluInputs& in, Body&& body) {
  static_assert(Shape::kMaxWidth == 8, "the cases below list every kernel size up to kMaxWidth");
  enum_switch<1, 2, 3, 4, 5, 6, 7, 8>(static_cast<int>(in.K), body);
}

// 4 channels per access where every row of every operand starts on a 4-element boundary.
int conv_vector_width(const CausalConv1dSiluInputs& in, std::initializer_list<const Tensor*> rows_of_D) {
  constexpr int kVec = 4;
  bool aligned = in.D % kVec == 0 && in.x.stride(0) % kVec == 0 && in.x.stride(1) % kVec == 0 &&
                 aligned_to(in.weight.data_ptr(), kVec * sizeof(float)) &&
                 aligned_to(in.bias.data_ptr(), kVec * sizeof(float));
  for (const Tensor* t : rows_of_D) aligned = aligned && aligned_to(t->data_ptr(), kVec * t->element_size());
  return aligned ? kVec : 1;
}

}  // namespace

Tensor causal_conv1d_silu_cuda(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& initial) {
  const char* op = "causal_conv1d_silu";
  const CausalConv1dSiluInputs in = causal_conv1d_silu_inputs(x, weight, bias, initial, op, XLSTM_KERNEL_DEVICE, false);
  check_width(in, op);
  const DeviceScope scope(in.x);
  Tensor y = causal_conv1d_silu_output(in, empty_output);
  const int vec = conv_vector_width(in, {&in.x, &in.initial, &y});
  const dim3 grid = conv_grid(in, vec, in.S, op);
  XLSTM_DISPATCH_KERNEL_TYPES(in.x.scalar_type(), "causal_conv1d_silu_cuda", [&] {
    const auto p = causal_conv1d_silu_params<scalar_t, float>(in, y);
    switch_width(in, [&](auto width) {
      constexpr int K = decltype(width)::value;
      if (vec == 4)
        launch_kernel(causal_conv1d_silu_fwd_kernel<scalar_t, 4, K>, kBounds, grid, kBlock, 0, scope.stream(), p);
      else
        launch_kernel(causal_conv1d_silu_fwd_kernel<scalar_t, 1, K>, kBounds, grid, kBlock, 0, scope.stream(), p);
    });
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
  const int vec = conv_vector_width(in, {&in.x, &in.initial, &g.dy, &g.dx, &g.d_initial});
  const dim3 grid = conv_grid(in, vec, in.S + in.K - 1, op);  // over the padded length
  Tensor partial = empty_output({int64_t(grid.z) * grid.y, in.K + 1, in.D}, in.weight.options());
  const size_t smem = sizeof(float) * vec * Shape::kChannelThreads * Shape::kRowThreads;
  XLSTM_DISPATCH_KERNEL_TYPES(in.x.scalar_type(), "causal_conv1d_silu_backward_cuda", [&] {
    const auto p = causal_conv1d_silu_bwd_params<scalar_t, float>(in, g);
    float* partial_ptr = partial.data_ptr<float>();
    switch_width(in, [&](auto width) {
      constexpr int K = decltype(width)::value;
      if (vec == 4)
        launch_kernel(causal_conv1d_silu_bwd_kernel<scalar_t, 4, K>, kBounds, grid, kBlock, smem, scope.stream(), p,
                      partial_ptr);
      else
        launch_kernel(causal_conv1d_silu_bwd_kernel<scalar_t, 1, K>, kBounds, grid, kBlock, smem, scope.stream(), p,
                      partial_ptr);
    });
  });
  const Tensor totals = sum_tile_partials(partial);  // (K + 1, D)
  return causal_conv1d_silu_backward_result(g, totals.narrow(0, 0, in.K), totals[in.K].clone(), weight, bias);
}

}  // namespace xlstm

XLSTM_CUDA_KERNELS(m) {
  m.impl("causal_conv1d_silu", &xlstm::causal_conv1d_silu_cuda);
  m.impl("causal_conv1d_silu_backward", &xlstm::causal_conv1d_silu_backward_cuda);
}
