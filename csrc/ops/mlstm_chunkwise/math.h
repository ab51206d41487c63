// mLSTM chunkwise form, the plain data the CUDA kernels read (no ATen types).
//
// Within a chunk of length L starting from the carried state (C_p, n_p, m_p), with
// a_t = Σ_{u≤t} logσ(f_u) (from the chunk start) and b_u = i_u - a_u:
//   mx_t = max(m_p, max_{u≤t} b_u)       the step form's running max is m_t = a_t + mx_t
//   W[t,u] = exp(b_u - mx_t) (u ≤ t),   G_t = exp(m_p - mx_t)        (intra-chunk and carry weights)
//   h_t = (Σ_u W[t,u] s q_t·k_u v_u + G_t q_t C_p) / (max(|qn_t|, exp(-m_t)) + eps)
//   qn_t = Σ_u W[t,u] s q_t·k_u + G_t q_t·n_p
//   C_end = GE C_p + Σ_u WE_u s k_u v_uᵀ with WE_u = exp(b_u - mx_end), GE = exp(m_p - mx_end)
// The kernels treat n as column DV of an extended state C' = [C | n] and v as v' = [v | 1], so every
// product with n is the same tile product as with C.
#pragma once

#include <cstdint>

#include "ops/mlstm_step/math.h"  // mlstm_denominator and its backward: the same normaliser per step

namespace xlstm {

// The gradient reaching step t's normaliser den = max(|q·n|, exp(-m)) + eps, dden = -(dh·h) / den,
// and the share of it that passes to q·n. m is held fixed here: the chunkwise backward routes the
// gradient through the stabiliser separately (host.h).
template <typename T>
struct MlstmChunkwiseNormaliserGrad {
  T dden, dqn;
};
template <typename T>
XLSTM_HOST_DEVICE MlstmChunkwiseNormaliserGrad<T> mlstm_chunkwise_normaliser_backward(T dh_dot_h, T qn, T m, T den) {
  const T dden = -dh_dot_h / den;
  return {dden, mlstm_denominator_backward(qn, m, dden).dqn};
}

// Tile shapes of the chunkwise kernels. A block of kThreads threads computes kTile x kTile output
// tiles, each thread a kMicro x kMicro register tile; operands pass through shared memory kDepth
// deep. Inner products run on tensor cores for bf16 / fp16 inputs (cuda/tile_mma.cuh: 8 warps of
// 32 x 16 accumulator blocks, depth 32 per stage), on CUDA cores for float32 (cuda/tile_gemm.cuh).
struct MlstmChunkwiseTraits {
  static constexpr int kTile = 64;
  static constexpr int kDepth = 16;
  static constexpr int kMicro = 4;
  static constexpr int kThreads = (kTile / kMicro) * (kTile / kMicro);
  static constexpr int kMaxChunk = 2 * kTile;  // the gate scans give one thread per token
  static_assert(kThreads >= kMaxChunk, "one thread per token of a chunk");
};

// Shared by the forward and backward passes, CPU and CUDA. Inputs are contiguous: q, k (BH, S, DQK),
// v (BH, S, DV), i, f (BH, S) in scalar_t (the CUDA kernels: the inputs' dtype; the CPU kernels:
// the state dtype); states in state_t and contiguous: C (BH, DQK, DV), n (BH, DQK), m (BH);
// per-chunk states (BH, chunks, DQK, DV) and (BH, chunks, DQK); per-step m_all, qn_all (BH, S).
template <typename scalar_t, typename state_t = float>
struct MlstmChunkwiseParams {
  int64_t bh, seq, dqk, dv, chunk, chunks;
  const scalar_t *q, *k, *v, *i, *f;
  const state_t *C0, *n0, *m0;
  state_t scale, eps;
  state_t *C_starts, *n_starts, *m_all;  // written by the forward state pass, read by everything after it
};

template <typename scalar_t, typename state_t = float>
struct MlstmChunkwiseFwdParams : MlstmChunkwiseParams<scalar_t, state_t> {
  scalar_t* h;
  state_t *C_T, *n_T, *m_T, *qn_all;
  // The backward pass's recompute of dh·h (BH, S) at full precision, from dh (BH, S, DV).
  const scalar_t* dh;
  state_t* dh_dot_h;
};

template <typename scalar_t, typename state_t = float>
struct MlstmChunkwiseBwdParams : MlstmChunkwiseParams<scalar_t, state_t> {
  const scalar_t* dh;                // (BH, S, DV), contiguous
  const scalar_t* h;                 // the forward's h at full precision where the caller has it (CPU), else null
  const state_t *dh_dot_h, *qn_all;  // (BH, S): dh·h at full precision, and the forward's q·n
  state_t* dden;                     // (BH, S): the gradient reaching every step's normaliser
  const state_t *dC_T, *dn_T;        // gradient of the returned state
  state_t *dC_ends, *dn_ends;        // (BH, chunks, ...): gradient of every chunk's end state
  scalar_t *dq, *dk, *dv_;           // dv_: dv is the value head size
  state_t *di, *d_log_f, *dm0_carry;  // with the stabiliser held fixed; dm0_carry (BH)
  state_t *dC0, *dn0;
};

}  // namespace xlstm
