// mLSTM chunkwise forward and backward as ATen operations: batched over (batch, head), looped over
// chunks, the products inside a chunk as batched GEMMs. Device-generic, so it serves the CPU and,
// until fused kernels replace it there, CUDA tensors too.
//
// The stabiliser m[t] (the step form's running max) cancels from everything but the eps term of
// the normaliser and the scale of the returned state, so the backward pass is the gradient of the
// stabilised computation with every m held fixed, plus the gradient through m itself: per step
// -eps (dh·h) / den, routed through m[t] = max(logσ(f[t]) + m[t-1], i[t]) to the i or f that won.
#include <ATen/ATen.h>

#include <limits>

#include "checks.h"
#include "ops.h"

namespace xlstm {
namespace {

constexpr const char* kOp = "mlstm_chunkwise";

struct ChunkwiseInputs {
  Tensor q, k, v, i, f;  // (BH, S, D) and (BH, S) in the compute dtype
  Tensor C0, n0, m0;     // (BH, DQK, DV), (BH, DQK), (BH)
  int64_t B, NH, S, DQK, DV, L;
  double scale, eps;
  at::ScalarType dtype, compute;
};

ChunkwiseInputs chunkwise_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i, const Tensor& f,
                                 const Tensor& C0, const Tensor& n0, const Tensor& m0, int64_t chunk_size, double eps) {
  TORCH_CHECK(q.defined() && q.dim() == 4, kOp, ": q must have shape [B, NH, S, DHQK], got ",
              q.defined() ? q.sizes() : at::IntArrayRef{});
  TORCH_CHECK(v.defined() && v.dim() == 4, kOp, ": v must have shape [B, NH, S, DHV], got ",
              v.defined() ? v.sizes() : at::IntArrayRef{});
  check_compute_dtype(q, kOp, true);
  TORCH_CHECK(chunk_size >= 1, kOp, ": chunk_size must be >= 1, got ", chunk_size);
  TORCH_CHECK(eps >= 0.0 && std::isfinite(eps), kOp, ": eps must be finite and >= 0, got ", eps);
  const int64_t B = q.size(0), NH = q.size(1), S = q.size(2), DQK = q.size(3), DV = v.size(3);
  const at::ScalarType dt = q.scalar_type(), st = state_dtype(dt);
  const at::Device dev = q.device();
  check_tensor(q, kOp, "q", {B, NH, S, DQK}, dt, dev, "[B, NH, S, DHQK]");
  check_tensor(k, kOp, "k", {B, NH, S, DQK}, dt, dev, "like q");
  check_tensor(v, kOp, "v", {B, NH, S, DV}, dt, dev, "[B, NH, S, DHV] with q's B, NH, S, dtype of q");
  check_tensor(i, kOp, "i", {B, NH, S}, dt, dev, "[B, NH, S], dtype of q");
  check_tensor(f, kOp, "f", {B, NH, S}, dt, dev, "[B, NH, S], dtype of q");
  check_tensor(C0, kOp, "state C", {B, NH, DQK, DV}, st, dev, "[B, NH, DHQK, DHV], float32 state");
  check_tensor(n0, kOp, "state n", {B, NH, DQK}, st, dev, "[B, NH, DHQK], float32 state");
  check_tensor(m0, kOp, "state m", {B, NH}, st, dev, "[B, NH], float32 state");
  const int64_t BH = B * NH;
  return {q.to(st).reshape({BH, S, DQK}), k.to(st).reshape({BH, S, DQK}), v.to(st).reshape({BH, S, DV}),
          i.to(st).reshape({BH, S}), f.to(st).reshape({BH, S}), C0.reshape({BH, DQK, DV}), n0.reshape({BH, DQK}),
          m0.reshape({BH}), B, NH, S, DQK, DV, std::min(chunk_size, S), 1.0 / std::sqrt(double(DQK)), eps, dt, st};
}

// Everything the forward pass computes inside one chunk, from the state it starts with.
struct Chunk {
  Tensor q, k, v, i, log_f;  // the chunk's slices
  Tensor a, m, W, G, S, P, qC, qn0, num, qn, den, h;
  Tensor WE, GE, C_end, n_end, m_end;
};

Chunk chunk_forward(const ChunkwiseInputs& in, const Tensor& log_f_all, int64_t start, int64_t len, const Tensor& C,
                    const Tensor& n, const Tensor& m) {
  Chunk c;
  c.q = in.q.narrow(1, start, len);
  c.k = in.k.narrow(1, start, len);
  c.v = in.v.narrow(1, start, len);
  c.i = in.i.narrow(1, start, len);
  c.log_f = log_f_all.narrow(1, start, len);
  c.a = c.log_f.cumsum(1);                                   // (BH, len) decay from the chunk start
  const Tensor A = c.a.select(1, len - 1);
  Tensor E = c.a.unsqueeze(2) - c.a.unsqueeze(1) + c.i.unsqueeze(1);  // log weight of token u for query t
  const Tensor causal = at::ones({len, len}, in.q.options().dtype(at::kBool)).tril();
  E.masked_fill_(causal.logical_not(), -std::numeric_limits<double>::infinity());
  const Tensor E_carry = c.a + m.unsqueeze(1);               // log weight of the carried state
  c.m = at::maximum(std::get<0>(E.max(2)), E_carry);         // the step form's running max
  c.W = (E - c.m.unsqueeze(2)).exp();
  c.G = (E_carry - c.m).exp();
  c.S = at::bmm(c.q, c.k.transpose(1, 2)) * in.scale;
  c.P = c.W * c.S;
  c.qC = at::bmm(c.q, C);
  c.qn0 = at::bmm(c.q, n.unsqueeze(2)).squeeze(2);
  c.num = at::bmm(c.P, c.v) + c.G.unsqueeze(2) * c.qC;
  c.qn = c.P.sum(2) + c.G * c.qn0;
  c.den = at::maximum(c.qn.abs(), (-c.m).exp()) + in.eps;
  c.h = c.num / c.den.unsqueeze(2);
  c.m_end = c.m.select(1, len - 1);
  c.WE = (A.unsqueeze(1) - c.a + c.i - c.m_end.unsqueeze(1)).exp();
  c.GE = (A + m - c.m_end).exp();
  const Tensor k_weighted = c.k * (in.scale * c.WE).unsqueeze(2);
  c.C_end = c.GE.view({-1, 1, 1}) * C + at::bmm(k_weighted.transpose(1, 2), c.v);
  c.n_end = c.GE.unsqueeze(1) * n + k_weighted.sum(1);
  return c;
}

Tensor sizes_like(const Tensor& t, at::IntArrayRef sizes, at::ScalarType dtype) { return t.reshape(sizes).to(dtype); }

}  // namespace

