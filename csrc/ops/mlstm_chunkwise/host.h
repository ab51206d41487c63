// Tensor side of the chunkwise mLSTM shared by the CPU and CUDA entry points: validation, and the
// last, (B·NH, S)-sized step of the backward pass: the routing of the stabiliser's gradient.
//
// The stabiliser m[t] (the step form's running max) cancels from everything but the eps term of
// the normaliser and the scale of the returned state, so the backward pass is the gradient of the
// stabilised computation with every m held fixed, plus the gradient through m itself: per step
// -eps (dh·h) / den, routed through m[t] = max(logσ(f[t]) + m[t-1], i[t]) to the i or f that won.
// Entry points (mlstm_chunkwise_{forward,backward}_{cpu,cuda}): the forward returns (h, C_T, n_T, m_T,
// then for the backward: the state at every chunk start C_starts (B, NH, chunks, DQK, DV), n_starts,
// and m and q·n of every step, m_all and qn_all (B, NH, S)); the backward (dq, dk, dv, di, df, dC0,
// dn0, dm0).
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common/checks.h"
#include "common/op_types.h"
#include "ops/mlstm_chunkwise/math.h"

namespace xlstm {

struct MlstmChunkwiseSizes {
  int64_t B, NH, S, DQK, DV, L, chunks;
  at::ScalarType dtype, state;
  int64_t bh() const { return B * NH; }
};

inline MlstmChunkwiseSizes mlstm_chunkwise_check_inputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                        const at::Tensor& i, const at::Tensor& f, const at::Tensor& C0,
                                                        const at::Tensor& n0, const at::Tensor& m0, int64_t chunk_size,
                                                        double eps, const char* op, at::DeviceType device_type,
                                                        bool float64_ok) {
  check_rank(q, op, "q", 4, "[B, NH, S, DHQK]");
  check_rank(v, op, "v", 4, "[B, NH, S, DHV]");
  check_leading_input(q, op, "q", device_type, float64_ok);
  TORCH_CHECK(chunk_size >= 1, op, ": chunk_size must be >= 1, got ", chunk_size);
  TORCH_CHECK(eps >= 0.0 && std::isfinite(eps), op, ": eps must be finite and >= 0, got ", eps);
  const int64_t B = q.size(0), NH = q.size(1), S = q.size(2), DQK = q.size(3), DV = v.size(3);
  const at::ScalarType dt = q.scalar_type(), st = state_dtype(dt);
  const at::Device dev = q.device();
  TORCH_CHECK(S > 0 && DQK > 0 && DV > 0, op, ": S, DHQK and DHV must be >= 1, got q ", q.sizes(), " and v ",
              v.sizes());
  check_tensor(q, op, "q", {B, NH, S, DQK}, dt, dev, "[B, NH, S, DHQK]");
  check_tensor(k, op, "k", {B, NH, S, DQK}, dt, dev, "like q");
  check_tensor(v, op, "v", {B, NH, S, DV}, dt, dev, "[B, NH, S, DHV] with q's B, NH, S, dtype of q");
  check_tensor(i, op, "i", {B, NH, S}, dt, dev, "[B, NH, S], dtype of q");
  check_tensor(f, op, "f", {B, NH, S}, dt, dev, "[B, NH, S], dtype of q");
  check_tensor(C0, op, "state C", {B, NH, DQK, DV}, st, dev, "[B, NH, DHQK, DHV], float32 state");
  check_tensor(n0, op, "state n", {B, NH, DQK}, st, dev, "[B, NH, DHQK], float32 state");
  check_tensor(m0, op, "state m", {B, NH}, st, dev, "[B, NH], float32 state");
  const int64_t L = std::min(chunk_size, S);
  return {B, NH, S, DQK, DV, L, (S + L - 1) / L, dt, st};
}

// The inputs every pass reads, contiguous, in `compute`: the inputs' own dtype for the CUDA kernels,
// the state dtype for the CPU kernels (which compute in it throughout).
struct MlstmChunkwiseInputs {
  MlstmChunkwiseSizes z;
  at::Tensor q, k, v, i, f, C0, n0, m0;
  double eps;
};

inline MlstmChunkwiseInputs mlstm_chunkwise_inputs(const MlstmChunkwiseSizes& z, const at::Tensor& q,
                                                   const at::Tensor& k, const at::Tensor& v, const at::Tensor& i,
                                                   const at::Tensor& f, const at::Tensor& C0, const at::Tensor& n0,
                                                   const at::Tensor& m0, double eps, at::ScalarType compute) {
  const auto in = [&](const at::Tensor& t) { return t.to(compute).contiguous(); };
  return {z, in(q), in(k), in(v), in(i), in(f), C0.contiguous(), n0.contiguous(), m0.contiguous(), eps};
}

