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
//
// Precision: a_t grows in magnitude along the chunk (about |logσ(f)| per token) and so does b_u, while
// the exponents b_u - mx_t that weigh the products are small where the weights matter. Rounding a_t
// and b_u to float would cost ulp(|b|) in every weight: at |a| ~ 30 that is 4e-6, several times the
// error of the literal quadratic form, which takes differences of partial sums F_t - F_u directly.
// So a, b and mx are carried as Split values (common/numerics.h: twice the precision), and every
// exponent is formed from them by split_difference; m_t and the exponents are then rounded once.
// The CUDA output pass also sums q·n apart from the tile product, in Split precision: where its terms
// cancel, a float sum's rounding reaches h amplified by the depth of the cancellation.
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

// The gate scan of one chunk, element by element (the CPU kernels scan sequentially, the CUDA kernels
// in parallel): a_t = a_{t-1} + logσ(f_t), b_t = i_t - a_t, mx_t = max(mx_{t-1}, b_t) from mx = m_p.
//
// logσ(f) enters the scan floored at -2^20. Below that exp(logσ(f)) is 0 to any float precision
// unless the input gates differ by more than 2^20 around it, so the floor changes no result
// in range; but f = -inf (forget everything) then gives a finite a instead of a = -inf, b = +inf and
// NaN weights, and |a| <= 2^27 over a chunk of 128 keeps the Split sums exact to ~1e-7.
template <typename T>
XLSTM_HOST_DEVICE T mlstm_chunk_log_forget(T f) {
  return max_(log_sigmoid(f), T(-1048576));
}
template <typename T>
XLSTM_HOST_DEVICE Split<T> mlstm_chunk_b(T i, Split<T> a) {
  return split_add(Split<T>{i, T(0)}, Split<T>{-a.hi, -a.lo});
}
// The step form's m_t = a_t + mx_t (also the normaliser's floor exp(-m_t)).
template <typename T>
XLSTM_HOST_DEVICE T mlstm_chunk_m(Split<T> a, Split<T> mx) {
  return split_add(a, mx).hi;
}
// log W[t,u] = b_u - mx_t, the end weights' b_u - mx_end, and the carry's log G_t = m_p - mx_t.
template <typename T>
XLSTM_HOST_DEVICE T mlstm_chunk_log_weight(Split<T> b, Split<T> mx) {
  return split_difference(b, mx);
}
template <typename T>
XLSTM_HOST_DEVICE T mlstm_chunk_log_carry(T m_p, Split<T> mx) {
  return split_difference(Split<T>{m_p, T(0)}, mx);
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
