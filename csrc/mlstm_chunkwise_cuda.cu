// CUDA entry points of the chunkwise mLSTM; g++ compiles this file too, for the host emulation.
#include "launch.h"
#include "mlstm_chunkwise_binding.h"
#include "mlstm_chunkwise_kernels.cuh"
#include "ops.h"

namespace xlstm {
namespace {

using Traits = ChunkwiseTraits;

struct ChunkwiseLaunch {
  ChunkwiseSizes z;
  Tensor q, k, v, i, f, C0, n0, m0;  // contiguous
};

ChunkwiseLaunch chunkwise_launch(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i, const Tensor& f,
                                 const Tensor& C0, const Tensor& n0, const Tensor& m0, int64_t chunk_size, double eps,
                                 const char* op) {
  const ChunkwiseSizes z =
      check_chunkwise_inputs(q, k, v, i, f, C0, n0, m0, chunk_size, eps, op, XLSTM_KERNEL_DEVICE, false);
  TORCH_CHECK(z.L <= Traits::kMaxChunk, op, ": chunk_size ", chunk_size, " exceeds the CUDA kernels' largest chunk, ",
              Traits::kMaxChunk, "; pass chunk_size <= ", Traits::kMaxChunk, " (every chunk size computes the same result)");
  TORCH_CHECK(z.bh() <= 65535, op, ": B * NH = ", z.bh(), " exceeds the grid size (65535)");
  TORCH_CHECK(z.S * std::max(z.DQK, z.DV + 1) <= std::numeric_limits<int32_t>::max(), op,
              ": S * head size exceeds the kernels' 32-bit row offsets");
  return {z, q.contiguous(), k.contiguous(), v.contiguous(), i.contiguous(), f.contiguous(),
          C0.contiguous(), n0.contiguous(), m0.contiguous()};
}

template <typename scalar_t>
void fill_params(MlstmChunkwiseParams<scalar_t>& p, const ChunkwiseLaunch& in, double eps, const Tensor& C_starts,
                 const Tensor& n_starts, const Tensor& m_all) {
  p.bh = in.z.bh();
  p.seq = in.z.S;
  p.dqk = in.z.DQK;
  p.dv = in.z.DV;
  p.chunk = in.z.L;
  p.chunks = in.z.chunks;
  p.q = in.q.data_ptr<scalar_t>();
  p.k = in.k.data_ptr<scalar_t>();
  p.v = in.v.data_ptr<scalar_t>();
  p.i = in.i.data_ptr<scalar_t>();
  p.f = in.f.data_ptr<scalar_t>();
  p.C0 = in.C0.data_ptr<float>();
  p.n0 = in.n0.data_ptr<float>();
  p.m0 = in.m0.data_ptr<float>();
  p.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(in.z.DQK)));
  p.eps = static_cast<float>(eps);
  p.C_starts = C_starts.data_ptr<float>();
  p.n_starts = n_starts.data_ptr<float>();
  p.m_all = m_all.data_ptr<float>();
}

// The state passes: one block per (DQK tile, DV + 1 tile, batch·head).
dim3 state_grid(const ChunkwiseSizes& z) {
  const auto tiles = [](int64_t n) { return static_cast<unsigned>((n + Traits::kTile - 1) / Traits::kTile); };
  return dim3(tiles(z.DQK), tiles(z.DV + 1), static_cast<unsigned>(z.bh()));
}

// The per-chunk passes: one block per (chunk, batch·head).
dim3 chunk_grid(const ChunkwiseSizes& z) { return dim3(static_cast<unsigned>(z.chunks), static_cast<unsigned>(z.bh())); }

void check_smem(int64_t floats, const char* op, int64_t chunk) {
  TORCH_CHECK(floats * static_cast<int64_t>(sizeof(float)) <= max_dynamic_shared_bytes(), op, ": chunk_size ", chunk,
              " needs more shared memory than a block of this device has; use a smaller chunk_size");
}

}  // namespace

