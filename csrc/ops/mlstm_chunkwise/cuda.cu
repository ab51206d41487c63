// CUDA entry points of the chunkwise mLSTM; g++ compiles this file too, for the host emulation.
#include "common/launch.h"
#include "common/registration.h"
#include "ops/mlstm_chunkwise/host.h"
#include "ops/mlstm_chunkwise/kernels.cuh"  // the passes' shared memory sizes
#include "ops/mlstm_chunkwise/launch.h"

namespace xlstm {
namespace {

using Traits = MlstmChunkwiseTraits;

MlstmChunkwiseInputs chunkwise_launch(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i,
                                      const Tensor& f, const Tensor& C0, const Tensor& n0, const Tensor& m0,
                                      int64_t chunk_size, double eps, const char* op) {
  const MlstmChunkwiseSizes z =
      mlstm_chunkwise_check_inputs(q, k, v, i, f, C0, n0, m0, chunk_size, eps, op, XLSTM_KERNEL_DEVICE, false);
  TORCH_CHECK(z.L <= Traits::kMaxChunk, op, ": chunk_size ", chunk_size, " exceeds the CUDA kernels' largest chunk, ",
              Traits::kMaxChunk, "; pass chunk_size <= ", Traits::kMaxChunk,
              " (every chunk size computes the same result)");
  check_grid_extent(z.bh(), op, "B * NH");
  TORCH_CHECK(z.S * std::max(z.DQK, z.DV + 1) <= std::numeric_limits<int32_t>::max(), op,
              ": S * head size exceeds the kernels' 32-bit row offsets");
  return mlstm_chunkwise_inputs(z, q, k, v, i, f, C0, n0, m0, eps, z.dtype);
}

MlstmChunkwiseLaunchShape launch_shape(const MlstmChunkwiseSizes& z, int64_t state_smem_floats,
                                       int64_t chunk_smem_floats, cudaStream_t stream) {
  const auto tiles = [](int64_t n) { return static_cast<unsigned>((n + Traits::kTile - 1) / Traits::kTile); };
  return {dim3(tiles(z.DQK), tiles(z.DV + 1), static_cast<unsigned>(z.bh())),
          dim3(static_cast<unsigned>(z.chunks), static_cast<unsigned>(z.bh())),
          static_cast<size_t>(state_smem_floats) * sizeof(float),
          static_cast<size_t>(chunk_smem_floats) * sizeof(float), stream};
}

void check_chunk_shared_memory(int64_t floats, const char* op) {
  check_shared_memory(floats * static_cast<int64_t>(sizeof(float)), op, "use a smaller chunk_size");
}

// The tile products run on tensor cores for 16-bit inputs (kernels.cuh, ChunkTile).
bool on_tensor_cores(at::ScalarType dtype) { return dtype != at::kFloat; }

}  // namespace

const char* mlstm_chunkwise_cuda_path(const std::string& dtype) {
  if (dtype == "float32") return "CUDA cores: float32 FFMA tiles";
  if (dtype == "bfloat16") return "tensor cores: mma.sync m16n8k16 bf16, float32 accumulation";
  if (dtype == "float16") return "tensor cores: mma.sync m16n8k16 fp16, float32 accumulation";
  TORCH_CHECK(false, "mlstm_chunkwise_cuda_path: dtype must be float32, bfloat16 or float16, got ", dtype);
}

std::vector<std::pair<std::string, int64_t>> mlstm_chunkwise_cuda_shared_memory(const std::string& dtype,
                                                                                int64_t chunk_size) {
  (void)mlstm_chunkwise_cuda_path(dtype);  // checks dtype
  TORCH_CHECK(chunk_size >= 1 && chunk_size <= Traits::kMaxChunk, "mlstm_chunkwise_cuda_shared_memory: chunk_size ",
              chunk_size, " outside [1, ", Traits::kMaxChunk, "]");
  const bool tc = dtype != "float32";
  const auto bytes = [](int64_t floats) { return floats * static_cast<int64_t>(sizeof(float)); };
  return {{"mlstm_chunkwise_fwd_states_kernel", bytes(mlstm_chunkwise_state_smem_floats(tc))},
          {"mlstm_chunkwise_fwd_outputs_kernel", bytes(mlstm_chunkwise_fwd_outputs_smem_floats(tc))},
          {"mlstm_chunkwise_bwd_dh_dot_h_kernel", bytes(mlstm_chunkwise_fwd_outputs_smem_floats(tc))},
          {"mlstm_chunkwise_bwd_states_kernel", bytes(mlstm_chunkwise_state_smem_floats(tc))},
          {"mlstm_chunkwise_bwd_intra_kernel", bytes(mlstm_chunkwise_bwd_intra_smem_floats(chunk_size, tc))}};
}

Tensors8 mlstm_chunkwise_forward_cuda(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i,
                                      const Tensor& f, const Tensor& C0, const Tensor& n0, const Tensor& m0,
                                      int64_t chunk_size, double eps) {
  const char* op = "mlstm_chunkwise";
  const MlstmChunkwiseInputs in = chunkwise_launch(q, k, v, i, f, C0, n0, m0, chunk_size, eps, op);
  const MlstmChunkwiseSizes& z = in.z;
  const bool tc = on_tensor_cores(z.dtype);
  const int64_t state_smem = mlstm_chunkwise_state_smem_floats(tc), out_smem = mlstm_chunkwise_fwd_outputs_smem_floats(tc);
  check_chunk_shared_memory(std::max(state_smem, out_smem), op);
  const DeviceScope scope(in.q);
  const auto fo = in.C0.options();
  Tensor h = empty_output({z.B, z.NH, z.S, z.DV}, in.q.options());
  Tensor C_T = empty_output(in.C0.sizes(), fo), n_T = empty_output(in.n0.sizes(), fo),
         m_T = empty_output(in.m0.sizes(), fo);
  Tensor C_starts = empty_output({z.B, z.NH, z.chunks, z.DQK, z.DV}, fo);
  Tensor n_starts = empty_output({z.B, z.NH, z.chunks, z.DQK}, fo);
  Tensor m_all = empty_output({z.B, z.NH, z.S}, fo), qn_all = empty_output({z.B, z.NH, z.S}, fo);
  if (z.bh() > 0) {  // S >= 1 is checked
    XLSTM_DISPATCH_KERNEL_TYPES(in.q.scalar_type(), "mlstm_chunkwise_forward_cuda", [&] {
      MlstmChunkwiseFwdParams<scalar_t> p{};
      mlstm_chunkwise_fill_params(p, in, C_starts, n_starts, m_all);
      p.h = h.data_ptr<scalar_t>();
      p.C_T = C_T.data_ptr<float>();
      p.n_T = n_T.data_ptr<float>();
      p.m_T = m_T.data_ptr<float>();
      p.qn_all = qn_all.data_ptr<float>();
      mlstm_chunkwise_forward_launch(p, launch_shape(z, state_smem, out_smem, scope.stream()));
    });
  }
  return {h, C_T, n_T, m_T, C_starts, n_starts, m_all, qn_all};
}

Tensors8 mlstm_chunkwise_backward_cuda(const Tensor& dh, const Tensor& dC_T, const Tensor& dn_T, const Tensor& dm_T,
                                       const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i,
                                       const Tensor& f, const Tensor& C0, const Tensor& n0, const Tensor& m0,
                                       const Tensor& h, const Tensor& C_T, const Tensor& n_T, const Tensor& C_starts,
                                       const Tensor& n_starts, const Tensor& m_all, const Tensor& qn_all,
                                       int64_t chunk_size, double eps) {
  const char* op = "mlstm_chunkwise_backward";
  const MlstmChunkwiseInputs in = chunkwise_launch(q, k, v, i, f, C0, n0, m0, chunk_size, eps, op);
  const MlstmChunkwiseSizes& z = in.z;
  mlstm_chunkwise_check_backward_inputs(z, in.q.device(), dh, dC_T, dn_T, dm_T, h, C_T, n_T, C_starts, n_starts, m_all,
                                        qn_all, op);
  const bool tc = on_tensor_cores(z.dtype);
  const int64_t state_smem = mlstm_chunkwise_state_smem_floats(tc);
  const int64_t intra_smem = mlstm_chunkwise_bwd_intra_smem_floats(z.L, tc);
  check_chunk_shared_memory(std::max(state_smem, intra_smem), op);
  const DeviceScope scope(in.q);
  const Tensor dh_c = dh.contiguous(), dC_T_c = dC_T.contiguous(), dn_T_c = dn_T.contiguous();
  const Tensor C_starts_c = C_starts.contiguous(), n_starts_c = n_starts.contiguous(), m_all_c = m_all.contiguous();
  const auto fo = in.C0.options();
  // dh·h from h at full precision: the returned h where it is float32, else recomputed.
  Tensor dh_dot_h;
  if (z.dtype == at::kFloat) {
    dh_dot_h = (dh_c * h).sum(-1);
  } else {
    dh_dot_h = empty_output({z.B, z.NH, z.S}, fo);
    if (z.bh() > 0) XLSTM_DISPATCH_KERNEL_TYPES(in.q.scalar_type(), "mlstm_chunkwise_dh_dot_h_cuda", [&] {
      MlstmChunkwiseFwdParams<scalar_t> p{};
      mlstm_chunkwise_fill_params(p, in, C_starts_c, n_starts_c, m_all_c);
      p.dh = dh_c.data_ptr<scalar_t>();
      p.dh_dot_h = dh_dot_h.data_ptr<float>();
      mlstm_chunkwise_dh_dot_h_launch(p, launch_shape(z, 0, mlstm_chunkwise_fwd_outputs_smem_floats(tc), scope.stream()));
    });
  }
  const Tensor dh_dot_h_c = dh_dot_h.contiguous(), qn_all_c = qn_all.contiguous();
  // The gradient of every chunk's end state: as large as C_starts, freed on return.
  Tensor dC_ends = empty_output(C_starts.sizes(), fo), dn_ends = empty_output(n_starts.sizes(), fo);
  Tensor dq = empty_output(in.q.sizes(), in.q.options()), dk = empty_output(in.k.sizes(), in.k.options());
  Tensor dv = empty_output(in.v.sizes(), in.v.options());
  Tensor di = empty_output({z.bh(), z.S}, fo), d_log_f = empty_output({z.bh(), z.S}, fo);
  Tensor dden = empty_output({z.bh(), z.S}, fo);
  Tensor dm0 = empty_output({z.bh()}, fo);
  Tensor dC0 = empty_output(in.C0.sizes(), fo), dn0 = empty_output(in.n0.sizes(), fo);
  if (z.bh() > 0) {  // S >= 1 is checked
    XLSTM_DISPATCH_KERNEL_TYPES(in.q.scalar_type(), "mlstm_chunkwise_backward_cuda", [&] {
      MlstmChunkwiseBwdParams<scalar_t> p{};
      mlstm_chunkwise_fill_params(p, in, C_starts_c, n_starts_c, m_all_c);
      p.dh = dh_c.data_ptr<scalar_t>();
      p.dh_dot_h = dh_dot_h_c.data_ptr<float>();
      p.qn_all = qn_all_c.data_ptr<float>();
      p.dden = dden.data_ptr<float>();
      p.dC_T = dC_T_c.data_ptr<float>();
      p.dn_T = dn_T_c.data_ptr<float>();
      p.dC_ends = dC_ends.data_ptr<float>();
      p.dn_ends = dn_ends.data_ptr<float>();
      p.dq = dq.data_ptr<scalar_t>();
      p.dk = dk.data_ptr<scalar_t>();
      p.dv_ = dv.data_ptr<scalar_t>();
      p.di = di.data_ptr<float>();
      p.d_log_f = d_log_f.data_ptr<float>();
      p.dm0_carry = dm0.data_ptr<float>();
      p.dC0 = dC0.data_ptr<float>();
      p.dn0 = dn0.data_ptr<float>();
      mlstm_chunkwise_backward_launch(p, launch_shape(z, state_smem, intra_smem, scope.stream()));
    });
  }
  auto [di_out, df, dm0_out] = mlstm_chunkwise_finish_gate_grads(z, di, d_log_f, dm0, dden, in.i, in.f, in.m0, m_all_c,
                                                                 dC_T_c, C_T, dn_T_c, n_T, dm_T, eps);
  return {dq, dk, dv, di_out, df, dC0, dn0, dm0_out};
}

}  // namespace xlstm

XLSTM_CUDA_KERNELS(m) {
  m.impl("mlstm_chunkwise_forward", &xlstm::mlstm_chunkwise_forward_cuda);
  m.impl("mlstm_chunkwise_backward", &xlstm::mlstm_chunkwise_backward_cuda);
}