Tensors7 mlstm_chunkwise_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i, const Tensor& f,
                                 const Tensor& C0, const Tensor& n0, const Tensor& m0, int64_t chunk_size,
                                 double eps) {
  const ChunkwiseInputs in = chunkwise_inputs(q, k, v, i, f, C0, n0, m0, chunk_size, eps);
  const int64_t BH = in.B * in.NH, chunks = (in.S + in.L - 1) / in.L;
  const Tensor log_f = at::log_sigmoid(in.f);
  Tensor h = at::empty({BH, in.S, in.DV}, in.q.options());
  Tensor m_all = at::empty({BH, in.S}, in.q.options());
  Tensor C_starts = at::empty({BH, chunks, in.DQK, in.DV}, in.q.options());
  Tensor n_starts = at::empty({BH, chunks, in.DQK}, in.q.options());
  Tensor C = in.C0, n = in.n0, m = in.m0;
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t start = c * in.L, len = std::min(in.L, in.S - start);
    C_starts.select(1, c).copy_(C);
    n_starts.select(1, c).copy_(n);
    const Chunk ch = chunk_forward(in, log_f, start, len, C, n, m);
    h.narrow(1, start, len).copy_(ch.h);
    m_all.narrow(1, start, len).copy_(ch.m);
    C = ch.C_end;
    n = ch.n_end;
    m = ch.m_end;
  }
  return {sizes_like(h, {in.B, in.NH, in.S, in.DV}, in.dtype), C.reshape({in.B, in.NH, in.DQK, in.DV}).clone(),
          n.reshape({in.B, in.NH, in.DQK}).clone(), m.reshape({in.B, in.NH}).clone(),
          C_starts.reshape({in.B, in.NH, chunks, in.DQK, in.DV}), n_starts.reshape({in.B, in.NH, chunks, in.DQK}),
          m_all.reshape({in.B, in.NH, in.S})};
}