Tensors8 mlstm_chunkwise_forward_cuda(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i,
                                      const Tensor& f, const Tensor& C0, const Tensor& n0, const Tensor& m0,
                                      int64_t chunk_size, double eps) {
  const char* op = "mlstm_chunkwise";
  const ChunkwiseLaunch in = chunkwise_launch(q, k, v, i, f, C0, n0, m0, chunk_size, eps, op);
  const ChunkwiseSizes& z = in.z;
  const int64_t state_smem = mlstm_chunkwise_state_smem_floats(), out_smem = mlstm_chunkwise_fwd_outputs_smem_floats();
  check_smem(std::max(state_smem, out_smem), op, z.L);
  const DeviceScope scope(in.q);
  const auto fo = in.C0.options();
  Tensor h = empty_output({z.B, z.NH, z.S, z.DV}, in.q.options());
  Tensor C_T = empty_output(in.C0.sizes(), fo), n_T = empty_output(in.n0.sizes(), fo), m_T = empty_output(in.m0.sizes(), fo);
  Tensor C_starts = empty_output({z.B, z.NH, z.chunks, z.DQK, z.DV}, fo);
  Tensor n_starts = empty_output({z.B, z.NH, z.chunks, z.DQK}, fo);
  Tensor m_all = empty_output({z.B, z.NH, z.S}, fo), qn_all = empty_output({z.B, z.NH, z.S}, fo);
  if (z.bh() > 0) {  // S >= 1 is checked
    XLSTM_DISPATCH_KERNEL_TYPES(in.q.scalar_type(), "mlstm_chunkwise_forward_cuda", [&] {
      MlstmChunkwiseFwdParams<scalar_t> p{};
      fill_params(p, in, eps, C_starts, n_starts, m_all);
      p.h = h.data_ptr<scalar_t>();
      p.C_T = C_T.data_ptr<float>();
      p.n_T = n_T.data_ptr<float>();
      p.m_T = m_T.data_ptr<float>();
      p.qn_all = qn_all.data_ptr<float>();
      launch_kernel(mlstm_chunkwise_fwd_states_kernel<scalar_t>, state_grid(z), dim3(Traits::kThreads),
                    state_smem * sizeof(float), scope.stream(), p);
      launch_kernel(mlstm_chunkwise_fwd_outputs_kernel<scalar_t, false>, chunk_grid(z), dim3(Traits::kThreads),
                    out_smem * sizeof(float), scope.stream(), p);
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
  const ChunkwiseLaunch in = chunkwise_launch(q, k, v, i, f, C0, n0, m0, chunk_size, eps, op);
  const ChunkwiseSizes& z = in.z;
  check_chunkwise_backward_inputs(z, in.q.device(), dh, dC_T, dn_T, dm_T, h, C_T, n_T, C_starts, n_starts, m_all,
                                  qn_all, op);
  const int64_t state_smem = mlstm_chunkwise_state_smem_floats();
  const int64_t intra_smem = mlstm_chunkwise_bwd_intra_smem_floats(z.L);
  check_smem(std::max(state_smem, intra_smem), op, z.L);
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
      fill_params(p, in, eps, C_starts_c, n_starts_c, m_all_c);
      p.dh = dh_c.data_ptr<scalar_t>();
      p.dh_dot_h = dh_dot_h.data_ptr<float>();
      launch_kernel(mlstm_chunkwise_fwd_outputs_kernel<scalar_t, true>, chunk_grid(z), dim3(Traits::kThreads),
                    mlstm_chunkwise_fwd_outputs_smem_floats() * sizeof(float), scope.stream(), p);
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
      fill_params(p, in, eps, C_starts_c, n_starts_c, m_all_c);
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
      launch_kernel(mlstm_chunkwise_bwd_states_kernel<scalar_t>, state_grid(z), dim3(Traits::kThreads),
                    state_smem * sizeof(float), scope.stream(), p);
      launch_kernel(mlstm_chunkwise_bwd_intra_kernel<scalar_t>, chunk_grid(z), dim3(Traits::kThreads),
                    intra_smem * sizeof(float), scope.stream(), p);
    });
  }
  auto [di_out, df, dm0_out] =
      finish_gate_grads(z, di, d_log_f, dm0, dden, in.i, in.f, in.m0, m_all_c, dC_T_c, C_T, dn_T_c, n_T, dm_T, eps);
  return {dq, dk, dv, di_out, df, dC0, dn0, dm0_out};
}

}  // namespace xlstm
