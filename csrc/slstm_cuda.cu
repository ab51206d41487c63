// CUDA entry points of the sLSTM; g++ compiles this file too, for the host emulation.
#include "launch.h"
#include "ops.h"
#include "slstm_binding.h"
#include "slstm_kernels.cuh"

namespace xlstm {
namespace {

// A thread per gate column (forward) or per (row, unit) (backward): 4*DH threads, whole warps.
dim3 slstm_block(int64_t dh) {
  const int64_t threads = std::min<int64_t>(1024, (kSlstmBatchTile * dh + 31) / 32 * 32);
  return dim3(static_cast<unsigned>(threads));
}

dim3 slstm_grid(const SlstmInputs& in) {
  return dim3(static_cast<unsigned>(in.NH), static_cast<unsigned>((in.B + kSlstmBatchTile - 1) / kSlstmBatchTile));
}

void check_grid(const SlstmInputs& in, const char* op) {
  TORCH_CHECK(in.NH <= std::numeric_limits<int32_t>::max() && (in.B + kSlstmBatchTile - 1) / kSlstmBatchTile <= 65535,
              op, ": batch ", in.B, " x heads ", in.NH, " exceeds the grid");
}

// The instantiation for where R lives.
template <typename Kernel>
Kernel slstm_kernel_for(SlstmRPlace place, Kernel shared, Kernel split, Kernel global) {
  return place == SlstmRPlace::kShared ? shared : place == SlstmRPlace::kRegistersAndShared ? split : global;
}

SlstmRPlace slstm_cuda_r_place(int64_t dh, bool backward) {
  const auto fits = [&](SlstmRPlace place) {
    const int64_t floats = backward ? slstm_bwd_smem_floats(dh, place) : slstm_fwd_smem_floats(dh, place);
    return floats * static_cast<int64_t>(sizeof(float)) <= max_dynamic_shared_bytes();
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

Tensors3 slstm_forward_cuda(const Tensor& x, const Tensor& R, const Tensor& b, const Tensor& initial,
                             bool save_trace) {
  const char* op = "slstm_forward";
  const SlstmInputs in = slstm_inputs(x, R, b, initial, op, XLSTM_KERNEL_DEVICE, false);
  check_grid(in, op);
  const DeviceScope scope(in.x);
  auto [h, trace] = slstm_forward_outputs(in, save_trace, empty_output);
  const SlstmRPlace place = slstm_cuda_r_place(in.DH, false);
  const size_t smem = slstm_fwd_smem_floats(in.DH, place) * sizeof(float);
  XLSTM_DISPATCH_KERNEL_TYPES(in.x.scalar_type(), "slstm_forward_cuda", [&] {
    SlstmParams<scalar_t, float> p;
    fill_slstm_params(p, in, trace);
    p.h_out = h.data_ptr<scalar_t>();
    launch_kernel(slstm_kernel_for(place, slstm_fwd_kernel<scalar_t, SlstmRPlace::kShared>,
                                   slstm_fwd_kernel<scalar_t, SlstmRPlace::kRegistersAndShared>,
                                   slstm_fwd_kernel<scalar_t, SlstmRPlace::kGlobal>),
                  slstm_grid(in), slstm_block(in.DH), smem, scope.stream(), p);
  });
  return slstm_forward_result(in, h, trace);
}

Tensors4 slstm_backward_cuda(const Tensor& dh, const Tensor& d_last, const Tensor& x, const Tensor& R,
                             const Tensor& b, const Tensor& trace) {
  const char* op = "slstm_backward";
  const SlstmInputs in = slstm_inputs(x, R, b, trace.narrow(0, 0, 4).select(2, 0), op, XLSTM_KERNEL_DEVICE, false);
  check_grid(in, op);
  const DeviceScope scope(in.x);
  const SlstmBackwardTensors t = slstm_backward_tensors(in, dh, d_last, trace, op, empty_output);
  const SlstmRPlace place = slstm_cuda_r_place(in.DH, true);
  const size_t smem = slstm_bwd_smem_floats(in.DH, place) * sizeof(float);
  XLSTM_DISPATCH_KERNEL_TYPES(in.x.scalar_type(), "slstm_backward_cuda", [&] {
    launch_kernel(slstm_kernel_for(place, slstm_bwd_kernel<scalar_t, SlstmRPlace::kShared>,
                                   slstm_bwd_kernel<scalar_t, SlstmRPlace::kRegistersAndShared>,
                                   slstm_bwd_kernel<scalar_t, SlstmRPlace::kGlobal>),
                  slstm_grid(in), slstm_block(in.DH), smem, scope.stream(), slstm_bwd_params<scalar_t, float>(in, t));
  });
  // One batched product over batch and time.
  const Tensor dR = at::einsum("bshk,bshg->hkg", {slstm_h_prev(in, t), t.d_raw});
  return slstm_backward_result(in, t, dR, R, b);
}

}  // namespace xlstm