// The fields every pass shares; C_starts, n_starts (per chunk) and m_all (per step) as the forward
// allocated them.
template <typename scalar_t, typename state_t>
void mlstm_chunkwise_fill_params(MlstmChunkwiseParams<scalar_t, state_t>& p, const MlstmChunkwiseInputs& in,
                                 const at::Tensor& C_starts, const at::Tensor& n_starts, const at::Tensor& m_all) {
  const MlstmChunkwiseSizes& z = in.z;
  p.bh = z.bh();
  p.seq = z.S;
  p.dqk = z.DQK;
  p.dv = z.DV;
  p.chunk = z.L;
  p.chunks = z.chunks;
  p.q = in.q.data_ptr<scalar_t>();
  p.k = in.k.data_ptr<scalar_t>();
  p.v = in.v.data_ptr<scalar_t>();
  p.i = in.i.data_ptr<scalar_t>();
  p.f = in.f.data_ptr<scalar_t>();
  p.C0 = in.C0.data_ptr<state_t>();
  p.n0 = in.n0.data_ptr<state_t>();
  p.m0 = in.m0.data_ptr<state_t>();
  p.scale = static_cast<state_t>(1.0 / std::sqrt(static_cast<double>(z.DQK)));
  p.eps = static_cast<state_t>(in.eps);
  p.C_starts = C_starts.data_ptr<state_t>();
  p.n_starts = n_starts.data_ptr<state_t>();
  p.m_all = m_all.data_ptr<state_t>();
}

// The backward op's extra arguments: upstream gradients and what the forward saved.
inline void mlstm_chunkwise_check_backward_inputs(const MlstmChunkwiseSizes& z, const at::Device& dev,
                                                  const at::Tensor& dh, const at::Tensor& dC_T, const at::Tensor& dn_T,
                                                  const at::Tensor& dm_T, const at::Tensor& h, const at::Tensor& C_T,
                                                  const at::Tensor& n_T, const at::Tensor& C_starts,
                                                  const at::Tensor& n_starts, const at::Tensor& m_all,
                                                  const at::Tensor& qn_all, const char* op) {
  check_tensor(dh, op, "grad h", {z.B, z.NH, z.S, z.DV}, z.dtype, dev, "like h");
  check_tensor(dC_T, op, "grad C", {z.B, z.NH, z.DQK, z.DV}, z.state, dev, "like state C");
  check_tensor(dn_T, op, "grad n", {z.B, z.NH, z.DQK}, z.state, dev, "like state n");
  check_tensor(dm_T, op, "grad m", {z.B, z.NH}, z.state, dev, "like state m");
  check_tensor(h, op, "h", {z.B, z.NH, z.S, z.DV}, z.dtype, dev, "from the forward");
  check_tensor(C_T, op, "C_T", {z.B, z.NH, z.DQK, z.DV}, z.state, dev, "from the forward");
  check_tensor(n_T, op, "n_T", {z.B, z.NH, z.DQK}, z.state, dev, "from the forward");
  check_tensor(C_starts, op, "C_starts", {z.B, z.NH, z.chunks, z.DQK, z.DV}, z.state, dev, "from the forward");
  check_tensor(n_starts, op, "n_starts", {z.B, z.NH, z.chunks, z.DQK}, z.state, dev, "from the forward");
  check_tensor(m_all, op, "m_all", {z.B, z.NH, z.S}, z.state, dev, "from the forward");
  check_tensor(qn_all, op, "qn_all", {z.B, z.NH, z.S}, z.state, dev, "from the forward");
}

// Running sums Σ_{t<j} x[:, t] (j = 0..S) of x (rows, S) that come out the same bits on every run,
// on every device: in 64-bit fixed point at a power-of-two scale per row that keeps Σ|x| within
// 2^62, so every addition is exact and the scan's order does not matter. (A float at::cumsum, or
// a scatter_add_, is not reproducible on a GPU.) Differences of `fixed` are exact; to_float maps
// them back with an error of about 2^-62 Σ|x| of the row.
struct MlstmChunkwiseRunningSums {
  at::Tensor fixed, scale;  // (rows, S + 1) int64; (rows, 1) float64
  at::Tensor to_float(const at::Tensor& fixed_sums) const { return fixed_sums.to(at::kDouble) / scale; }
};

