// CUDA entry points of the mLSTM step; g++ compiles this file too, for the host emulation.
#include "common/launch.h"
#include "common/registration.h"
#include "ops/mlstm_step/host.h"
#include "ops/mlstm_step/kernels.cuh"

namespace xlstm {
namespace {

// The backward: enough threads to cover DV in one sweep, in whole warps, at most 256.
dim3 mlstm_step_bwd_block(int64_t dv) {
  const int64_t warps = std::min<int64_t>(8, std::max<int64_t>(1, (dv + 31) / 32));
  return dim3(static_cast<unsigned>(warps * 32));
}

void check_launchable(const MlstmStepInputs& in, int64_t smem_floats, const char* op) {
  TORCH_CHECK(in.B * in.NH <= std::numeric_limits<int32_t>::max(), op, ": B * NH = ", in.B * in.NH,
              " exceeds the grid size");
  TORCH_CHECK(in.DQK * in.DV <= std::numeric_limits<int32_t>::max(), op, ": DHQK * DHV = ", in.DQK * in.DV,
              " exceeds the kernels' 32-bit offsets within a head's state");
  check_shared_memory(smem_floats * static_cast<int64_t>(sizeof(float)), op, "use smaller head sizes DHQK, DHV");
}

// 16-byte accesses to C and C' where rows of DV floats keep them aligned.
int mlstm_step_fwd_vector_width(const MlstmStepInputs& in, const MlstmStepOutputs& out) {
  const bool aligned = aligned_to(in.C.data_ptr(), 16) && aligned_to(std::get<1>(out).data_ptr(), 16);
  return in.DV % 4 == 0 && aligned ? 4 : 1;
}

}  // namespace

Tensors4 mlstm_step_cuda(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i, const Tensor& f,
                         const Tensor& C, const Tensor& n, const Tensor& m, double eps) {
  const char* op = "mlstm_step";
  const MlstmStepInputs in = mlstm_step_inputs(q, k, v, i, f, C, n, m, eps, op, XLSTM_KERNEL_DEVICE, false);
  const MlstmStepOutputs out = mlstm_step_outputs(in, empty_output);
  const int vec = mlstm_step_fwd_vector_width(in, out);
  const int64_t smem = mlstm_step_fwd_smem_floats(in.DQK, vec);
  check_launchable(in, smem, op);
  const int64_t column_slices = (in.DV + MlstmStepFwdLaunch::kColumns - 1) / MlstmStepFwdLaunch::kColumns;
  check_grid_extent(column_slices, op, "the column slices of DHV");
  const DeviceScope scope(in.q);
  const dim3 grid(static_cast<unsigned>(in.B * in.NH), static_cast<unsigned>(column_slices));
  XLSTM_DISPATCH_KERNEL_TYPES(in.q.scalar_type(), "mlstm_step_cuda", [&] {
    const auto params = mlstm_step_fwd_params<scalar_t, float>(in, eps, out);
    if (vec == 4)
      launch_kernel(mlstm_step_fwd_kernel<scalar_t, 4>, LaunchBounds{MlstmStepFwdLaunch::kThreads}, grid,
                    dim3(MlstmStepFwdLaunch::kThreads), smem * sizeof(float), scope.stream(), params);
    else
      launch_kernel(mlstm_step_fwd_kernel<scalar_t, 1>, LaunchBounds{MlstmStepFwdLaunch::kThreads}, grid,
                    dim3(MlstmStepFwdLaunch::kThreads), smem * sizeof(float), scope.stream(), params);
  });
  return out;
}

Tensors8 mlstm_step_backward_cuda(const Tensor& dh, const Tensor& dC_new, const Tensor& dn_new, const Tensor& dm_new,
                                  const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i, const Tensor& f,
                                  const Tensor& C, const Tensor& n, const Tensor& m, double eps) {
  const char* op = "mlstm_step_backward";
  const MlstmStepInputs in = mlstm_step_inputs(q, k, v, i, f, C, n, m, eps, op, XLSTM_KERNEL_DEVICE, false);
  const int64_t smem = mlstm_step_bwd_smem_floats(in.DQK, in.DV);
  check_launchable(in, smem, op);
  const MlstmStepGrads grads = mlstm_step_grads(in, dh, dC_new, dn_new, dm_new, op);
  const DeviceScope scope(in.q);
  const MlstmStepInputGrads out = mlstm_step_input_grads(in, empty_output);
  XLSTM_DISPATCH_KERNEL_TYPES(in.q.scalar_type(), "mlstm_step_backward_cuda", [&] {
    launch_kernel(mlstm_step_bwd_kernel<scalar_t>, dim3(static_cast<unsigned>(in.B * in.NH)),
                  mlstm_step_bwd_block(in.DV), smem * sizeof(float), scope.stream(),
                  mlstm_step_bwd_params<scalar_t, float>(in, eps, grads, out));
  });
  return out;
}

}  // namespace xlstm

XLSTM_CUDA_KERNELS(m) {
  m.impl("mlstm_step", &xlstm::mlstm_step_cuda);
  m.impl("mlstm_step_backward", &xlstm::mlstm_step_backward_cuda);
}
