// CUDA entry points of the mLSTM output gate; g++ compiles this file too, for the host emulation.
#include "common/launch.h"
#include "common/registration.h"
#include "ops/mlstm_output_gate/host.h"
#include "ops/mlstm_output_gate/kernels.cuh"

namespace xlstm {
namespace {

constexpr int kFeatures = 32, kRows = 8;

// A block per (32 features, tile of rows).
dim3 feature_grid(const MlstmOutputGateInputs& in, const RowTiles& tiles) {
  return dim3(static_cast<unsigned>((in.D + kFeatures - 1) / kFeatures), static_cast<unsigned>(tiles.count));
}

}  // namespace

Tensor mlstm_output_gate_cuda(const Tensor& h, const Tensor& x_conv, const Tensor& z, const Tensor& norm_weight,
                              const Tensor& skip) {
  const MlstmOutputGateInputs in =
      mlstm_output_gate_inputs(h, x_conv, z, norm_weight, skip, "mlstm_output_gate", XLSTM_KERNEL_DEVICE, false);
  const DeviceScope scope(in.h);
  Tensor y = mlstm_output_gate_output(in, empty_output);
  const RowTiles tiles = row_tiles(in.rows, 64);
  XLSTM_DISPATCH_KERNEL_TYPES(in.h.scalar_type(), "mlstm_output_gate_cuda", [&] {
    auto p = mlstm_output_gate_params<scalar_t, float>(in);
    p.y = y.data_ptr<scalar_t>();
    launch_kernel(mlstm_output_gate_fwd_kernel<scalar_t>, feature_grid(in, tiles), dim3(kFeatures, kRows), 0,
                  scope.stream(), p, tiles.rows_per_tile);
  });
  return y;
}

Tensors5 mlstm_output_gate_backward_cuda(const Tensor& dy, const Tensor& h, const Tensor& x_conv, const Tensor& z,
                                         const Tensor& norm_weight, const Tensor& skip) {
  const char* op = "mlstm_output_gate_backward";
  const MlstmOutputGateInputs in =
      mlstm_output_gate_inputs(h, x_conv, z, norm_weight, skip, op, XLSTM_KERNEL_DEVICE, false);
  const DeviceScope scope(in.h);
  const MlstmOutputGateBackwardTensors t = mlstm_output_gate_backward_tensors(in, dy, op, empty_output);
  const RowTiles tiles = row_tiles(in.rows, 64);
  Tensor partial = empty_output({tiles.count, 2, in.D}, in.w.options());
  XLSTM_DISPATCH_KERNEL_TYPES(in.h.scalar_type(), "mlstm_output_gate_backward_cuda", [&] {
    auto p = mlstm_output_gate_params<scalar_t, float>(in);
    p.dy = t.dy.data_ptr<scalar_t>();
    p.dh = t.dh.data_ptr<scalar_t>();
    p.dx_conv = t.dx_conv.data_ptr<scalar_t>();
    p.dz = t.dz.data_ptr<scalar_t>();
    launch_kernel(mlstm_output_gate_bwd_kernel<scalar_t>, feature_grid(in, tiles), dim3(kFeatures, kRows),
                  sizeof(float) * kFeatures * kRows, scope.stream(), p, tiles.rows_per_tile, partial.data_ptr<float>());
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
