// mLSTM generation step (one token), the math shared by the CPU and CUDA kernels.
//
//   m' = max(logσ(f) + m, i),  a = exp(logσ(f) + m - m'),  b = exp(i - m')
//   C' = a C + b (s k) vᵀ,  n' = a n + b (s k),  h = (qᵀ C') / (max(|q·n'|, exp(-m')) + eps)
//
// Kernels see plain pointers and strides (in elements); no ATen types here.
#pragma once

#include <cstdint>

#include "common/numerics.h"

namespace xlstm {

// Per-(batch, head) input vector: element d of row (b, h) is ptr[b*stride_b + h*stride_h + d].
template <typename T>
struct RowInput {
  const T* ptr;
  int64_t stride_b, stride_h;
  XLSTM_HOST_DEVICE const T* row(int64_t b, int64_t h) const { return ptr + b * stride_b + h * stride_h; }
};

// scalar_t: q, k, v, i, f and h; acc_t: states and accumulation. States are contiguous
// C (B, NH, DQK, DV), n (B, NH, DQK), m (B, NH).
template <typename scalar_t, typename acc_t>
struct MlstmStepParams {
  int64_t batch, heads, dqk, dv;
  RowInput<scalar_t> q, k, v, i, f;
  const acc_t *C, *n, *m;
  acc_t scale, eps;
  // forward outputs (contiguous)
  scalar_t* h;
  acc_t *C_new, *n_new, *m_new;
};

template <typename scalar_t, typename acc_t>
struct MlstmStepBwdParams : MlstmStepParams<scalar_t, acc_t> {
  // gradients of the forward outputs (contiguous)
  const scalar_t* dh;
  const acc_t *dC_new, *dn_new, *dm_new;
  // gradients of the inputs (contiguous)
  scalar_t *dq, *dk, *dv_, *di, *df;
  acc_t *dC, *dn, *dm;
};

template <typename T>
struct MlstmGates {
  T log_f, m_new, decay, input;  // decay = a, input = b above
};

template <typename T>
XLSTM_HOST_DEVICE MlstmGates<T> mlstm_gates(T i, T f, T m_old) {
  const T log_f = log_sigmoid(f);
  const T m_new = max_(log_f + m_old, i);
  return {log_f, m_new, exp_(log_f + m_old - m_new), exp_(i - m_new)};
}

template <typename T>
XLSTM_HOST_DEVICE T mlstm_denominator(T qn, T m_new, T eps) {
  return max_(abs_(qn), exp_(-m_new)) + eps;
}

// d(den) -> (d(q·n'), d(m')) through den = max(|q·n'|, exp(-m')) + eps.
template <typename T>
struct MlstmDenominatorGrad {
  T dqn, dm_new;
};
template <typename T>
XLSTM_HOST_DEVICE MlstmDenominatorGrad<T> mlstm_denominator_backward(T qn, T m_new, T d_den) {
  const T floor = exp_(-m_new);
  const MaxGrad<T> g = max_backward(abs_(qn), floor, d_den);
  return {g.da * sign(qn), -floor * g.db};
}

template <typename T>
struct MlstmGateGrads {
  T di, df, dm_old;
};
// Gradients of i, f and the old m from those of a, b and m' (m' taken as a function of i, f, m).
template <typename T>
XLSTM_HOST_DEVICE MlstmGateGrads<T> mlstm_gates_backward(T i, T f, T m_old, const MlstmGates<T>& g, T d_decay,
                                                         T d_input, T dm_new) {
  const T from_decay = g.decay * d_decay, from_input = g.input * d_input;
  const T dm = dm_new - from_decay - from_input;
  const MaxGrad<T> split = max_backward(g.log_f + m_old, i, dm);
  const T d_log_f = from_decay + split.da;
  return {from_input + split.db, d_log_f * sigmoid(-f), d_log_f};
}

// Rows of DHQK summed apart before they join the CPU forward's totals (q·n and q·C): the rounding
// error of a sum in order grows with its length, 3.8e-5 relative at DHQK = 11 635 (fuzzed); in two
// levels it grows with kStepSumBlock + DHQK / kStepSumBlock.
constexpr int64_t kStepSumBlock = 64;

// CPU: one (batch, head) row, single-threaded; inner loops run over contiguous DV. work: 2*DV.
template <typename scalar_t, typename acc_t>
void mlstm_step_fwd_row(const MlstmStepParams<scalar_t, acc_t>& p, int64_t b, int64_t h, acc_t* work) {
  const int64_t row = b * p.heads + h, DQK = p.dqk, DV = p.dv;
  const scalar_t *q = p.q.row(b, h), *k = p.k.row(b, h), *v = p.v.row(b, h);
  const MlstmGates<acc_t> g = mlstm_gates<acc_t>(*p.i.row(b, h), *p.f.row(b, h), p.m[row]);
  const acc_t* C = p.C + row * DQK * DV;
  const acc_t* n = p.n + row * DQK;
  acc_t* C_new = p.C_new + row * DQK * DV;
  acc_t* n_new = p.n_new + row * DQK;
  acc_t *num = work, *part = work + DV;
  acc_t qn = 0;
  for (int64_t j = 0; j < DV; ++j) num[j] = 0;
  for (int64_t d0 = 0; d0 < DQK; d0 += kStepSumBlock) {
    const int64_t d1 = d0 + kStepSumBlock < DQK ? d0 + kStepSumBlock : DQK;
    acc_t qn_part = 0;
    for (int64_t j = 0; j < DV; ++j) part[j] = 0;
    for (int64_t d = d0; d < d1; ++d) {
      const acc_t kd = g.input * p.scale * acc_t(k[d]), qd = acc_t(q[d]);
      n_new[d] = g.decay * n[d] + kd;
      qn_part += qd * n_new[d];
      for (int64_t j = 0; j < DV; ++j) {
        const acc_t c = g.decay * C[d * DV + j] + kd * acc_t(v[j]);
        C_new[d * DV + j] = c;
        part[j] += qd * c;
      }
    }
    qn += qn_part;
    for (int64_t j = 0; j < DV; ++j) num[j] += part[j];
  }
  const acc_t den = mlstm_denominator(qn, g.m_new, p.eps);
  for (int64_t j = 0; j < DV; ++j) p.h[row * DV + j] = scalar_t(num[j] / den);
  p.m_new[row] = g.m_new;
}

// work: 3*DV + 2*DQK accumulators.
template <typename scalar_t, typename acc_t>
void mlstm_step_bwd_row(const MlstmStepBwdParams<scalar_t, acc_t>& p, int64_t b, int64_t h, acc_t* work) {
  const int64_t row = b * p.heads + h, DQK = p.dqk, DV = p.dv;
  const scalar_t *q = p.q.row(b, h), *k = p.k.row(b, h), *v = p.v.row(b, h);
  const acc_t i = *p.i.row(b, h), f = *p.f.row(b, h);
  const MlstmGates<acc_t> g = mlstm_gates<acc_t>(i, f, p.m[row]);
  const acc_t* C = p.C + row * DQK * DV;
  const acc_t* n = p.n + row * DQK;
  const acc_t* dC_new = p.dC_new + row * DQK * DV;
  const acc_t* dn_new = p.dn_new + row * DQK;
  acc_t* dC = p.dC + row * DQK * DV;
  acc_t *num = work, *dnum = work + DV, *dv_acc = work + 2 * DV;
  acc_t *row_C_dnum = work + 3 * DV, *row_dC_v = row_C_dnum + DQK;  // Σ_j C·dnum, Σ_j dC'·v per d

  acc_t qn = 0;
  for (int64_t d = 0; d < DQK; ++d) qn += acc_t(q[d]) * (g.decay * n[d] + g.input * p.scale * acc_t(k[d]));
  const acc_t den = mlstm_denominator(qn, g.m_new, p.eps);
  acc_t v_dnum = 0;
  for (int64_t j = 0; j < DV; ++j) {
    num[j] = 0;
    dv_acc[j] = 0;
    dnum[j] = acc_t(p.dh[row * DV + j]) / den;
    v_dnum += acc_t(v[j]) * dnum[j];
  }
  // One pass over C: C' (for h), dC, and the row and column sums the remaining gradients need.
  acc_t d_decay = 0;
  for (int64_t d = 0; d < DQK; ++d) {
    const acc_t ks = p.scale * acc_t(k[d]), qd = acc_t(q[d]);
    acc_t r1 = 0, r2 = 0;
    for (int64_t j = 0; j < DV; ++j) {
      const acc_t c = C[d * DV + j], vj = acc_t(v[j]);
      num[j] += qd * (g.decay * c + g.input * ks * vj);
      const acc_t dc_total = dC_new[d * DV + j] + qd * dnum[j];
      dC[d * DV + j] = g.decay * dc_total;
      dv_acc[j] += dc_total * ks;
      d_decay += dc_total * c;
      r1 += c * dnum[j];
      r2 += dC_new[d * DV + j] * vj;
    }
    row_C_dnum[d] = r1;
    row_dC_v[d] = r2;
  }
  acc_t h_dh = 0;
  for (int64_t j = 0; j < DV; ++j) {
    h_dh += acc_t(p.dh[row * DV + j]) * num[j];
    p.dv_[row * DV + j] = scalar_t(g.input * dv_acc[j]);
  }
  const MlstmDenominatorGrad<acc_t> dden = mlstm_denominator_backward(qn, g.m_new, -h_dh / (den * den));
  acc_t d_input = 0;
  for (int64_t d = 0; d < DQK; ++d) {
    const acc_t ks = p.scale * acc_t(k[d]), qd = acc_t(q[d]);
    const acc_t n_new = g.decay * n[d] + g.input * ks;
    const acc_t dn_total = dn_new[d] + dden.dqn * qd;
    const acc_t dks_over_b = row_dC_v[d] + qd * v_dnum + dn_total;  // Σ_j dC'tot·v + dn'tot
    p.dq[row * DQK + d] = scalar_t(g.decay * row_C_dnum[d] + g.input * ks * v_dnum + dden.dqn * n_new);
    p.dk[row * DQK + d] = scalar_t(p.scale * g.input * dks_over_b);
    p.dn[row * DQK + d] = g.decay * dn_total;
    d_input += ks * dks_over_b;
    d_decay += dn_total * n[d];
  }
  const MlstmGateGrads<acc_t> gg =
      mlstm_gates_backward(i, f, p.m[row], g, d_decay, d_input, p.dm_new[row] + dden.dm_new);
  p.di[row] = scalar_t(gg.di);
  p.df[row] = scalar_t(gg.df);
  p.dm[row] = gg.dm_old;
}

}  // namespace xlstm
