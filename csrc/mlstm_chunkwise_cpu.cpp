// mLSTM chunkwise forward and backward on the CPU, fused per (batch, head): at::parallel_for over
// batch·head, the chunks in order (backward: in reverse) inside, the chunk's products as BLAS calls
// on cache-resident tiles and everything elementwise in plain loops (math in mlstm_chunkwise.h, the
// handling of the stabiliser in mlstm_chunkwise_binding.h).
#include "cpu_vector_math.h"  // first: before anything declares the math functions

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <limits>
#include <vector>

#include "mlstm_chunkwise.h"
#include "mlstm_chunkwise_binding.h"
#include "numerics.h"
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
  const ChunkwiseSizes z = check_chunkwise_inputs(q, k, v, i, f, C0, n0, m0, chunk_size, eps, op, at::kCPU, true);
  const int64_t BH = z.bh();
  const at::ScalarType st = z.state;
  const auto flat = [&](const Tensor& t, at::IntArrayRef sizes) { return t.to(st).reshape(sizes).contiguous(); };
  return {flat(q, {BH, z.S, z.DQK}), flat(k, {BH, z.S, z.DQK}), flat(v, {BH, z.S, z.DV}), flat(i, {BH, z.S}),
          flat(f, {BH, z.S}),        flat(C0, {BH, z.DQK, z.DV}), flat(n0, {BH, z.DQK}), flat(m0, {BH}),
          z, 1.0 / std::sqrt(double(z.DQK)), eps};
}

Tensor sizes_like(const Tensor& t, at::IntArrayRef sizes, at::ScalarType dtype) { return t.reshape(sizes).to(dtype); }

// Per-thread scratch: contiguous (rows x cols) matrices over reusable storage, so that every
// product runs on dense operands whatever the chunk's length.
template <typename T>
class Scratch {
 public:
  explicit Scratch(const at::TensorOptions& options) : options_(options) {}
  Tensor matrix(int slot, int64_t rows, int64_t cols) {
    if (slot >= static_cast<int>(storage_.size())) storage_.resize(slot + 1);
    std::vector<T>& s = storage_[slot];
    if (static_cast<int64_t>(s.size()) < rows * cols) s.resize(rows * cols);
    return at::from_blob(s.data(), {rows, cols}, options_);
  }

 private:
  at::TensorOptions options_;
  std::vector<std::vector<T>> storage_;
};

// The gates of one chunk (mlstm_chunkwise.h): a_t, b_t = i_t - a_t, mx_t.
template <typename T>
struct ChunkGates {
  std::vector<T> a, b, mx;
  T mx_end = 0;
  void scan(const T* i, const T* f, int64_t len, T m_p) {
    a.resize(len);
    b.resize(len);
    mx.resize(len);
    T sum = 0, run = -std::numeric_limits<T>::infinity();
    for (int64_t t = 0; t < len; ++t) {
      sum += log_sigmoid(f[t]);
      a[t] = sum;
      b[t] = i[t] - sum;
      run = max_(run, b[t]);
      mx[t] = max_(run, m_p);
    }
    mx_end = mx[len - 1];
  }
};

// P = W∘(s q kᵀ) of one chunk, in place over the product q kᵀ.
template <typename T>
void gate_scores(T* P, int64_t len, const ChunkGates<T>& g, T scale) {
  for (int64_t t = 0; t < len; ++t) {
    T* row = P + t * len;
    for (int64_t u = 0; u <= t; ++u) row[u] *= scale * exp_(g.b[u] - g.mx[t]);
    for (int64_t u = t + 1; u < len; ++u) row[u] = 0;
  }
}

// num = P v + (G∘q) C_p (rows t), and, where qn is given, q·n of each row: Σ_u P[t,u] + G_t q_t·n_p.
template <typename T>
void numerator(Scratch<T>& w, const Tensor& P, const Tensor& q_c, const Tensor& v_c, const Tensor& C_p, const T* n_p,
               const ChunkGates<T>& g, T m_p, Tensor& num, T* qn = nullptr) {
  const int64_t len = P.size(0), DQK = q_c.size(1);
  Tensor Gq = w.matrix(4, len, DQK);
  const T *q = q_c.data_ptr<T>(), *p = P.data_ptr<T>();
  T* gq = Gq.data_ptr<T>();
  for (int64_t t = 0; t < len; ++t) {
    const T G = exp_(m_p - g.mx[t]);
    for (int64_t d = 0; d < DQK; ++d) gq[t * DQK + d] = G * q[t * DQK + d];
    if (qn == nullptr) continue;
    T s = 0, qn0 = 0;
    for (int64_t u = 0; u <= t; ++u) s += p[t * len + u];
    for (int64_t d = 0; d < DQK; ++d) qn0 += q[t * DQK + d] * n_p[d];
    qn[t] = s + G * qn0;
  }
  at::mm_out(num, P, v_c);
  num.addmm_(Gq, C_p);
}

