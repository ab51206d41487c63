// mLSTM chunkwise forward and backward on the CPU, fused per (batch, head): at::parallel_for over
// batch·head, the chunks in order (backward: in reverse) inside, the chunk's products as
// register-blocked small GEMMs (cpu/small_gemm.h) on cache-resident tiles, no ATen call per chunk,
// and everything elementwise in plain loops (math in math.h, the
// handling of the stabiliser in host.h).
#include "cpu/vector_math.h"  // first: before anything declares the math functions

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <limits>
#include <vector>

#include "common/numerics.h"
#include "common/registration.h"
#include "cpu/small_gemm.h"
#include "ops/mlstm_chunkwise/host.h"
#include "ops/mlstm_chunkwise/math.h"

namespace xlstm {
namespace {

// The CPU kernels compute in the state dtype throughout: the inputs are converted once.
MlstmChunkwiseInputs cpu_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i, const Tensor& f,
                                const Tensor& C0, const Tensor& n0, const Tensor& m0, int64_t chunk_size, double eps,
                                const char* op) {
  const MlstmChunkwiseSizes z =
      mlstm_chunkwise_check_inputs(q, k, v, i, f, C0, n0, m0, chunk_size, eps, op, at::kCPU, true);
  return mlstm_chunkwise_inputs(z, q, k, v, i, f, C0, n0, m0, eps, z.state);
}

Tensor sizes_like(const Tensor& t, at::IntArrayRef sizes, at::ScalarType dtype) { return t.reshape(sizes).to(dtype); }

// The gates of one chunk (math.h): a_t, b_t = i_t - a_t and mx_t as Split values, and the carried
// state's weight G_t = exp(m_p - mx_t), computed once for every pass that needs it; the chunk's
// end state decays by G of its last step.
template <typename T>
struct ChunkGateScan {
  std::vector<Split<T>> a, b, mx;
  std::vector<T> G;
  Split<T> mx_end{};
  T decay = 0;
  void scan(const T* i, const T* f, int64_t len, T m_p) {
    a.resize(len);
    b.resize(len);
    mx.resize(len);
    G.resize(len);
    Split<T> sum{0, 0}, run{m_p, 0};
    for (int64_t t = 0; t < len; ++t) {
      sum = split_add(sum, Split<T>{mlstm_chunk_log_forget(f[t]), T(0)});
      a[t] = sum;
      b[t] = mlstm_chunk_b(i[t], sum);
      run = split_max(run, b[t]);
      mx[t] = run;
    }
    // A loop of its own: it vectorizes.
    for (int64_t t = 0; t < len; ++t) G[t] = exp_(mlstm_chunk_log_carry(m_p, mx[t]));
    mx_end = mx[len - 1];
    decay = G[len - 1];
  }
  T weight(int64_t u, int64_t t) const { return exp_(mlstm_chunk_log_weight(b[u], mx[t])); }
  T end_weight(int64_t u) const { return exp_(mlstm_chunk_log_weight(b[u], mx_end)); }
  T m(int64_t t) const { return mlstm_chunk_m(a[t], mx[t]); }
};

// One (batch, head) row of the inputs, outputs and saved tensors, and its chunk c's slices: raw
// pointers into contiguous tensors, so that the per-chunk work makes no ATen calls.
struct ChunkRow {
  const MlstmChunkwiseSizes& z;
  int64_t bh;
  int64_t start(int64_t c) const { return c * z.L; }
  int64_t len(int64_t c) const { return std::min(z.L, z.S - c * z.L); }
  template <typename P>
  P* rows(P* base, int64_t c, int64_t width) const { return base + (bh * z.S + start(c)) * width; }
  template <typename P>
  P* chunk_state(P* base, int64_t c, int64_t size) const { return base + (bh * z.chunks + c) * size; }
};

// Per-thread scratch tiles of one chunk, (L x L), (L x DQK), (L x DV) or (DQK x DV) at most.
template <typename T>
struct ChunkScratch {
  std::vector<T> P, num, Gq, kT, kw, dnum, dS, vT, X, Y, CT;
  explicit ChunkScratch(const MlstmChunkwiseSizes& z) {
    const int64_t L = z.L, DQK = z.DQK, DV = z.DV;
    for (auto* tile : {&P, &dS}) tile->resize(L * L);
    for (auto* tile : {&Gq, &kT, &kw, &X, &Y}) tile->resize(L * DQK);
    for (auto* tile : {&num, &dnum, &vT}) tile->resize(L * DV);
    CT.resize(DQK * DV);
  }
};

// P = W∘(s q kᵀ) of one chunk (len x len; kT: scratch for kᵀ).
template <typename T>
void gate_scores(T* P, const T* q, const T* k, int64_t len, int64_t DQK, const ChunkGateScan<T>& g, T scale, T* kT) {
  transpose_into(k, len, DQK, DQK, kT);
  small_gemm<T, false, Triangle::kLowerResult>(len, len, DQK, q, DQK, kT, len, P, len);  // masked below
  for (int64_t t = 0; t < len; ++t) {
    T* row = P + t * len;
    for (int64_t u = 0; u <= t; ++u) row[u] *= scale * g.weight(u, t);
    for (int64_t u = t + 1; u < len; ++u) row[u] = 0;
  }
}

// num = P v + (G∘q) C_p (rows t), and, where qn is given, q·n of each row: Σ_u P[t,u] + G_t q_t·n_p.
template <typename T>
void numerator(const T* P, const T* q, const T* v, const T* C_p, const T* n_p, const ChunkGateScan<T>& g, int64_t len,
               int64_t DQK, int64_t DV, T* Gq, T* num, T* qn = nullptr) {
  for (int64_t t = 0; t < len; ++t) {
    const T G = g.G[t];
    for (int64_t d = 0; d < DQK; ++d) Gq[t * DQK + d] = G * q[t * DQK + d];
    if (qn == nullptr) continue;
    T s = 0, qn0 = 0;
    XLSTM_VECTOR_SUM(s)
    for (int64_t u = 0; u <= t; ++u) s += P[t * len + u];
    XLSTM_VECTOR_SUM(qn0)
    for (int64_t d = 0; d < DQK; ++d) qn0 += q[t * DQK + d] * n_p[d];
    qn[t] = s + G * qn0;
  }
  small_gemm<T, false, Triangle::kLowerA>(len, DV, len, P, len, v, DV, num, DV);
  small_gemm_accumulate(len, DV, DQK, Gq, DQK, C_p, DV, num, DV);
}

template <typename T>
void forward_cpu(const MlstmChunkwiseFwdParams<T, T>& p, const MlstmChunkwiseSizes& z) {
  const int64_t DQK = z.DQK, DV = z.DV, CS = DQK * DV;
  const T scale = p.scale, eps = p.eps;
  const T *q_all = p.q, *k_all = p.k, *v_all = p.v, *i_all = p.i, *f_all = p.f, *C0 = p.C0, *n0 = p.n0, *m0 = p.m0;
  T *h_all = p.h, *C_out = p.C_T, *n_out = p.n_T, *m_out = p.m_T, *C_saved = p.C_starts, *n_saved = p.n_starts;
  T *m_rows = p.m_all, *qn_rows = p.qn_all;
  // scale and eps by value: a reference would be reloaded after every store to a T array.
  at::parallel_for(0, z.bh(), 1, [&, scale, eps](int64_t begin, int64_t end) {
    ChunkScratch<T> w(z);
    ChunkGateScan<T> g;
    for (int64_t bh = begin; bh < end; ++bh) {
      const ChunkRow row{z, bh};
      T *C = C_out + bh * CS, *n = n_out + bh * DQK;  // the running state lives in the outputs
      std::copy_n(C0 + bh * CS, CS, C);
      std::copy_n(n0 + bh * DQK, DQK, n);
      T m_p = m0[bh];
      for (int64_t c = 0; c < z.chunks; ++c) {
        const int64_t len = row.len(c);
        const T *q = row.rows(q_all, c, DQK), *k = row.rows(k_all, c, DQK), *v = row.rows(v_all, c, DV);
        std::copy_n(C, CS, row.chunk_state(C_saved, c, CS));
        std::copy_n(n, DQK, row.chunk_state(n_saved, c, DQK));
        g.scan(row.rows(i_all, c, 1), row.rows(f_all, c, 1), len, m_p);
        gate_scores(w.P.data(), q, k, len, DQK, g, scale, w.kT.data());
        T* qn = row.rows(qn_rows, c, 1);
        numerator(w.P.data(), q, v, C, n, g, len, DQK, DV, w.Gq.data(), w.num.data(), qn);
        const T* nu = w.num.data();
        T *h_c = row.rows(h_all, c, DV), *m_c = row.rows(m_rows, c, 1);
        for (int64_t t = 0; t < len; ++t) {
          m_c[t] = g.m(t);
          const T den = mlstm_denominator(qn[t], m_c[t], eps);
          for (int64_t j = 0; j < DV; ++j) h_c[t * DV + j] = nu[t * DV + j] / den;
        }
        // C_end = GE C + Σ_u (s WE_u k_u) v_uᵀ, n likewise.
        const T decay = g.decay;
        T* kw = w.kw.data();
        for (int64_t d = 0; d < DQK; ++d) n[d] *= decay;
        for (int64_t u = 0; u < len; ++u) {
          const T we = scale * g.end_weight(u);
          for (int64_t d = 0; d < DQK; ++d) {
            kw[u * DQK + d] = we * k[u * DQK + d];
            n[d] += kw[u * DQK + d];
          }
        }
        for (int64_t x = 0; x < CS; ++x) C[x] *= decay;
        small_gemm_accumulate<T, true>(DQK, DV, len, kw, DQK, v, DV, C, DV);
        m_p = g.m(len - 1);
      }
      m_out[bh] = m_p;
    }
  });
}

// Gradients with every m held fixed (the gradient through m is mlstm_chunkwise_finish_gate_grads'): dq, dk, dv, the
// initial state's dC, dn (p.dC0, p.dn0 hold dC_T, dn_T on entry: carried backwards in place) and its
// m's share dm0, per step di, d_log_f and dden. p.h: the forward's h where it is at full precision
// (null for bf16 / fp16 inputs: then recomputed for dh·h).
template <typename T>
void backward_cpu(const MlstmChunkwiseBwdParams<T, T>& p, const MlstmChunkwiseSizes& z) {
  const int64_t S = z.S, DQK = z.DQK, DV = z.DV, L = z.L, CS = DQK * DV;
  const T scale = p.scale, eps = p.eps;
  const T *q_all = p.q, *k_all = p.k, *v_all = p.v, *i_all = p.i, *f_all = p.f, *m0 = p.m0;
  const T *h_all = p.h, *dh_all = p.dh, *C_saved = p.C_starts, *n_saved = p.n_starts;
  const T *m_rows = p.m_all, *qn_rows = p.qn_all;
  T *dq_all = p.dq, *dk_all = p.dk, *dv_all = p.dv_, *dC_all = p.dC0, *dn_all = p.dn0, *dm0_out = p.dm0_carry;
  T *di_all = p.di, *dlf_all = p.d_log_f, *dden_all = p.dden;
  at::parallel_for(0, z.bh(), 1, [&, scale, eps](int64_t begin, int64_t end) {
    ChunkScratch<T> w(z);
    ChunkGateScan<T> g;
    std::vector<T> den(L), dqn(L), de_rows(L), de_cols(L), de_end(L), dG(L), da(L);
    T *P = w.P.data(), *dnp = w.dnum.data(), *dsp = w.dS.data(), *xp = w.X.data(), *yp = w.Y.data();
    for (int64_t bh = begin; bh < end; ++bh) {
      const ChunkRow row{z, bh};
      // Carried backwards, in place: they end as the initial state's.
      T *dC_b = dC_all + bh * CS, *dn_ptr = dn_all + bh * DQK;
      T dm0_b = 0;
      for (int64_t c = z.chunks - 1; c >= 0; --c) {
        const int64_t start = row.start(c), len = row.len(c);
        const T *q = row.rows(q_all, c, DQK), *k = row.rows(k_all, c, DQK), *v = row.rows(v_all, c, DV);
        const T *dhp = row.rows(dh_all, c, DV), *C_p = row.chunk_state(C_saved, c, CS);
        const T* n_p = row.chunk_state(n_saved, c, DQK);
        const T m_p = c == 0 ? m0[bh] : m_rows[bh * S + start - 1];
        g.scan(row.rows(i_all, c, 1), row.rows(f_all, c, 1), len, m_p);
        gate_scores(P, q, k, len, DQK, g, scale, w.kT.data());
        const T* h_rows = h_all != nullptr ? row.rows(h_all, c, DV) : nullptr;
        if (h_rows == nullptr) numerator(P, q, v, C_p, n_p, g, len, DQK, DV, w.Gq.data(), w.num.data());
        // The normaliser: dnum = dh / den, and the gradients reaching den and q·n.
        const T* nu = h_rows != nullptr ? h_rows : w.num.data();
        const T *qn_c = row.rows(qn_rows, c, 1), *m_c = row.rows(m_rows, c, 1);
        T* dden_c = row.rows(dden_all, c, 1);
        for (int64_t t = 0; t < len; ++t) {
          den[t] = mlstm_denominator(qn_c[t], m_c[t], eps);
          T dot = 0;  // dh·h, or dh·num = den dh·h
          XLSTM_VECTOR_SUM(dot)
          for (int64_t j = 0; j < DV; ++j) {
            dot += dhp[t * DV + j] * nu[t * DV + j];
            dnp[t * DV + j] = dhp[t * DV + j] / den[t];
          }
          const MlstmChunkwiseNormaliserGrad<T> ng =
              mlstm_chunkwise_normaliser_backward(h_rows != nullptr ? dot : dot / den[t], qn_c[t], m_c[t], den[t]);
          dden_c[t] = ng.dden;
          dqn[t] = ng.dqn;
        }
        // dP = dnum vᵀ + dqn; de = P∘dP; dS = dP∘W (in place over dP).
        transpose_into(v, len, DV, DV, w.vT.data());
        small_gemm<T, false, Triangle::kLowerResult>(len, len, DV, dnp, DV, w.vT.data(), len, dsp, len);
        std::fill(de_cols.begin(), de_cols.begin() + len, T(0));
        for (int64_t t = 0; t < len; ++t) {
          T rows = 0;
          XLSTM_VECTOR_SUM(rows)
          for (int64_t u = 0; u <= t; ++u) {
            const T dP = dsp[t * len + u] + dqn[t];
            const T de = P[t * len + u] * dP;
            rows += de;
            de_cols[u] += de;
            dsp[t * len + u] = dP * g.weight(u, t);
          }
          for (int64_t u = t + 1; u < len; ++u) dsp[t * len + u] = 0;
          de_rows[t] = rows;
        }
        // X = dnum C_pᵀ + dqn n_pᵀ (= the carried state's share of dq before G); dG_t = q_t·X_t.
        transpose_into(C_p, DQK, DV, DV, w.CT.data());
        small_gemm(len, DQK, DV, dnp, DV, w.CT.data(), DQK, xp, DQK);
        for (int64_t t = 0; t < len; ++t) {
          T s = 0;
          XLSTM_VECTOR_SUM(s)
          for (int64_t d = 0; d < DQK; ++d) {
            xp[t * DQK + d] += dqn[t] * n_p[d];
            s += q[t * DQK + d] * xp[t * DQK + d];
          }
          dG[t] = s;
        }
        T *dqp = row.rows(dq_all, c, DQK), *dkp = row.rows(dk_all, c, DQK), *dvp = row.rows(dv_all, c, DV);
        small_gemm<T, false, Triangle::kLowerA>(len, DQK, len, dsp, len, k, DQK, dqp, DQK);
        for (int64_t t = 0; t < len; ++t) {
          const T G = g.G[t];
          for (int64_t d = 0; d < DQK; ++d) dqp[t * DQK + d] = scale * dqp[t * DQK + d] + G * xp[t * DQK + d];
        }
        // The chunk's end state: Y_u = dC v_u + dn; dk = s dSᵀ q + s WE Y; dv = Pᵀ dnum + (s WE k) dC.
        transpose_into(dC_b, DQK, DV, DV, w.CT.data());
        small_gemm(len, DQK, DV, v, DV, w.CT.data(), DQK, yp, DQK);
        small_gemm<T, true, Triangle::kUpperA>(len, DQK, len, dsp, len, q, DQK, dkp, DQK);
        T* kwp = w.kw.data();
        T de_end_total = 0;
        for (int64_t u = 0; u < len; ++u) {
          const T we = g.end_weight(u);
          T dwe = 0;
          XLSTM_VECTOR_SUM(dwe)
          for (int64_t d = 0; d < DQK; ++d) {
            yp[u * DQK + d] += dn_ptr[d];
            dkp[u * DQK + d] = scale * (dkp[u * DQK + d] + we * yp[u * DQK + d]);
            dwe += k[u * DQK + d] * yp[u * DQK + d];
            kwp[u * DQK + d] = scale * we * k[u * DQK + d];
          }
          de_end[u] = we * scale * dwe;
          de_end_total += de_end[u];
        }
        small_gemm<T, true, Triangle::kUpperA>(len, DV, len, P, len, dnp, DV, dvp, DV);
        small_gemm_accumulate(len, DV, DQK, kwp, DQK, dC_b, DV, dvp, DV);
        // Gate gradients: log weights E[t,u] = a_t - a_u + i_u, carry a_t + m_p, end A - a_u + i_u, A + m_p.
        const T decay = g.decay;
        T dGE = 0;
        XLSTM_VECTOR_SUM(dGE)
        for (int64_t x = 0; x < CS; ++x) dGE += dC_b[x] * C_p[x];
        XLSTM_VECTOR_SUM(dGE)
        for (int64_t d = 0; d < DQK; ++d) dGE += dn_ptr[d] * n_p[d];
        const T de_end_carry = decay * dGE;
        T de_carry_total = 0;
        T* di_c = row.rows(di_all, c, 1);
        for (int64_t t = 0; t < len; ++t) {
          const T de_carry = g.G[t] * dG[t];
          de_carry_total += de_carry;
          di_c[t] = de_cols[t] + de_end[t];
          da[t] = de_rows[t] - de_cols[t] + de_carry - de_end[t];
        }
        da[len - 1] += de_end_total + de_end_carry;
        T* dlf = row.rows(dlf_all, c, 1);
        T suffix = 0;
        for (int64_t t = len - 1; t >= 0; --t) dlf[t] = suffix += da[t];  // a_t = Σ_{u≤t} logσ(f_u)
        if (c == 0) dm0_b = de_carry_total + de_end_carry;  // m0 is chunk 0's carried m
        // Into the previous chunk: dC = GE dC + qᵀ (G∘dnum), dn = GE dn + Σ_t G_t dqn_t q_t.
        for (int64_t t = 0; t < len; ++t) {
          const T G = g.G[t];
          for (int64_t j = 0; j < DV; ++j) dnp[t * DV + j] *= G;
          dqn[t] *= G;
        }
        for (int64_t d = 0; d < DQK; ++d) dn_ptr[d] *= decay;
        for (int64_t t = 0; t < len; ++t)
          for (int64_t d = 0; d < DQK; ++d) dn_ptr[d] += dqn[t] * q[t * DQK + d];
        for (int64_t x = 0; x < CS; ++x) dC_b[x] *= decay;
        small_gemm_accumulate<T, true>(DQK, DV, len, q, DQK, dnp, DV, dC_b, DV);
      }
      dm0_out[bh] = dm0_b;
    }
  });
}

}  // namespace

