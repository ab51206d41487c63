// CUDA entry points of the mLSTM output gate; g++ compiles this file too, for the host emulation.
#include "launch.h"
#include "mlstm_output_gate_binding.h"
#include "mlstm_output_gate_kernels.cuh"
#include "ops.h"

namespace xlstm {
namespace {

constexpr int kThreads = 256, kFeatures = 32, kRows = 8;

}  // namespace

Tensor mlstm_output_gate_cuda(const Tensor& h, const Tensor& x_conv, const Tensor& z, const Tensor& norm_weight,
                              const Tensor& skip) {
  const OutputGateInputs in =
      output_gate_inputs(h, x_conv, z, norm_weight, skip, "mlstm_output_gate", XLSTM_KERNEL_DEVICE, false);
  const DeviceScope scope(in.h);
  Tensor y = empty_output({in.rows, in.D}, in.h.options());
  const int64_t blocks = std::min<int64_t>((y.numel() + kThreads - 1) / kThreads, 65535);
  XLSTM_DISPATCH_KERNEL_TYPES(in.h.scalar_type(), "mlstm_output_gate_cuda", [&] {
    auto p = output_gate_params<scalar_t, float>(in);
    p.y = y.data_ptr<scalar_t>();
    launch_kernel(output_gate_fwd_kernel<scalar_t>, dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0,
                  scope.stream(), p);
  });
  return y;
}

Tensors5 mlstm_output_gate_backward_cuda(const Tensor& dy, const Tensor& h, const Tensor& x_conv, const Tensor& z,
                                         const Tensor& norm_weight, const Tensor& skip) {
  const char* op = "mlstm_output_gate_backward";
  const OutputGateInputs in = output_gate_inputs(h, x_conv, z, norm_weight, skip, op, XLSTM_KERNEL_DEVICE, false);
  check_tensor(dy, op, "dy", {in.rows, in.D}, in.h.scalar_type(), in.h.device(), "[N, D], like the output");
  const DeviceScope scope(in.h);
  const Tensor dy_c = dy.contiguous();
  const auto o = in.h.options();
  Tensor dh = empty_output({in.rows, in.D}, o), dx = empty_output({in.rows, in.D}, o);
  Tensor dz = empty_output({in.rows, in.D}, o);
  // Row tiles: at least 64 rows each, fewer than 65536 tiles.
  const int64_t rows_per_block = std::max<int64_t>(64, (in.rows + 65534) / 65535);
  const int64_t tiles = (in.rows + rows_per_block - 1) / rows_per_block;
  Tensor partial = empty_output({tiles, 2, in.D}, in.w.options());
  XLSTM_DISPATCH_KERNEL_TYPES(in.h.scalar_type(), "mlstm_output_gate_backward_cuda", [&] {
    auto p = output_gate_params<scalar_t, float>(in);
    p.dy = dy_c.data_ptr<scalar_t>();
    p.dh = dh.data_ptr<scalar_t>();
    p.dx_conv = dx.data_ptr<scalar_t>();
    p.dz = dz.data_ptr<scalar_t>();
    launch_kernel(output_gate_bwd_kernel<scalar_t>,
                  dim3(static_cast<unsigned>((in.D + kFeatures - 1) / kFeatures), static_cast<unsigned>(tiles)),
                  dim3(kFeatures, kRows), sizeof(float) * kFeatures * kRows, scope.stream(), p, rows_per_block,
                  partial.data_ptr<float>());
  });
  const Tensor totals = partial.sum(0);  // (2, D), a fixed order: deterministic
  return {dh, dx, dz, totals[0].to(norm_weight.scalar_type()).clone(), totals[1].to(skip.scalar_type()).clone()};
}

}  // namespace xlstm