template <typename T>
void forward_cpu(const ChunkwiseInputs& in, Tensor& h, Tensor& C_T, Tensor& n_T, Tensor& m_T, Tensor& C_starts,
                 Tensor& n_starts, Tensor& m_all, Tensor& qn_all) {
  const ChunkwiseSizes& z = in.z;
  const int64_t S = z.S, DQK = z.DQK, DV = z.DV, L = z.L;
  const T scale = T(in.scale), eps = T(in.eps);
  at::parallel_for(0, z.bh(), 1, [&](int64_t begin, int64_t end) {
    Scratch<T> w(in.q.options());
    ChunkGates<T> g;
    for (int64_t bh = begin; bh < end; ++bh) {
      Tensor C = C_T[bh], n = n_T[bh];  // the running state lives in the outputs
      C.copy_(in.C0[bh]);
      n.copy_(in.n0[bh]);
      T m_p = in.m0.data_ptr<T>()[bh];
      const T *i = in.i[bh].data_ptr<T>(), *f = in.f[bh].data_ptr<T>();
      for (int64_t c = 0; c < z.chunks; ++c) {
        const int64_t start = c * L, len = std::min(L, S - start);
        const Tensor q_c = in.q[bh].narrow(0, start, len), k_c = in.k[bh].narrow(0, start, len);
        const Tensor v_c = in.v[bh].narrow(0, start, len);
        C_starts[bh][c].copy_(C);
        n_starts[bh][c].copy_(n);
        g.scan(i + start, f + start, len, m_p);
        Tensor P = w.matrix(0, len, len), num = w.matrix(1, len, DV);
        at::mm_out(P, q_c, k_c.t());
        gate_scores(P.data_ptr<T>(), len, g, scale);
        T* qn = qn_all[bh].data_ptr<T>() + start;
        T* n_ptr = n.data_ptr<T>();
        numerator(w, P, q_c, v_c, C, n_ptr, g, m_p, num, qn);
        const T* nu = num.data_ptr<T>();
        T* h_c = h[bh].data_ptr<T>() + start * DV;
        T* m_c = m_all[bh].data_ptr<T>() + start;
        for (int64_t t = 0; t < len; ++t) {
          m_c[t] = g.a[t] + g.mx[t];
          const T den = mlstm_denominator(qn[t], m_c[t], eps);
          for (int64_t j = 0; j < DV; ++j) h_c[t * DV + j] = nu[t * DV + j] / den;
        }
        // C_end = GE C + Σ_u (s WE_u k_u) v_uᵀ, n likewise.
        const T decay = exp_(m_p - g.mx_end);
        Tensor kw = w.matrix(2, len, DQK);
        T* kwp = kw.data_ptr<T>();
        const T* kp = k_c.data_ptr<T>();
        for (int64_t d = 0; d < DQK; ++d) n_ptr[d] *= decay;
        for (int64_t u = 0; u < len; ++u) {
          const T we = scale * exp_(g.b[u] - g.mx_end);
          for (int64_t d = 0; d < DQK; ++d) {
            kwp[u * DQK + d] = we * kp[u * DQK + d];
            n_ptr[d] += kwp[u * DQK + d];
          }
        }
        C.addmm_(kw.t(), v_c, decay);
        m_p = g.a[len - 1] + g.mx_end;
      }
      m_T.data_ptr<T>()[bh] = m_p;
    }
  });
}

