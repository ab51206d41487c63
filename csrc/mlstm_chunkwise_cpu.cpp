// mLSTM chunkwise forward and backward on the CPU as ATen operations: batched over (batch, head),
// looped over chunks, the products inside a chunk as batched GEMMs (math in mlstm_chunkwise.h, the
// handling of the stabiliser in mlstm_chunkwise_binding.h).
#include <ATen/ATen.h>

#include <limits>

#include "mlstm_chunkwise_binding.h"
#include "ops.h"

namespace xlstm {
namespace {

struct ChunkwiseInputs {
  Tensor q, k, v, i, f;  // (BH, S, D) and (BH, S) in the state dtype
  Tensor C0, n0, m0;     // (BH, DQK, DV), (BH, DQK), (BH)
  ChunkwiseSizes z;
  double scale, eps;
};

ChunkwiseInputs chunkwise_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i, const Tensor& f,
                                 const Tensor& C0, const Tensor& n0, const Tensor& m0, int64_t chunk_size, double eps,
                                 const char* op) {
  TORCH_CHECK(q.defined() && q.device().is_cpu(), op, ": expected CPU tensors, q is on ",
              q.defined() ? q.device() : at::Device(at::kCPU));
  const ChunkwiseSizes z = check_chunkwise_inputs(q, k, v, i, f, C0, n0, m0, chunk_size, eps, op, true);
  const int64_t BH = z.bh();
  const at::ScalarType st = z.state;
  return {q.to(st).reshape({BH, z.S, z.DQK}), k.to(st).reshape({BH, z.S, z.DQK}), v.to(st).reshape({BH, z.S, z.DV}),
          i.to(st).reshape({BH, z.S}), f.to(st).reshape({BH, z.S}), C0.reshape({BH, z.DQK, z.DV}), n0.reshape({BH, z.DQK}),
          m0.reshape({BH}), z, 1.0 / std::sqrt(double(z.DQK)), eps};
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

Tensors8 mlstm_chunkwise_forward_cpu(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i,
                                     const Tensor& f, const Tensor& C0, const Tensor& n0, const Tensor& m0,
                                     int64_t chunk_size, double eps) {
  const ChunkwiseInputs in = chunkwise_inputs(q, k, v, i, f, C0, n0, m0, chunk_size, eps, "mlstm_chunkwise");
  const ChunkwiseSizes& z = in.z;
  const int64_t BH = z.bh();
  const Tensor log_f = at::log_sigmoid(in.f);
  Tensor h = at::empty({BH, z.S, z.DV}, in.q.options());
  Tensor m_all = at::empty({BH, z.S}, in.q.options()), qn_all = at::empty({BH, z.S}, in.q.options());
  Tensor C_starts = at::empty({BH, z.chunks, z.DQK, z.DV}, in.q.options());
  Tensor n_starts = at::empty({BH, z.chunks, z.DQK}, in.q.options());
  Tensor C = in.C0, n = in.n0, m = in.m0;
  for (int64_t c = 0; c < z.chunks; ++c) {
    const int64_t start = c * z.L, len = std::min(z.L, z.S - start);
    C_starts.select(1, c).copy_(C);
    n_starts.select(1, c).copy_(n);
    const Chunk ch = chunk_forward(in, log_f, start, len, C, n, m);
    h.narrow(1, start, len).copy_(ch.h);
    m_all.narrow(1, start, len).copy_(ch.m);
    qn_all.narrow(1, start, len).copy_(ch.qn);
    C = ch.C_end;
    n = ch.n_end;
    m = ch.m_end;
  }
  return {sizes_like(h, {z.B, z.NH, z.S, z.DV}, z.dtype), C.reshape({z.B, z.NH, z.DQK, z.DV}).clone(),
          n.reshape({z.B, z.NH, z.DQK}).clone(), m.reshape({z.B, z.NH}).clone(),
          C_starts.reshape({z.B, z.NH, z.chunks, z.DQK, z.DV}), n_starts.reshape({z.B, z.NH, z.chunks, z.DQK}),
          m_all.reshape({z.B, z.NH, z.S}), qn_all.reshape({z.B, z.NH, z.S})};
}

Tensors8 mlstm_chunkwise_backward_cpu(const Tensor& dh, const Tensor& dC_T, const Tensor& dn_T, const Tensor& dm_T,
                                      const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i,
                                      const Tensor& f, const Tensor& C0, const Tensor& n0, const Tensor& m0,
                                      const Tensor& h, const Tensor& C_T, const Tensor& n_T, const Tensor& C_starts,
                                      const Tensor& n_starts, const Tensor& m_all, const Tensor& qn_all,
                                      int64_t chunk_size, double eps) {
  const char* op = "mlstm_chunkwise_backward";
  const ChunkwiseInputs in = chunkwise_inputs(q, k, v, i, f, C0, n0, m0, chunk_size, eps, op);
  const ChunkwiseSizes& z = in.z;
  check_chunkwise_backward_inputs(z, q.device(), dh, dC_T, dn_T, dm_T, h, C_T, n_T, C_starts, n_starts, m_all, qn_all,
                                  op);
  const int64_t BH = z.bh();
  const Tensor log_f = at::log_sigmoid(in.f);
  const Tensor dh_all = dh.to(z.state).reshape({BH, z.S, z.DV});
  const Tensor Cs = C_starts.reshape({BH, z.chunks, z.DQK, z.DV}), ns = n_starts.reshape({BH, z.chunks, z.DQK});
  const Tensor ms = at::cat({in.m0.unsqueeze(1), m_all.reshape({BH, z.S})}, 1);  // m before each step
  Tensor dq = at::empty_like(in.q), dk = at::empty_like(in.k), dv = at::empty_like(in.v);
  Tensor di = at::empty_like(in.i), d_log_f = at::empty_like(in.i), dden = at::empty_like(in.i);
  Tensor dC = dC_T.reshape({BH, z.DQK, z.DV}), dn = dn_T.reshape({BH, z.DQK});
  Tensor dm0 = at::zeros_like(in.m0);
  for (int64_t c = z.chunks - 1; c >= 0; --c) {
    const int64_t start = c * z.L, len = std::min(z.L, z.S - start);
    const Tensor C_p = Cs.select(1, c), n_p = ns.select(1, c), m_p = ms.select(1, start);  // m before the chunk
    const Chunk ch = chunk_forward(in, log_f, start, len, C_p, n_p, m_p);
    const Tensor dh_c = dh_all.narrow(1, start, len);
    const NormaliserGrads norm = normaliser_backward((dh_c * ch.h).sum(2), ch.qn, ch.m, in.eps);
    dden.narrow(1, start, len).copy_(norm.dden);
    const Tensor dnum = dh_c / norm.den.unsqueeze(2);
    const Tensor& dqn = norm.dqn;
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
  auto [di_out, df, dm0_out] = finish_gate_grads(z, di, d_log_f, dm0, dden, i, f, m0, m_all, dC_T, C_T, dn_T, n_T,
                                                 dm_T, eps);
  return {sizes_like(dq, q.sizes(), z.dtype), sizes_like(dk, k.sizes(), z.dtype), sizes_like(dv, v.sizes(), z.dtype),
          di_out, df, dC.reshape(C0.sizes()), dn.reshape(n0.sizes()), dm0_out};
}

}  // namespace xlstm
