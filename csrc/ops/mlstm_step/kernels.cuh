// CUDA kernels of the mLSTM generation step: one block per (batch, head), float32 state.
// Threads stride over the DV columns of C, so every pass over C is coalesced.
#pragma once

#include "cuda/block_reduce.cuh"
#include "ops/mlstm_step/math.h"

namespace xlstm {

// Dynamic shared memory, in floats.
inline int64_t mlstm_step_fwd_smem_floats(int64_t dqk) { return 2 * dqk + 32; }
inline int64_t mlstm_step_bwd_smem_floats(int64_t dqk, int64_t dv) { return 5 * dqk + 2 * dv + 3 * 32; }

template <typename scalar_t>
__global__ void mlstm_step_fwd_kernel(MlstmStepParams<scalar_t, float> p) {
  XLSTM_DYNAMIC_SHARED(float, smem);
  const int DQK = static_cast<int>(p.dqk), DV = static_cast<int>(p.dv);
  float* q_s = smem;             // q
  float* k_s = q_s + DQK;        // b·s·k
  float* scratch = k_s + DQK;
  const int64_t b = blockIdx.x / p.heads, h = blockIdx.x % p.heads, row = blockIdx.x;
  const scalar_t *q = p.q.row(b, h), *k = p.k.row(b, h), *v = p.v.row(b, h);
  const MlstmGates<float> g =
      mlstm_gates<float>(static_cast<float>(*p.i.row(b, h)), static_cast<float>(*p.f.row(b, h)), p.m[row]);

  float qn[1] = {0.f};
  for (int d = threadIdx.x; d < DQK; d += blockDim.x) {
    const float qd = static_cast<float>(q[d]), kd = g.input * p.scale * static_cast<float>(k[d]);
    const float nd = g.decay * p.n[row * DQK + d] + kd;
    q_s[d] = qd;
    k_s[d] = kd;
    p.n_new[row * DQK + d] = nd;
    qn[0] += qd * nd;
  }
  block_sum(qn, scratch);
  const float den = mlstm_denominator(qn[0], g.m_new, p.eps);

  const float* C = p.C + row * DQK * DV;
  float* C_new = p.C_new + row * DQK * DV;
  for (int j = threadIdx.x; j < DV; j += blockDim.x) {
    const float vj = static_cast<float>(v[j]);
    float num = 0.f;
#pragma unroll 4
    for (int d = 0; d < DQK; ++d) {
      const float c = g.decay * C[d * DV + j] + k_s[d] * vj;
      C_new[d * DV + j] = c;
      num += q_s[d] * c;
    }
    p.h[row * DV + j] = static_cast<scalar_t>(num / den);
  }
  if (threadIdx.x == 0) p.m_new[row] = g.m_new;
}

template <typename scalar_t>
__global__ void mlstm_step_bwd_kernel(MlstmStepBwdParams<scalar_t, float> p) {
  XLSTM_DYNAMIC_SHARED(float, smem);
  const int DQK = static_cast<int>(p.dqk), DV = static_cast<int>(p.dv);
  float* q_s = smem;                     // q
  float* ks_s = q_s + DQK;               // s·k
  float* nn_s = ks_s + DQK;              // n'
  float* row_C_dnum = nn_s + DQK;        // Σ_j C·dnum per d
  float* row_dC_v = row_C_dnum + DQK;    // Σ_j dC'·v per d
  float* v_s = row_dC_v + DQK;
  float* dnum_s = v_s + DV;              // dh / den
  float* scratch = dnum_s + DV;
  const int64_t b = blockIdx.x / p.heads, h = blockIdx.x % p.heads, row = blockIdx.x;
  const int lane = threadIdx.x % warpSize, warp = threadIdx.x / warpSize, warps = blockDim.x / warpSize;
  const scalar_t *q = p.q.row(b, h), *k = p.k.row(b, h), *v = p.v.row(b, h);
  const float i = static_cast<float>(*p.i.row(b, h)), f = static_cast<float>(*p.f.row(b, h));
  const MlstmGates<float> g = mlstm_gates<float>(i, f, p.m[row]);
  const float* C = p.C + row * DQK * DV;
  const float* dC_new = p.dC_new + row * DQK * DV;
  float* dC = p.dC + row * DQK * DV;

  float qn[1] = {0.f};
  for (int d = threadIdx.x; d < DQK; d += blockDim.x) {
    const float qd = static_cast<float>(q[d]), ks = p.scale * static_cast<float>(k[d]);
    const float nd = g.decay * p.n[row * DQK + d] + g.input * ks;
    q_s[d] = qd;
    ks_s[d] = ks;
    nn_s[d] = nd;
    qn[0] += qd * nd;
  }
  block_sum(qn, scratch);
  const float den = mlstm_denominator(qn[0], g.m_new, p.eps);
  for (int j = threadIdx.x; j < DV; j += blockDim.x) {
    v_s[j] = static_cast<float>(v[j]);
    dnum_s[j] = static_cast<float>(p.dh[row * DV + j]) / den;
  }
  __syncthreads();

  // Column pass (thread per j): h's numerator, dC, dv and the decay gradient.
  float sums[3] = {0.f, 0.f, 0.f};  // Σ dh·num, Σ v·dnum, Σ dC'tot·C
  for (int j = threadIdx.x; j < DV; j += blockDim.x) {
    const float vj = v_s[j], dnum = dnum_s[j];
    float num = 0.f, dv_acc = 0.f;
#pragma unroll 4
    for (int d = 0; d < DQK; ++d) {
      const float c = C[d * DV + j];
      num += q_s[d] * (g.decay * c + g.input * ks_s[d] * vj);
      const float dc_total = dC_new[d * DV + j] + q_s[d] * dnum;
      dC[d * DV + j] = g.decay * dc_total;
      dv_acc += dc_total * ks_s[d];
      sums[2] += dc_total * c;
    }
    p.dv_[row * DV + j] = static_cast<scalar_t>(g.input * dv_acc);
    sums[0] += static_cast<float>(p.dh[row * DV + j]) * num;
    sums[1] += vj * dnum;
  }
  // Row pass (warp per d, lanes over j): the sums over j that dq and dk need.
  for (int d = warp; d < DQK; d += warps) {
    float r1 = 0.f, r2 = 0.f;
    for (int j = lane; j < DV; j += warpSize) {
      r1 += C[d * DV + j] * dnum_s[j];
      r2 += dC_new[d * DV + j] * v_s[j];
    }
    r1 = warp_sum(r1);
    r2 = warp_sum(r2);
    if (lane == 0) {
      row_C_dnum[d] = r1;
      row_dC_v[d] = r2;
    }
  }
  block_sum(sums, scratch);
  const float v_dnum = sums[1];
  const MlstmDenominatorGrad<float> dden = mlstm_denominator_backward(qn[0], g.m_new, -sums[0] / (den * den));

  // d_input, d_decay; sums[2] is already a block total, so only thread 0 carries it on.
  float gate_sums[2] = {0.f, threadIdx.x == 0 ? sums[2] : 0.f};
  for (int d = threadIdx.x; d < DQK; d += blockDim.x) {
    const float qd = q_s[d], ks = ks_s[d];
    const float dn_total = p.dn_new[row * DQK + d] + dden.dqn * qd;
    const float dks_over_b = row_dC_v[d] + qd * v_dnum + dn_total;
    p.dq[row * DQK + d] = static_cast<scalar_t>(g.decay * row_C_dnum[d] + g.input * ks * v_dnum + dden.dqn * nn_s[d]);
    p.dk[row * DQK + d] = static_cast<scalar_t>(p.scale * g.input * dks_over_b);
    p.dn[row * DQK + d] = g.decay * dn_total;
    gate_sums[0] += ks * dks_over_b;
    gate_sums[1] += dn_total * p.n[row * DQK + d];
  }
  block_sum(gate_sums, scratch);
  if (threadIdx.x == 0) {
    const MlstmGateGrads<float> gg =
        mlstm_gates_backward(i, f, p.m[row], g, gate_sums[1], gate_sums[0], p.dm_new[row] + dden.dm_new);
    p.di[row] = static_cast<scalar_t>(gg.di);
    p.df[row] = static_cast<scalar_t>(gg.df);
    p.dm[row] = gg.dm_old;
  }
}

}  // namespace xlstm