Tensors8 mlstm_chunkwise_forward_cpu(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i,
                                     const Tensor& f, const Tensor& C0, const Tensor& n0, const Tensor& m0,
                                     int64_t chunk_size, double eps) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;  // the products below are the op's own
  const MlstmChunkwiseInputs in = cpu_inputs(q, k, v, i, f, C0, n0, m0, chunk_size, eps, "mlstm_chunkwise");
  const MlstmChunkwiseSizes& z = in.z;
  const int64_t BH = z.bh();
  const auto o = in.q.options();
  Tensor h = at::empty({BH, z.S, z.DV}, o), C_T = at::empty({BH, z.DQK, z.DV}, o), n_T = at::empty({BH, z.DQK}, o);
  Tensor m_T = at::empty({BH}, o), m_all = at::empty({BH, z.S}, o), qn_all = at::empty({BH, z.S}, o);
  Tensor C_starts = at::empty({BH, z.chunks, z.DQK, z.DV}, o), n_starts = at::empty({BH, z.chunks, z.DQK}, o);
  AT_DISPATCH_FLOATING_TYPES(z.state, "mlstm_chunkwise_forward_cpu", [&] {
    MlstmChunkwiseFwdParams<scalar_t, scalar_t> p{};
    mlstm_chunkwise_fill_params(p, in, C_starts, n_starts, m_all);
    p.h = h.data_ptr<scalar_t>();
    p.C_T = C_T.data_ptr<scalar_t>();
    p.n_T = n_T.data_ptr<scalar_t>();
    p.m_T = m_T.data_ptr<scalar_t>();
    p.qn_all = qn_all.data_ptr<scalar_t>();
    forward_cpu(p, z);
  });
  return {h.reshape({z.B, z.NH, z.S, z.DV}).to(z.dtype), C_T.reshape({z.B, z.NH, z.DQK, z.DV}),
          n_T.reshape({z.B, z.NH, z.DQK}),                 m_T.reshape({z.B, z.NH}),
          C_starts.reshape({z.B, z.NH, z.chunks, z.DQK, z.DV}), n_starts.reshape({z.B, z.NH, z.chunks, z.DQK}),
          m_all.reshape({z.B, z.NH, z.S}),                 qn_all.reshape({z.B, z.NH, z.S})};
}

