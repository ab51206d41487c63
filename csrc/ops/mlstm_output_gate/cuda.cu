// CUDA entry points of the mLSTM output gate; g++ compiles this file too, for the host emulation.
#include "common/launch.h"
#include "common/registration.h"
#include "ops/mlstm_output_gate/host.h"
#include "ops/mlstm_output_gate/kernels.cuh"

namespace xlstm {
namespace {

constexpr int kWarps = 8;
constexpr int64_t kSharedBytes = 48 * 1024;  // the default limit of dynamic shared memory per block

// A block per (tile of rows, head).
dim3 segment_grid(const MlstmOutputGateInputs& in, const RowTiles& tiles) {
  return dim3(static_cast<unsigned>(tiles.count), static_cast<unsigned>(in.NH));
}

void check_grid(const MlstmOutputGateInputs& in, const char* op) {
  TORCH_CHECK(in.NH <= kMaxGridExtent, op, ": h has ", in.NH, " heads; the CUDA kernels take at most ", kMaxGridExtent);
}

}  // namespace

Tensor mlstm_output_gate_cuda(const Tensor& h, const Tensor& x_conv, const Tensor& z, const Tensor& norm_weight,
                              const Tensor& skip, double eps) {
  const char* op = "mlstm_output_gate";
  const MlstmOutputGateInputs in =
      mlstm_output_gate_inputs(h, x_conv, z, norm_weight, skip, eps, op, XLSTM_KERNEL_DEVICE, false);
  check_grid(in, op);
  const DeviceScope scope(in.h);
  Tensor y = mlstm_output_gate_output(in, empty_output);
  const RowTiles tiles = row_tiles(in.B * in.S, 64);
  XLSTM_DISPATCH_KERNEL_TYPES(in.h.scalar_type(), "mlstm_output_gate_cuda", [&] {
    auto p = mlstm_output_gate_params<scalar_t, float>(in);
    p.y = y.data_ptr<scalar_t>();
    launch_kernel(mlstm_output_gate_fwd_kernel<scalar_t>, segment_grid(in, tiles), dim3(32, kWarps), 0,
                  scope.stream(), p, tiles.rows_per_tile);
  });
  return y;
}

Tensors5 mlstm_output_gate_backward_cuda(const Tensor& dy, const Tensor& h, const Tensor& x_conv, const Tensor& z,
                                         const Tensor& norm_weight, const Tensor& skip, double eps) {
  const char* op = "mlstm_output_gate_backward";
  const MlstmOutputGateInputs in =
      mlstm_output_gate_inputs(h, x_conv, z, norm_weight, skip, eps, op, XLSTM_KERNEL_DEVICE, false);
  check_grid(in, op);
  // Per warp 3 DH floats of shared memory: as many warps as fit, at least one.
  const int64_t warp_bytes = 3 * in.DH * static_cast<int64_t>(sizeof(float));
  TORCH_CHECK(warp_bytes <= kSharedBytes, op, ": h's head size ", in.DH, " exceeds the CUDA backward's limit of ",
              kSharedBytes / (3 * sizeof(float)), " features per head");
  const int warps = static_cast<int>(std::min<int64_t>(kWarps, kSharedBytes / warp_bytes));
  const DeviceScope scope(in.h);
  const MlstmOutputGateBackwardTensors t = mlstm_output_gate_backward_tensors(in, dy, op, empty_output);
  const RowTiles tiles = row_tiles(in.B * in.S, 64);
  Tensor partial = empty_output({tiles.count, 2, in.NH * in.DH}, in.w.options());
  XLSTM_DISPATCH_KERNEL_TYPES(in.h.scalar_type(), "mlstm_output_gate_backward_cuda", [&] {
    const auto p = mlstm_output_gate_backward_params<scalar_t, float>(in, t);
    launch_kernel(mlstm_output_gate_bwd_kernel<scalar_t>, segment_grid(in, tiles), dim3(32, warps),
                  warps * warp_bytes, scope.stream(), p, tiles.rows_per_tile, partial.data_ptr<float>());
  });
  const Tensor totals = sum_tile_partials(partial);  // (2, D)
  return {t.dh, t.dx_conv, t.dz, totals[0].to(norm_weight.scalar_type()).clone(),
          totals[1].to(skip.scalar_type()).clone()};
}

}  // namespace xlstm

XLSTM_CUDA_KERNELS(m) {
  m.impl("mlstm_output_gate", &xlstm::mlstm_output_gate_cuda);
  m.impl("mlstm_output_gate_backward", &xlstm::mlstm_output_gate_backward_cuda);
}
