// CUDA entry points of the sLSTM; g++ compiles this file too, for the host emulation.
#include <cstdlib>
#include <string>

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

// A cluster of shape.blocks blocks per (head, batch tile), the head's blocks consecutive along x.
dim3 slstm_cluster_grid(const SlstmInputs& in, const SlstmClusterShape& shape) {
  return dim3(static_cast<unsigned>(in.NH * shape.blocks), slstm_grid(in).y);
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

// Whether the cluster kernel can run here: on an sm_90 device (the build's cluster kernel is sm_90
// code), or in the emulation.
bool clusters_available() {
#if defined(XLSTM_SIM)
  return true;
#else
  int device = 0, major = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  return major == 9;
#endif
}

// Whether the sLSTM runs across a cluster unless told: on the GPU where R does not fit one block.
// The emulation has no compute capability to decide by, so it keeps to the one-block kernels.
bool clusters_by_default(int64_t dh, bool backward) {
#if defined(XLSTM_SIM)
  (void)dh;
  (void)backward;
  return false;
#else
  return slstm_cuda_r_place(dh, backward) == SlstmRPlace::kGlobal;
#endif
}

// XLSTM_SLSTM_CLUSTER=1 runs the sLSTM across a cluster wherever one can run and the head size
// allows it (this is how the tests reach it in the emulation), =0 never; unset: clusters_by_default.
enum class SlstmClusterMode { kAuto, kAlways, kNever };
SlstmClusterMode slstm_cluster_mode() {
  const char* env = std::getenv("XLSTM_SLSTM_CLUSTER");
  if (env == nullptr || *env == '\0') return SlstmClusterMode::kAuto;
  return std::string(env) == "0" ? SlstmClusterMode::kNever : SlstmClusterMode::kAlways;
}

// The cluster the forward or backward runs across for head size dh, or none (blocks = 0).
template <typename scalar_t>
SlstmClusterShape slstm_cluster_choice(int64_t dh, bool backward) {
  const SlstmClusterMode mode = slstm_cluster_mode();
  const SlstmClusterShape none{0, 0, 0, 0, 0};
  if (mode == SlstmClusterMode::kNever || !clusters_available()) return none;
  if (mode == SlstmClusterMode::kAuto && !clusters_by_default(dh, backward)) return none;
  const SlstmClusterShape shape = slstm_cluster_shape(dh, max_dynamic_shared_bytes(), backward);
  const size_t smem = slstm_cluster_smem_floats(dh, shape, backward) * sizeof(float);
  if (shape.blocks < 2 || !fits_shared_memory(static_cast<int64_t>(smem)) ||
      !slstm_cluster_fits<scalar_t>(shape, smem, backward))
    return none;
  return shape;
}

}  // namespace

const char* slstm_cuda_path(int64_t dh, bool backward) {
  const SlstmClusterShape cluster = slstm_cluster_choice<float>(dh, backward);
  if (cluster.blocks > 0) {
    static thread_local std::string path;
    path = "fused: R across a cluster of " + std::to_string(cluster.blocks) + " blocks, in shared memory" +
           (cluster.shared_rows < dh ? " and L2" : "");
    return path.c_str();
  }
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
    const SlstmClusterShape cluster = slstm_cluster_choice<scalar_t>(in.DH, false);
    if (cluster.blocks > 0) {
      slstm_forward_cluster_launch<scalar_t>(p, cluster, slstm_cluster_grid(in, cluster),
                                             slstm_cluster_smem_floats(in.DH, cluster, false) * sizeof(float),
                                             scope.stream());
      return;
    }
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
    const SlstmBwdParams<scalar_t, float> p = slstm_bwd_params<scalar_t, float>(in, t);
    const SlstmClusterShape cluster = slstm_cluster_choice<scalar_t>(in.DH, true);
    if (cluster.blocks > 0) {
      slstm_backward_cluster_launch<scalar_t>(p, cluster, slstm_cluster_grid(in, cluster),
                                              slstm_cluster_smem_floats(in.DH, cluster, true) * sizeof(float),
                                              scope.stream());
      return;
    }
    slstm_backward_launch<scalar_t>(p, place, slstm_grid(in),
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