// Gradients with every m held fixed (the gradient through m is finish_gate_grads'): dq, dk, dv, the
// initial state's dC, dn and its m's share dm0, per step di, d_log_f and dden. h_full: the forward's
// h where it is at full precision (undefined for bf16 / fp16 inputs: then recomputed for dh·h).
template <typename T>
void backward_cpu(const ChunkwiseInputs& in, const Tensor& h_full, const Tensor& dh, const Tensor& C_starts,
                  const Tensor& n_starts,
                  const Tensor& m_all, const Tensor& qn_all, Tensor& dq, Tensor& dk, Tensor& dv, Tensor& dC,
                  Tensor& dn, Tensor& dm0, Tensor& di, Tensor& d_log_f, Tensor& dden) {
  const ChunkwiseSizes& z = in.z;
  const int64_t S = z.S, DQK = z.DQK, DV = z.DV, L = z.L;
  const T scale = T(in.scale), eps = T(in.eps);
  at::parallel_for(0, z.bh(), 1, [&](int64_t begin, int64_t end) {
    Scratch<T> w(in.q.options());
    ChunkGates<T> g;
    std::vector<T> den(L), dqn(L), de_rows(L), de_cols(L), de_end(L), dG(L), da(L);
    for (int64_t bh = begin; bh < end; ++bh) {
      Tensor dC_b = dC[bh], dn_b = dn[bh];  // carried backwards, in place: ends as the initial state's
      T* dn_ptr = dn_b.data_ptr<T>();
      const T *i = in.i[bh].data_ptr<T>(), *f = in.f[bh].data_ptr<T>();
      const T *m_row = m_all[bh].data_ptr<T>(), *qn_row = qn_all[bh].data_ptr<T>();
      T dm0_b = 0;
      for (int64_t c = z.chunks - 1; c >= 0; --c) {
        const int64_t start = c * L, len = std::min(L, S - start);
        const Tensor q_c = in.q[bh].narrow(0, start, len), k_c = in.k[bh].narrow(0, start, len);
        const Tensor v_c = in.v[bh].narrow(0, start, len), dh_c = dh[bh].narrow(0, start, len);
        const Tensor C_p = C_starts[bh][c];
        const T* n_p = n_starts[bh][c].data_ptr<T>();
        const T m_p = c == 0 ? in.m0.data_ptr<T>()[bh] : m_row[start - 1];
        g.scan(i + start, f + start, len, m_p);
        Tensor P = w.matrix(0, len, len), num = w.matrix(1, len, DV);
        at::mm_out(P, q_c, k_c.t());
        gate_scores(P.data_ptr<T>(), len, g, scale);
        const T* h_rows = h_full.defined() ? h_full[bh].data_ptr<T>() + start * DV : nullptr;
        if (h_rows == nullptr) numerator(w, P, q_c, v_c, C_p, n_p, g, m_p, num);  // q·n is saved
        // The normaliser: dnum = dh / den, and the gradients reaching den and q·n.
        Tensor dnum = w.matrix(3, len, DV);
        T* dnp = dnum.data_ptr<T>();
        const T *dhp = dh_c.data_ptr<T>(), *nu = h_rows != nullptr ? h_rows : num.data_ptr<T>();
        for (int64_t t = 0; t < len; ++t) {
          const T qn = qn_row[start + t], m = m_row[start + t];
          den[t] = mlstm_denominator(qn, m, eps);
          T dot = 0;  // dh·h, or dh·num = den dh·h
          for (int64_t j = 0; j < DV; ++j) {
            dot += dhp[t * DV + j] * nu[t * DV + j];
            dnp[t * DV + j] = dhp[t * DV + j] / den[t];
          }
          const NormaliserGrad<T> ng =
              chunkwise_normaliser_backward(h_rows != nullptr ? dot : dot / den[t], qn, m, den[t]);
          dden.data_ptr<T>()[bh * S + start + t] = ng.dden;
          dqn[t] = ng.dqn;
        }
        // dP = dnum vᵀ + dqn; de = P∘dP; dS = dP∘W (in place over dP).
        Tensor dS = w.matrix(5, len, len);
        at::mm_out(dS, dnum, v_c.t());
        T* dsp = dS.data_ptr<T>();
        const T* pp = P.data_ptr<T>();
        std::fill(de_cols.begin(), de_cols.begin() + len, T(0));
        for (int64_t t = 0; t < len; ++t) {
          T rows = 0;
          for (int64_t u = 0; u <= t; ++u) {
            const T dP = dsp[t * len + u] + dqn[t];
            const T de = pp[t * len + u] * dP;
            rows += de;
            de_cols[u] += de;
            dsp[t * len + u] = dP * exp_(g.b[u] - g.mx[t]);
          }
          for (int64_t u = t + 1; u < len; ++u) dsp[t * len + u] = 0;
          de_rows[t] = rows;
        }
        // X = dnum C_pᵀ + dqn n_pᵀ (= the carried state's share of dq before G); dG_t = q_t·X_t.
        Tensor X = w.matrix(6, len, DQK), Y = w.matrix(7, len, DQK);
        at::mm_out(X, dnum, C_p.t());
        T *xp = X.data_ptr<T>(), *yp = Y.data_ptr<T>();
        const T *qp = q_c.data_ptr<T>(), *kp = k_c.data_ptr<T>();
        for (int64_t t = 0; t < len; ++t) {
          T s = 0;
          for (int64_t d = 0; d < DQK; ++d) {
            xp[t * DQK + d] += dqn[t] * n_p[d];
            s += qp[t * DQK + d] * xp[t * DQK + d];
          }
          dG[t] = s;
        }
        Tensor dq_c = dq[bh].narrow(0, start, len), dk_c = dk[bh].narrow(0, start, len);
        Tensor dv_c = dv[bh].narrow(0, start, len);
        at::mm_out(dq_c, dS, k_c);
        T* dqp = dq_c.data_ptr<T>();
        for (int64_t t = 0; t < len; ++t) {
          const T G = exp_(m_p - g.mx[t]);
          for (int64_t d = 0; d < DQK; ++d) dqp[t * DQK + d] = scale * dqp[t * DQK + d] + G * xp[t * DQK + d];
        }
        // The chunk's end state: Y_u = dC v_u + dn; dk = s dSᵀ q + s WE Y; dv = Pᵀ dnum + (s WE k) dC.
        at::mm_out(Y, v_c, dC_b.t());
        at::mm_out(dk_c, dS.t(), q_c);
        T* dkp = dk_c.data_ptr<T>();
        Tensor kw = w.matrix(2, len, DQK);
        T* kwp = kw.data_ptr<T>();
        T de_end_total = 0;
        for (int64_t u = 0; u < len; ++u) {
          const T we = exp_(g.b[u] - g.mx_end);
          T dwe = 0;
          for (int64_t d = 0; d < DQK; ++d) {
            yp[u * DQK + d] += dn_ptr[d];
            dkp[u * DQK + d] = scale * (dkp[u * DQK + d] + we * yp[u * DQK + d]);
            dwe += kp[u * DQK + d] * yp[u * DQK + d];
            kwp[u * DQK + d] = scale * we * kp[u * DQK + d];
          }
          de_end[u] = we * scale * dwe;
          de_end_total += de_end[u];
        }
        at::mm_out(dv_c, P.t(), dnum);
        dv_c.addmm_(kw, dC_b);
        // Gate gradients: log weights E[t,u] = a_t - a_u + i_u, carry a_t + m_p, end A - a_u + i_u, A + m_p.
        const T decay = exp_(m_p - g.mx_end);
        T dGE = 0;
        const T *cp = C_p.data_ptr<T>(), *dcp = dC_b.data_ptr<T>();
        for (int64_t x = 0; x < DQK * DV; ++x) dGE += dcp[x] * cp[x];
        for (int64_t d = 0; d < DQK; ++d) dGE += dn_ptr[d] * n_p[d];
        const T de_end_carry = decay * dGE;
        T de_carry_total = 0;
        T* di_c = di.data_ptr<T>() + bh * S + start;
        for (int64_t t = 0; t < len; ++t) {
          const T de_carry = exp_(m_p - g.mx[t]) * dG[t];
          de_carry_total += de_carry;
          di_c[t] = de_cols[t] + de_end[t];
          da[t] = de_rows[t] - de_cols[t] + de_carry - de_end[t];
        }
        da[len - 1] += de_end_total + de_end_carry;
        T* dlf = d_log_f.data_ptr<T>() + bh * S + start;
        T suffix = 0;
        for (int64_t t = len - 1; t >= 0; --t) dlf[t] = suffix += da[t];  // a_t = Σ_{u≤t} logσ(f_u)
        if (c == 0) dm0_b = de_carry_total + de_end_carry;  // m0 is chunk 0's carried m
        // Into the previous chunk: dC = GE dC + qᵀ (G∘dnum), dn = GE dn + Σ_t G_t dqn_t q_t.
        for (int64_t t = 0; t < len; ++t) {
          const T G = exp_(m_p - g.mx[t]);
          for (int64_t j = 0; j < DV; ++j) dnp[t * DV + j] *= G;
          dqn[t] *= G;
        }
        for (int64_t d = 0; d < DQK; ++d) {
          T s = 0;
          for (int64_t t = 0; t < len; ++t) s += dqn[t] * qp[t * DQK + d];
          dn_ptr[d] = decay * dn_ptr[d] + s;
        }
        dC_b.addmm_(q_c.t(), dnum, decay);
      }
      dm0.data_ptr<T>()[bh] = dm0_b;
    }
  });
}

}  // namespace