Tensors8 mlstm_chunkwise_backward_cpu(const Tensor& dh, const Tensor& dC_T, const Tensor& dn_T, const Tensor& dm_T,
                                      const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i,
                                      const Tensor& f, const Tensor& C0, const Tensor& n0, const Tensor& m0,
                                      const Tensor& h, const Tensor& C_T, const Tensor& n_T, const Tensor& C_starts,
                                      const Tensor& n_starts, const Tensor& m_all, const Tensor& qn_all,
                                      int64_t chunk_size, double eps) {
  const char* op = "mlstm_chunkwise_backward";
  const at::AutoDispatchBelowADInplaceOrView below_autograd;
  const MlstmChunkwiseInputs in = cpu_inputs(q, k, v, i, f, C0, n0, m0, chunk_size, eps, op);
  const MlstmChunkwiseSizes& z = in.z;
  mlstm_chunkwise_check_backward_inputs(z, q.device(), dh, dC_T, dn_T, dm_T, h, C_T, n_T, C_starts, n_starts, m_all,
                                        qn_all, op);
  const int64_t BH = z.bh();
  const auto flat = [&](const Tensor& t, at::IntArrayRef sizes) { return t.to(z.state).reshape(sizes).contiguous(); };
  const Tensor h_full = z.dtype == z.state ? flat(h, {BH, z.S, z.DV}) : Tensor();
  const Tensor dh_s = flat(dh, {BH, z.S, z.DV}), Cs = flat(C_starts, {BH, z.chunks, z.DQK, z.DV});
  const Tensor ns = flat(n_starts, {BH, z.chunks, z.DQK}), ms = flat(m_all, {BH, z.S}), qns = flat(qn_all, {BH, z.S});
  Tensor dq = at::empty_like(in.q), dk = at::empty_like(in.k), dv = at::empty_like(in.v);
  Tensor dC = flat(dC_T, {BH, z.DQK, z.DV}).clone(), dn = flat(dn_T, {BH, z.DQK}).clone();
  const auto o = in.q.options();  // (BH) and (BH, S), as mlstm_chunkwise_finish_gate_grads takes them
  Tensor dm0 = at::empty({BH}, o), di = at::empty({BH, z.S}, o), d_log_f = at::empty({BH, z.S}, o);
  Tensor dden = at::empty({BH, z.S}, o);
  AT_DISPATCH_FLOATING_TYPES(z.state, "mlstm_chunkwise_backward_cpu", [&] {
    MlstmChunkwiseBwdParams<scalar_t, scalar_t> p{};
    mlstm_chunkwise_fill_params(p, in, Cs, ns, ms);
    p.h = h_full.defined() ? h_full.data_ptr<scalar_t>() : nullptr;
    p.dh = dh_s.data_ptr<scalar_t>();
    p.qn_all = qns.data_ptr<scalar_t>();
    p.dq = dq.data_ptr<scalar_t>();
    p.dk = dk.data_ptr<scalar_t>();
    p.dv_ = dv.data_ptr<scalar_t>();
    p.dC0 = dC.data_ptr<scalar_t>();
    p.dn0 = dn.data_ptr<scalar_t>();
    p.dm0_carry = dm0.data_ptr<scalar_t>();
    p.di = di.data_ptr<scalar_t>();
    p.d_log_f = d_log_f.data_ptr<scalar_t>();
    p.dden = dden.data_ptr<scalar_t>();
    backward_cpu(p, z);
  });
  auto [di_out, df, dm0_out] =
      mlstm_chunkwise_finish_gate_grads(z, di, d_log_f, dm0, dden, i, f, m0, m_all, dC_T, C_T, dn_T, n_T, dm_T, eps);
  return {sizes_like(dq, q.sizes(), z.dtype), sizes_like(dk, k.sizes(), z.dtype), sizes_like(dv, v.sizes(), z.dtype),
          di_out, df, dC.reshape(C0.sizes()), dn.reshape(n0.sizes()), dm0_out};
}

}  // namespace xlstm

XLSTM_CPU_KERNELS(m) {
  m.impl("mlstm_chunkwise_forward", &xlstm::mlstm_chunkwise_forward_cpu);
  m.impl("mlstm_chunkwise_backward", &xlstm::mlstm_chunkwise_backward_cpu);
}