Tensors8 mlstm_chunkwise_backward(const Tensor& dh, const Tensor& dC_T, const Tensor& dn_T, const Tensor& dm_T,
                                  const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i, const Tensor& f,
                                  const Tensor& C0, const Tensor& n0, const Tensor& m0, const Tensor& C_T,
                                  const Tensor& n_T, const Tensor& C_starts, const Tensor& n_starts,
                                  const Tensor& m_all, int64_t chunk_size, double eps) {
  const char* op = "mlstm_chunkwise_backward";
  const ChunkwiseInputs in = chunkwise_inputs(q, k, v, i, f, C0, n0, m0, chunk_size, eps);
  const int64_t BH = in.B * in.NH, chunks = (in.S + in.L - 1) / in.L;
  const at::Device dev = in.q.device();
  check_tensor(dh, op, "grad h", {in.B, in.NH, in.S, in.DV}, in.dtype, dev, "like h");
  check_tensor(dC_T, op, "grad C", {in.B, in.NH, in.DQK, in.DV}, in.compute, dev, "like state C");
  check_tensor(dn_T, op, "grad n", {in.B, in.NH, in.DQK}, in.compute, dev, "like state n");
  check_tensor(dm_T, op, "grad m", {in.B, in.NH}, in.compute, dev, "like state m");
  check_tensor(C_starts, op, "C_starts", {in.B, in.NH, chunks, in.DQK, in.DV}, in.compute, dev, "from the forward");
  check_tensor(m_all, op, "m_all", {in.B, in.NH, in.S}, in.compute, dev, "from the forward");
  const Tensor log_f = at::log_sigmoid(in.f);
  const Tensor dh_all = dh.to(in.compute).reshape({BH, in.S, in.DV});
  const Tensor Cs = C_starts.reshape({BH, chunks, in.DQK, in.DV}), ns = n_starts.reshape({BH, chunks, in.DQK});
  const Tensor ms = at::cat({in.m0.unsqueeze(1), m_all.reshape({BH, in.S})}, 1);  // m before each step
  Tensor dq = at::empty_like(in.q), dk = at::empty_like(in.k), dv = at::empty_like(in.v);
  Tensor di = at::empty_like(in.i), d_log_f = at::empty_like(in.i), dm_direct = at::empty_like(in.i);
  Tensor dC = dC_T.reshape({BH, in.DQK, in.DV}).to(in.compute), dn = dn_T.reshape({BH, in.DQK}).to(in.compute);
  Tensor dm0 = at::zeros_like(in.m0);
  for (int64_t c = chunks - 1; c >= 0; --c) {
    const int64_t start = c * in.L, len = std::min(in.L, in.S - start);
    const Tensor C_p = Cs.select(1, c), n_p = ns.select(1, c), m_p = ms.select(1, start);  // m before the chunk
    const Chunk ch = chunk_forward(in, log_f, start, len, C_p, n_p, m_p);
    const Tensor dh_c = dh_all.narrow(1, start, len);
    const Tensor dnum = dh_c / ch.den.unsqueeze(2);
    const Tensor dden = -(dh_c * ch.h).sum(2) / ch.den;
    dm_direct.narrow(1, start, len).copy_(in.eps * dden);  // the eps term's dependence on m
    // d|q·n| where it sets the normaliser (half each on a tie, as torch.maximum)
    const Tensor floor = (-ch.m).exp(), abs_qn = ch.qn.abs();
    const Tensor share = at::where(abs_qn > floor, 1.0, at::where(abs_qn == floor, 0.5, 0.0));
    const Tensor dqn = dden * ch.qn.sign() * share;
    const Tensor dP = at::bmm(dnum, ch.v.transpose(1, 2)) + dqn.unsqueeze(2);
    const Tensor dS = dP * ch.W;
    Tensor dq_c = at::bmm(dS, ch.k) * in.scale +
                  ch.G.unsqueeze(2) * (at::bmm(dnum, C_p.transpose(1, 2)) + dqn.unsqueeze(2) * n_p.unsqueeze(1));
    Tensor dk_c = at::bmm(dS.transpose(1, 2), ch.q) * in.scale;
    Tensor dv_c = at::bmm(ch.P.transpose(1, 2), dnum);
    const Tensor dG = (dnum * ch.qC).sum(2) + dqn * ch.qn0;
    // The chunk's end state: C_end = GE C_p + Σ_u WE_u s k_u v_uᵀ (and n likewise).
    const Tensor dC_v = at::bmm(ch.v, dC.transpose(1, 2)) + dn.unsqueeze(1);  // dC v_u + dn, (BH, len, DQK)
    const Tensor ks = ch.k * in.scale;
    const Tensor dWE = (ks * dC_v).sum(2);
    dk_c += (in.scale * ch.WE).unsqueeze(2) * dC_v;
    dv_c += ch.WE.unsqueeze(2) * at::bmm(ks, dC);
    const Tensor dGE = (dC * C_p).sum({1, 2}) + (dn * n_p).sum(1);
    // Log weights: intra E[t,u] = a_t - a_u + i_u, carry a_t + m_p, end A - a_u + i_u and A + m_p.
    const Tensor de = ch.P * dP, de_carry = ch.G * dG, de_end = ch.WE * dWE, de_end_carry = ch.GE * dGE;
    const Tensor de_cols = de.sum(1);
    Tensor da = de.sum(2) - de_cols + de_carry - de_end;
    da.select(1, len - 1).add_(de_end.sum(1) + de_end_carry);
    di.narrow(1, start, len).copy_(de_cols + de_end);
    d_log_f.narrow(1, start, len).copy_(da.flip(1).cumsum(1).flip(1));  // a_t = Σ_{u≤t} logσ(f_u)
    dq.narrow(1, start, len).copy_(dq_c);
    dk.narrow(1, start, len).copy_(dk_c);
    dv.narrow(1, start, len).copy_(dv_c);
    if (c == 0) dm0 += de_carry.sum(1) + de_end_carry;  // m0 is chunk 0's carried m
    dC = ch.GE.view({-1, 1, 1}) * dC + at::bmm(ch.q.transpose(1, 2), ch.G.unsqueeze(2) * dnum);
    dn = ch.GE.unsqueeze(1) * dn + at::bmm((ch.G * dqn).unsqueeze(1), ch.q).squeeze(1);
  }
  // Through m: the returned state is scaled by exp(-m_T); then route every step's dm to the
  // candidate that won its max: i[t] itself, or the forget path back to the last step i won.
  dm_direct.select(1, in.S - 1)
      .add_(dm_T.reshape({BH}).to(in.compute) - (dC_T.reshape({BH, in.DQK, in.DV}) * C_T.reshape({BH, in.DQK, in.DV})).sum({1, 2}) -
            (dn_T.reshape({BH, in.DQK}) * n_T.reshape({BH, in.DQK})).sum(1));
  const Tensor steps = at::arange(in.S, in.q.options().dtype(at::kLong)).expand({BH, in.S});
  const Tensor i_won = in.i > log_f + ms.narrow(1, 0, in.S);
  const Tensor source = std::get<0>(at::where(i_won, steps, -1).cummax(1));  // last i win at or before t
  const Tensor from_i = source >= 0;
  di.scatter_add_(1, source.clamp_min(0), dm_direct * from_i);
  dm0 += (dm_direct * from_i.logical_not()).sum(1);
  // f[w] carries the dm of steps t >= w up to the first i win at or after w (exclusive).
  const Tensor next_win = std::get<0>(at::where(i_won, steps, in.S).flip(1).cummin(1)).flip(1);
  const Tensor running = at::cat({at::zeros({BH, 1}, in.q.options()), dm_direct.cumsum(1)}, 1);  // Σ_{t<j}
  d_log_f += running.gather(1, next_win) - running.narrow(1, 0, in.S);
  const Tensor df = d_log_f * at::sigmoid(-in.f);
  return {sizes_like(dq, q.sizes(), in.dtype), sizes_like(dk, k.sizes(), in.dtype), sizes_like(dv, v.sizes(), in.dtype),
          sizes_like(di, i.sizes(), in.dtype),  sizes_like(df, f.sizes(), in.dtype), dC.reshape(C0.sizes()),
          dn.reshape(n0.sizes()),                dm0.reshape(m0.sizes())};
}

}  // namespace xlstm