Tensors8 mlstm_chunkwise_forward_cpu(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& i,
                                     const Tensor& f, const Tensor& C0, const Tensor& n0, const Tensor& m0,
                                     int64_t chunk_size, double eps) {
  const at::AutoDispatchBelowADInplaceOrView below_autograd;  // the products below are the op's own
  const ChunkwiseInputs in = chunkwise_inputs(q, k, v, i, f, C0, n0, m0, chunk_size, eps, "mlstm_chunkwise");
  const ChunkwiseSizes& z = in.z;
  const int64_t BH = z.bh();
  const auto o = in.q.options();
  Tensor h = at::empty({BH, z.S, z.DV}, o), C_T = at::empty({BH, z.DQK, z.DV}, o), n_T = at::empty({BH, z.DQK}, o);
  Tensor m_T = at::empty({BH}, o), m_all = at::empty({BH, z.S}, o), qn_all = at::empty({BH, z.S}, o);
  Tensor C_starts = at::empty({BH, z.chunks, z.DQK, z.DV}, o), n_starts = at::empty({BH, z.chunks, z.DQK}, o);
  AT_DISPATCH_FLOATING_TYPES(z.state, "mlstm_chunkwise_forward_cpu", [&] {
    forward_cpu<scalar_t>(in, h, C_T, n_T, m_T, C_starts, n_starts, m_all, qn_all);
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
  const ChunkwiseInputs in = chunkwise_inputs(q, k, v, i, f, C0, n0, m0, chunk_size, eps, op);
  const ChunkwiseSizes& z = in.z;
  check_chunkwise_backward_inputs(z, q.device(), dh, dC_T, dn_T, dm_T, h, C_T, n_T, C_starts, n_starts, m_all, qn_all,
                                  op);
  const int64_t BH = z.bh();
  const auto flat = [&](const Tensor& t, at::IntArrayRef sizes) { return t.to(z.state).reshape(sizes).contiguous(); };
  const Tensor h_full = z.dtype == z.state ? flat(h, {BH, z.S, z.DV}) : Tensor();
  const Tensor dh_s = flat(dh, {BH, z.S, z.DV}), Cs = flat(C_starts, {BH, z.chunks, z.DQK, z.DV});
  const Tensor ns = flat(n_starts, {BH, z.chunks, z.DQK}), ms = flat(m_all, {BH, z.S}), qns = flat(qn_all, {BH, z.S});
  Tensor dq = at::empty_like(in.q), dk = at::empty_like(in.k), dv = at::empty_like(in.v);
  Tensor dC = flat(dC_T, {BH, z.DQK, z.DV}).clone(), dn = flat(dn_T, {BH, z.DQK}).clone();
  Tensor dm0 = at::empty_like(in.m0), di = at::empty_like(in.i), d_log_f = at::empty_like(in.i);
  Tensor dden = at::empty_like(in.i);
  AT_DISPATCH_FLOATING_TYPES(z.state, "mlstm_chunkwise_backward_cpu", [&] {
    backward_cpu<scalar_t>(in, h_full, dh_s, Cs, ns, ms, qns, dq, dk, dv, dC, dn, dm0, di, d_log_f, dden);
  });
  auto [di_out, df, dm0_out] = finish_gate_grads(z, di, d_log_f, dm0, dden, i, f, m0, m_all, dC_T, C_T, dn_T, n_T,
                                                 dm_T, eps);
  return {sizes_like(dq, q.sizes(), z.dtype), sizes_like(dk, k.sizes(), z.dtype), sizes_like(dv, v.sizes(), z.dtype),
          di_out, df, dC.reshape(C0.sizes()), dn.reshape(n0.sizes()), dm0_out};
}

}  // namespace xlstm
