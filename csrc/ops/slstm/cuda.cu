// CUDA entry points of the sLSTM; g++ compiles this file too, for the host emulation.
#include "common/launch.h"
#include "common/registration.h"
#include "ops/slstm/host.h"
#include "ops/slstm/launch.h"

namespace xlstm {
namespace {

// A thread per gate column (forward) or per (tile row, unit) (backward): 4·DH threads, whole warps.
dim3 slstm_threads_per_block(int64_t dh) {
  const int64_t threads = std::min<int64_t>(1024, (kSlstmGates * dh + 31) / 32 * 32);
  return dim3(static_cast<unsigned>(threads));
}

dim3 slstm_grid(const SlstmInputs& in) {
  return dim3(static_cast<unsigned>(in.NH), static_cast<unsigned>((in.B + kSlstmBatchTile - 1) / kSlstmBatchTile));
}

void check_grid(const SlstmInputs& in, const char* op) {
  TORCH_CHECK(in.NH <= std::numeric_limits<int32_t>::max(), op, ": NH = ", in.NH, " exceeds the CUDA grid");
  check_grid_extent((in.B + kSlstmBatchTile - 1) / kSlstmBatchTile, op, "the tiles of the batch");
}

SlstmRPlace slstm_cuda_r_place(int64_t dh, bool backward) {
  const auto fits = [&](SlstmRPlace place) {
    const int64_t floats = backward ? slstm_bwd_smem_floats(dh, place) : slstm_fwd_smem_floats(dh, place);
    return fits_shared_memory(floats * static_cast<int64_t>(sizeof(float)));
  };
  if (fits(SlstmRPlace::kShared)) return SlstmRPlace::kShared;
  // The split gives each thread one slice of R: a block of 4·DH threads, and DH past the register rows.
  if (4 * dh <= kSlstmSplitMaxThreads && dh > kSlstmRegisterRows && fits(SlstmRPlace::kRegistersAndShared))
    return SlstmRPlace::kRegistersAndShared;
  return SlstmRPlace::kGlobal;
}

}  // namespace

const char* slstm_cuda_path(int64_t dh, bool backward) {
  switch (slstm_cuda_r_place(dh, backward)) {
    case SlstmRPlace::kShared:
      return "fused: R in shared memory";
    case SlstmRPlace::kRegistersAndShared:
      return "fused: R in registers and shared memory";
    default:
      return "general: R read from L2";
  }
}

Tensors3 slstm_forward_cuda(const Tensor& x, const Tensor& R, const Tensor& b, const Tensor& initial, bool save_trace) {
  const char* op = "slstm_forward";
  const SlstmInputs in = slstm_inputs(x, R, b, initial, op, XLSTM_KERNEL_DEVICE, false);
  check_grid(in, op);
  const DeviceScope scope(in.x);
  auto [h, trace] = slstm_forward_outputs(in, save_trace, empty_output);
  const SlstmRPlace place = slstm_cuda_r_place(in.DH, false);
  const size_t smem = slstm_fwd_smem_floats(in.DH, place) * sizeof(float);
  XLSTM_DISPATCH_KERNEL_TYPES(in.x.scalar_type(), "slstm_forward_cuda", [&] {
    SlstmParams<scalar_t, float> p;
    slstm_fill_params(p, in, trace);
    p.h_out = h.data_ptr<scalar_t>();
    slstm_forward_launch<scalar_t>(p, place, slstm_grid(in), slstm_threads_per_block(in.DH), smem, scope.stream());
  });
  return slstm_forward_result(in, h, trace);
}

Tensors4 slstm_backward_cuda(const Tensor& dh, const Tensor& d_last, const Tensor& x, const Tensor& R,
                             const Tensor& b, const Tensor& trace, std::array<bool, 4> needs) {
  const char* op = "slstm_backward";
  const SlstmInputs in = slstm_inputs(x, R, b, trace.narrow(0, 0, 4).select(2, 0), op, XLSTM_KERNEL_DEVICE, false);
  check_grid(in, op);
  const DeviceScope scope(in.x);
  const SlstmBackwardTensors t = slstm_backward_tensors(in, dh, d_last, trace, op, empty_output);
  const SlstmRPlace place = slstm_cuda_r_place(in.DH, true);
  const size_t smem = slstm_bwd_smem_floats(in.DH, place) * sizeof(float);
  XLSTM_DISPATCH_KERNEL_TYPES(in.x.scalar_type(), "slstm_backward_cuda", [&] {
    slstm_backward_launch<scalar_t>(slstm_bwd_params<scalar_t, float>(in, t), place, slstm_grid(in),
                                    slstm_threads_per_block(in.DH), smem, scope.stream());
  });
  const SlstmNeeds need = slstm_needs(needs);
  // One batched product over batch and time.
  const Tensor dR = need.R ? at::einsum("bshk,bshg->hkg", {slstm_h_prev(in, t), t.d_raw}) : Tensor();
  return slstm_backward_result(in, t, dR, R, b, need);
}

}  // namespace xlstm

XLSTM_CUDA_KERNELS(m) {
  m.impl("slstm_forward", &xlstm::slstm_forward_cuda);
  m.impl("slstm_backward", &xlstm::slstm_backward_cuda);
}
