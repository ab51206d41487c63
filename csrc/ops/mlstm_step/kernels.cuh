// CUDA kernels of the mLSTM generation step, float32 state: the forward a block per (batch, head,
// slice of DV columns), the backward a block per (batch, head). Threads run along DV, so every
// pass over C is coalesced.
#pragma once

#include "cuda/block_reduce.cuh"
#include "cuda/vector_access.cuh"
#include "ops/mlstm_step/math.h"

namespace xlstm {

// The forward's launch: grid (B·NH, ⌈DV / kColumns⌉), so that even B = 1 spreads over the chip
// (B·NH·DV / 32 blocks: 128 at NH = 8, DV = 512); a block of kThreads covers kColumns columns of
// one row's C with kColumns / kVec threads across the columns and the rest across DQK, each thread
// holding kLoadedFloats of C in registers per sweep: all of a sweep's loads are issued before any
// store of C_new, so they are in flight together (C and C_new may alias as far as the compiler
// knows, so it would not reorder them itself). kVec = 4 (16-byte accesses) where DV % 4 == 0
// and C, C_new are 16-byte aligned, else 1. Each block recomputes the DQK-long q·n' it needs.
template <int kVec>
struct MlstmStepFwdShape {
  static constexpr int kThreads = 256, kColumns = 32, kLoadedFloats = 32;
  static constexpr int kColumnThreads = kColumns / kVec, kRowThreads = kThreads / kColumnThreads;
  static constexpr int kRowsPerSweep = kLoadedFloats / kVec;  // rows of C a thread holds per sweep
};
using MlstmStepFwdLaunch = MlstmStepFwdShape<1>;  // what does not depend on kVec

// Dynamic shared memory, in floats.
inline int64_t mlstm_step_fwd_smem_floats(int64_t dqk, int vec) {
  return 2 * dqk + MlstmStepFwdLaunch::kThreads * vec + 32;
}
inline int64_t mlstm_step_bwd_smem_floats(int64_t dqk, int64_t dv) { return 5 * dqk + 2 * dv + 3 * 32; }

template <typename scalar_t, int kVec>
__global__ void __launch_bounds__(MlstmStepFwdLaunch::kThreads)
    mlstm_step_fwd_kernel(MlstmStepParams<scalar_t, float> p) {
  using Shape = MlstmStepFwdShape<kVec>;
  constexpr int kColumnThreads = Shape::kColumnThreads, kRowThreads = Shape::kRowThreads;
  constexpr int kRowsPerSweep = Shape::kRowsPerSweep;
  using Columns = AlignedVector<float, kVec>;
  XLSTM_DYNAMIC_SHARED(float, smem);
  const int DQK = static_cast<int>(p.dqk), DV = static_cast<int>(p.dv);
  float* q_s = smem;         // q
  float* k_s = q_s + DQK;    // b·s·k
  float* num_s = k_s + DQK;  // kRowThreads x kColumns partial numerators
  float* scratch = num_s + kRowThreads * Shape::kColumns;
  const int64_t row = blockIdx.x, b = row / p.heads, h = row % p.heads;
  const int tx = threadIdx.x % kColumnThreads, ty = threadIdx.x / kColumnThreads;
  const int j0 = static_cast<int>(blockIdx.y) * Shape::kColumns + tx * kVec;  // DV % kVec == 0
  const bool has_columns = j0 < DV;
  const float* C = p.C + row * DQK * DV + j0;
  float* C_new = p.C_new + row * DQK * DV + j0;

  Columns c[kRowsPerSweep];
  const auto load_sweep = [&](int first) {
#pragma unroll
    for (int r = 0; r < kRowsPerSweep; ++r) {
      const int d = first + ty + r * kRowThreads;
      if (has_columns && d < DQK) c[r] = load_vector<kVec>(C + d * DV);
    }
  };
  load_sweep(0);  // needs nothing below, so its latency overlaps the gates and q·n'

  const scalar_t *q = p.q.row(b, h), *k = p.k.row(b, h), *v = p.v.row(b, h);
  const MlstmGates<float> g =
      mlstm_gates<float>(static_cast<float>(*p.i.row(b, h)), static_cast<float>(*p.f.row(b, h)), p.m[row]);
  const bool writes_row_state = blockIdx.y == 0;  // n' and m' once per row
  float qn[1] = {0.f};
  for (int d = threadIdx.x; d < DQK; d += blockDim.x) {
    const float qd = static_cast<float>(q[d]), kd = g.input * p.scale * static_cast<float>(k[d]);
    const float nd = g.decay * p.n[row * DQK + d] + kd;
    q_s[d] = qd;
    k_s[d] = kd;
    if (writes_row_state) p.n_new[row * DQK + d] = nd;
    qn[0] += qd * nd;
  }
  block_sum(qn, scratch);  // also the barrier for q_s and k_s
  const float den = mlstm_denominator(qn[0], g.m_new, p.eps);

  float vj[kVec], num[kVec];
#pragma unroll
  for (int e = 0; e < kVec; ++e) {
    vj[e] = has_columns ? static_cast<float>(v[j0 + e]) : 0.f;
    num[e] = 0.f;
  }
  for (int first = 0; first < DQK; first += kRowsPerSweep * kRowThreads) {
    if (first > 0) load_sweep(first);
#pragma unroll
    for (int r = 0; r < kRowsPerSweep; ++r) {
      const int d = first + ty + r * kRowThreads;
      if (has_columns && d < DQK) {
        const float qd = q_s[d], kd = k_s[d];
#pragma unroll
        for (int e = 0; e < kVec; ++e) {
          c[r].v[e] = g.decay * c[r].v[e] + kd * vj[e];
          num[e] += qd * c[r].v[e];
        }
        store_vector(C_new + d * DV, c[r]);
      }
    }
  }
  // The numerator of column j0 + e is the sum over the row threads, in a fixed order.
#pragma unroll
  for (int e = 0; e < kVec; ++e) num_s[ty * Shape::kColumns + tx * kVec + e] = num[e];
  __syncthreads();
  const int column = static_cast<int>(blockIdx.y) * Shape::kColumns + static_cast<int>(threadIdx.x);
  if (threadIdx.x < Shape::kColumns && column < DV) {
    float total = 0.f;
    for (int y = 0; y < kRowThreads; ++y) total += num_s[y * Shape::kColumns + threadIdx.x];
    p.h[row * DV + column] = static_cast<scalar_t>(total / den);
  }
  if (writes_row_state && threadIdx.x == 0) p.m_new[row] = g.m_new;
}

template <typename scalar_t>
__global__ void mlstm_step_bwd_kernel(MlstmStepBwdParams<scalar_t, float> p) {
  XLSTM_DYNAMIC_SHARED(float, smem);
  const int DQK = static_cast<int>(p.dqk), DV = static_cast<int>(p.dv);
  float* q_s = smem;                   // q
  float* ks_s = q_s + DQK;             // s·k
  float* nn_s = ks_s + DQK;            // n'
  float* row_C_dnum = nn_s + DQK;      // Σ_j C·dnum per d
  float* row_dC_v = row_C_dnum + DQK;  // Σ_j dC'·v per d
  float* v_s = row_dC_v + DQK;
  float* dnum_s = v_s + DV;  // dh / den
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

  // Column pass (thread per j): h's numerator, dC, dv and the decay gradient. The loads of a batch
  // of rows go out before its stores of dC (which, for all the compiler knows, may alias C).
  constexpr int kBatch = 8;
  float sums[3] = {0.f, 0.f, 0.f};  // Σ dh·num, Σ v·dnum, Σ dC'tot·C
  for (int j = threadIdx.x; j < DV; j += blockDim.x) {
    const float vj = v_s[j], dnum = dnum_s[j];
    float num = 0.f, dv_acc = 0.f;
    for (int first = 0; first < DQK; first += kBatch) {
      float c[kBatch], dc_next[kBatch];
#pragma unroll
      for (int r = 0; r < kBatch; ++r) {
        const int d = first + r;
        c[r] = d < DQK ? C[d * DV + j] : 0.f;
        dc_next[r] = d < DQK ? dC_new[d * DV + j] : 0.f;
      }
#pragma unroll
      for (int r = 0; r < kBatch; ++r) {
        const int d = first + r;
        if (d < DQK) {
          num += q_s[d] * (g.decay * c[r] + g.input * ks_s[d] * vj);
          const float dc_total = dc_next[r] + q_s[d] * dnum;
          dC[d * DV + j] = g.decay * dc_total;
          dv_acc += dc_total * ks_s[d];
          sums[2] += dc_total * c[r];
        }
      }
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