inline MlstmChunkwiseRunningSums mlstm_chunkwise_running_sums(const at::Tensor& x) {
  const at::Tensor x64 = x.to(at::kDouble);
  const at::Tensor magnitude = x64.abs().sum(1, true).clamp_min(1e-200);
  const at::Tensor scale = at::exp2(62.0 - at::ceil(at::log2(magnitude)));
  const at::Tensor fixed = (x64 * scale).round().to(at::kLong);
  return {at::cat({at::zeros({x.size(0), 1}, fixed.options()), fixed.cumsum(1)}, 1), scale};
}

// The gate gradients, given those with every m held fixed (di, d_log_f (B·NH, S), dm0 (B·NH) in
// the state dtype): adds the gradient through m (the eps term -eps·dden of every step, and the
// returned state's scale exp(-m_T)), routed to the i that won each running max or along the
// forget path to m0, then df = d_log_f · σ(-f). Returns di, df (dtype of the inputs) and dm0.
inline std::tuple<at::Tensor, at::Tensor, at::Tensor> mlstm_chunkwise_finish_gate_grads(
    const MlstmChunkwiseSizes& z, at::Tensor di, at::Tensor d_log_f, at::Tensor dm0, const at::Tensor& dden,
    const at::Tensor& i, const at::Tensor& f, const at::Tensor& m0, const at::Tensor& m_all, const at::Tensor& dC_T,
    const at::Tensor& C_T, const at::Tensor& dn_T, const at::Tensor& n_T, const at::Tensor& dm_T, double eps) {
  const int64_t BH = z.bh(), S = z.S;
  const at::Tensor i_s = i.to(z.state).reshape({BH, S}), f_s = f.to(z.state).reshape({BH, S});
  const at::Tensor ms = at::cat({m0.reshape({BH, 1}), m_all.reshape({BH, S})}, 1);  // m before each step
  at::Tensor dm_direct = eps * dden;
  dm_direct.select(1, S - 1).add_(dm_T.reshape({BH}) - (dC_T * C_T).reshape({BH, -1}).sum(1) -
                                  (dn_T * n_T).reshape({BH, -1}).sum(1));
  const at::Tensor steps = at::arange(S, i_s.options().dtype(at::kLong)).expand({BH, S});
  const at::Tensor i_won = i_s > at::log_sigmoid(f_s) + ms.narrow(1, 0, S);
  const at::Tensor source = std::get<0>(at::where(i_won, steps, -1).cummax(1));  // last i win at or before t
  const at::Tensor from_i = source >= 0;
  dm0 += (dm_direct * from_i.logical_not()).sum(1);
  const at::Tensor next_win = std::get<0>(at::where(i_won, steps, S).flip(1).cummin(1)).flip(1);  // at or after t
  const at::Tensor next_win_after =
      at::cat({next_win.narrow(1, 1, S - 1), at::full({BH, 1}, S, next_win.options())}, 1);
  const MlstmChunkwiseRunningSums running = mlstm_chunkwise_running_sums(dm_direct);
  const at::Tensor first = running.fixed.narrow(1, 0, S);
  // di[w] gets the dm of the steps whose max the i win at w set: w up to the next win (exclusive).
  di += running.to_float(running.fixed.gather(1, next_win_after) - first).to(di.scalar_type()) * i_won;
  // f[w] carries the dm of steps t >= w up to the first i win at or after w (exclusive).
  d_log_f += running.to_float(running.fixed.gather(1, next_win) - first).to(d_log_f.scalar_type());
  const at::Tensor df = d_log_f * at::sigmoid(-f_s);
  return {di.reshape(i.sizes()).to(z.dtype), df.reshape(f.sizes()).to(z.dtype), dm0.reshape(m0.sizes())};
}

#if defined(XLSTM_WITH_CUDA) || defined(XLSTM_SIM)
// Where the CUDA kernels' tile products run for inputs of `dtype` ("float32", "bfloat16", "float16").
const char* mlstm_chunkwise_cuda_path(const std::string& dtype);
// The dynamic shared memory each CUDA kernel launches with, in bytes, by kernel name.
std::vector<std::pair<std::string, int64_t>> mlstm_chunkwise_cuda_shared_memory(const std::string& dtype,
                                                                                int64_t chunk_size);
#endif

}  // namespace xlstm
