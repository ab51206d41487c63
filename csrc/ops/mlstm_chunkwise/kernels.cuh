// CUDA kernels of the chunkwise mLSTM (math in math.h). Four passes:
//   fwd_states   (state tile, batch·head): walks the chunks in order, carrying a tile of C' = [C | n]
//                in registers; writes every chunk's start state, the final state and m of every step.
//   fwd_outputs  (chunk, batch·head): the gated causal tile of the chunk plus the carried state's
//                contribution, normalised: h, and q·n of every step for the backward pass.
//   bwd_states   (state tile, batch·head): walks the chunks backwards carrying dC' = [dC | dn];
//                writes the gradient of every chunk's end state and of the initial state.
//   bwd_intra    (chunk, batch·head): dq, dk, dv and the gate gradients with the stabiliser fixed.
// The gradient through the stabiliser itself is routed afterwards (host.h).
#pragma once

#include <type_traits>

#include "common/numerics.h"
#include "cuda/block_reduce.cuh"
#include "cuda/tile_gemm.cuh"
#include "cuda/tile_mma.cuh"
#include "ops/mlstm_chunkwise/math.h"

namespace xlstm {

// The tile accumulator, and with it the tile product (tile_gemm's overloads): tensor cores for
// bf16 / fp16 inputs, their operands rounded to the inputs' dtype, float32 accumulation; CUDA
// cores for float32 inputs, whose bound (1e-5) no 16-bit operand meets.
template <typename scalar_t>
using ChunkTile = std::conditional_t<std::is_same<scalar_t, float>::value, TileAcc<MlstmChunkwiseTraits>,
                                     MmaTileAcc<MlstmChunkwiseTraits, scalar_t>>;

namespace chunkwise {

constexpr int kTile = MlstmChunkwiseTraits::kTile, kMaxChunk = MlstmChunkwiseTraits::kMaxChunk;
constexpr int kGateFloats = 8 * kMaxChunk;
// Owners of a tile row (or column) of either accumulator: the partial-sum buffers' row count.
constexpr int kSpread = TileAcc<MlstmChunkwiseTraits>::kSlots;
static_assert(MmaTileAcc<MlstmChunkwiseTraits, c10::BFloat16>::kSlots == kSpread, "one partial-sum layout");

inline int64_t stage_floats(bool tensor_cores) {
  return tensor_cores ? tile_mma_stage_floats<MlstmChunkwiseTraits>() : tile_gemm_stage_floats<MlstmChunkwiseTraits>();
}

// a_t, b_t = i_t - a_t and mx_t of one chunk as Split values (math.h), one thread per token, and two
// per-token values x, y that each pass derives from them.
struct ChunkGates {
  Split<float> *a, *b, *mx;
  float *x, *y;
};

__device__ __forceinline__ ChunkGates chunk_gates_at(float* smem) {
  Split<float>* splits = reinterpret_cast<Split<float>*>(smem);
  return {splits, splits + kMaxChunk, splits + 2 * kMaxChunk, smem + 6 * kMaxChunk, smem + 7 * kMaxChunk};
}

// Hillis-Steele inclusive scan of x[0, n) (n <= blockDim.x) in place; barrier-separated.
template <typename V, typename Op>
__device__ __forceinline__ void block_inclusive_scan(V* x, int n, Op op) {
  const int t = threadIdx.x;
  for (int offset = 1; offset < n; offset *= 2) {
    const bool take = t < n && t >= offset;
    V other{};
    if (take) other = x[t - offset];
    __syncthreads();
    if (take) x[t] = op(x[t], other);
    __syncthreads();
  }
}

template <typename scalar_t>
__device__ __forceinline__ void scan_chunk_gates(const scalar_t* i, const scalar_t* f, int len, float m_p,
                                                 ChunkGates g) {
  const int t = threadIdx.x;
  __syncthreads();  // the previous chunk's gates may still be read
  if (t < len) g.a[t] = Split<float>{mlstm_chunk_log_forget(static_cast<float>(f[t])), 0.f};
  __syncthreads();
  block_inclusive_scan(g.a, len, [](Split<float> x, Split<float> y) { return split_add(x, y); });
  if (t < len) g.b[t] = g.mx[t] = mlstm_chunk_b(static_cast<float>(i[t]), g.a[t]);
  __syncthreads();
  block_inclusive_scan(g.mx, len, [](Split<float> x, Split<float> y) { return split_max(x, y); });
  if (t < len) g.mx[t] = split_max(g.mx[t], Split<float>{m_p, 0.f});
  __syncthreads();
}

// The extended state C' = [C | n] of one (batch·head, chunk): element (d, j) for j <= DV.
struct StateRef {
  float *C, *n;
  int dqk, dv;
  __device__ __forceinline__ bool inside(int d, int j) const { return d < dqk && j <= dv; }
  __device__ __forceinline__ float& at(int d, int j) const {
    return j < dv ? C[static_cast<int64_t>(d) * dv + j] : n[d];
  }
  __device__ __forceinline__ float get(int d, int j) const { return inside(d, j) ? at(d, j) : 0.f; }
};

__device__ __forceinline__ StateRef state_ref(float* C, float* n, int64_t index, int dqk, int dv) {
  return {C + index * dqk * dv, n + index * dqk, dqk, dv};
}

__device__ __forceinline__ StateRef state_ref(const float* C, const float* n, int64_t index, int dqk, int dv) {
  return state_ref(const_cast<float*>(C), const_cast<float*>(n), index, dqk, dv);
}

template <typename Acc>
__device__ __forceinline__ void load_tile(Acc& acc, const StateRef& s, int d0, int j0) {
  acc.for_each([&](int r, int c, float& x) { x = s.get(d0 + r, j0 + c); });
}

template <typename Acc>
__device__ __forceinline__ void store_tile(Acc& acc, const StateRef& s, int d0, int j0) {
  acc.for_each([&](int r, int c, float& x) {
    if (s.inside(d0 + r, j0 + c)) s.at(d0 + r, j0 + c) = x;
  });
}

// v' = [v | 1] of one token row, column j.
template <typename scalar_t>
__device__ __forceinline__ float v_ext(const scalar_t* v_row, int j, int dv) {
  return j < dv ? static_cast<float>(v_row[j]) : (j == dv ? 1.f : 0.f);
}

// Sizes as ints (the wrapper checks S · head size fits), for every kernel.
struct Dims {
  int DQK, DV, L, S, chunks;
};

template <typename scalar_t>
__device__ __forceinline__ Dims dims_of(const MlstmChunkwiseParams<scalar_t>& p) {
  return {static_cast<int>(p.dqk), static_cast<int>(p.dv), static_cast<int>(p.chunk), static_cast<int>(p.seq),
          static_cast<int>(p.chunks)};
}

// m before chunk c of row bh: the initial m, or the forward's m after the previous chunk's last step.
template <typename scalar_t>
__device__ __forceinline__ float m_before_chunk(const MlstmChunkwiseParams<scalar_t>& p, int64_t bh, int c,
                                                const Dims& z) {
  return c == 0 ? p.m0[bh] : p.m_all[bh * z.S + c * z.L - 1];
}

// Step `row`'s normaliser and the gradients it passes on (math.h).
struct RowNormaliser {
  float den, dden, dqn;
};

template <typename scalar_t>
__device__ __forceinline__ RowNormaliser row_normaliser(const MlstmChunkwiseBwdParams<scalar_t>& p, int64_t row) {
  const float qn = p.qn_all[row], m = p.m_all[row];
  const float den = mlstm_denominator(qn, m, p.eps);
  const MlstmChunkwiseNormaliserGrad<float> g = mlstm_chunkwise_normaliser_backward(p.dh_dot_h[row], qn, m, den);
  return {den, g.dden, g.dqn};
}

}  // namespace chunkwise

// Dynamic shared memory of each kernel, in floats (the operand stage last, its size by the product).
inline int64_t mlstm_chunkwise_state_smem_floats(bool tensor_cores) {
  return chunkwise::kGateFloats + chunkwise::stage_floats(tensor_cores);
}
inline int64_t mlstm_chunkwise_fwd_outputs_smem_floats(bool tensor_cores) {
  return chunkwise::kGateFloats + chunkwise::kTile + chunkwise::kTile * chunkwise::kMaxChunk +
         chunkwise::kSpread * chunkwise::kTile + chunkwise::stage_floats(tensor_cores);
}
// P and dS of the whole chunk (rows padded to tiles), six per-token vectors, two partial-sum
// buffers, the stage.
XLSTM_HOST_DEVICE int64_t mlstm_chunkwise_bwd_intra_padded(int64_t chunk) {
  return (chunk + chunkwise::kTile - 1) / chunkwise::kTile * chunkwise::kTile;
}
inline int64_t mlstm_chunkwise_bwd_intra_smem_floats(int64_t chunk, bool tensor_cores) {
  const int64_t lp = mlstm_chunkwise_bwd_intra_padded(chunk);
  return chunkwise::kGateFloats + 6 * chunkwise::kMaxChunk + 2 * lp * lp +
         2 * chunkwise::kSpread * chunkwise::kMaxChunk + chunkwise::stage_floats(tensor_cores);
}

template <typename scalar_t>
__global__ void mlstm_chunkwise_fwd_states_kernel(MlstmChunkwiseFwdParams<scalar_t> p) {
  using namespace chunkwise;
  XLSTM_DYNAMIC_SHARED(float, smem);
  const ChunkGates g = chunk_gates_at(smem);
  float* stage = smem + kGateFloats;
  const auto [DQK, DV, L, S, chunks] = dims_of(p);
  const int d0 = blockIdx.x * kTile, j0 = blockIdx.y * kTile;
  const int64_t bh = blockIdx.z;
  const bool writes_m = blockIdx.x == 0 && blockIdx.y == 0;
  const scalar_t *k = p.k + bh * S * DQK, *v = p.v + bh * S * DV, *i = p.i + bh * S, *f = p.f + bh * S;

  ChunkTile<scalar_t> acc;
  load_tile(acc, state_ref(p.C0, p.n0, bh, DQK, DV), d0, j0);
  float m_p = p.m0[bh];
  for (int c = 0; c < chunks; ++c) {
    const int start = c * L, len = min_(L, S - start);
    store_tile(acc, state_ref(p.C_starts, p.n_starts, bh * chunks + c, DQK, DV), d0, j0);
    scan_chunk_gates(i + start, f + start, len, m_p, g);
    const Split<float> mx_end = g.mx[len - 1];
    const float decay = exp_(mlstm_chunk_log_carry(m_p, mx_end));
    const int t = threadIdx.x;
    if (writes_m && t < len) p.m_all[bh * S + start + t] = mlstm_chunk_m(g.a[t], g.mx[t]);
    m_p = mlstm_chunk_m(g.a[len - 1], mx_end);
    if (t < len) g.x[t] = p.scale * exp_(mlstm_chunk_log_weight(g.b[t], mx_end));  // s·WE
    __syncthreads();
    acc.for_each([&](int, int, float& x) { x *= decay; });
    const scalar_t *k_c = k + static_cast<int64_t>(start) * DQK, *v_c = v + static_cast<int64_t>(start) * DV;
    tile_gemm<Adjacent::kOuter, Adjacent::kOuter, SplitOperand::kA>(
        acc, len,
        [&](int m, int u) { return d0 + m < DQK ? g.x[u] * static_cast<float>(k_c[u * DQK + d0 + m]) : 0.f; },
        [&](int u, int n) { return v_ext(v_c + static_cast<int64_t>(u) * DV, j0 + n, DV); }, stage);
  }
  store_tile(acc, state_ref(p.C_T, p.n_T, bh, DQK, DV), d0, j0);
  if (writes_m && threadIdx.x == 0) p.m_T[bh] = m_p;
}

namespace chunkwise {

// The normalised chunk outputs: h and q·n of every step, or with kDhDotH, dh·h of every step from h
// at full precision instead (the backward pass of low-precision inputs: h as returned is rounded
// to their dtype). One pass, two kernels below.
template <typename scalar_t, bool kDhDotH>
__device__ __forceinline__ void outputs_pass(const MlstmChunkwiseFwdParams<scalar_t>& p) {
  XLSTM_DYNAMIC_SHARED(float, smem);
  const ChunkGates g = chunk_gates_at(smem);
  float* den = smem + kGateFloats;  // of the current row tile
  float* P = den + kTile;           // [kTile][kMaxChunk]: W∘(s q·k) of the current row tile
  float* row_partial = P + kTile * kMaxChunk;  // [kSpread][kTile], for dh·h
  float* stage = row_partial + kSpread * kTile;
  const Dims z = dims_of(p);
  const auto [DQK, DV, L, S, chunks] = z;
  const int c = blockIdx.x;
  const int64_t bh = blockIdx.y;
  const int start = c * L, len = min_(L, S - start);
  const int64_t row0 = bh * S + start;  // index of the chunk's first token
  const scalar_t *q = p.q + row0 * DQK, *k = p.k + row0 * DQK, *v = p.v + row0 * DV;
  const float m_p = m_before_chunk(p, bh, c, z);
  scan_chunk_gates(p.i + row0, p.f + row0, len, m_p, g);
  const StateRef carried = state_ref(p.C_starts, p.n_starts, bh * chunks + c, DQK, DV);
  if (kDhDotH)
    for (int x = threadIdx.x; x < kSpread * kTile; x += blockDim.x) row_partial[x] = 0.f;

  ChunkTile<scalar_t> acc;
  for (int rt = 0; rt < len; rt += kTile) {
    const int rows = min_(kTile, len - rt), keys = rt + rows;
    for (int ct = 0; ct < keys; ct += kTile) {
      acc.fill(0.f);
      tile_gemm<Adjacent::kDepth, Adjacent::kDepth>(
          acc, DQK, [&](int m, int d) { return m < rows ? static_cast<float>(q[(rt + m) * DQK + d]) : 0.f; },
          [&](int d, int n) { return ct + n < keys ? static_cast<float>(k[(ct + n) * DQK + d]) : 0.f; }, stage);
      acc.for_each([&](int r, int n, float& x) {
        const int t = rt + r, u = ct + n;
        P[r * kMaxChunk + u] = r < rows && u <= t ? p.scale * x * exp_(mlstm_chunk_log_weight(g.b[u], g.mx[t])) : 0.f;
      });
    }
    __syncthreads();
    // q·n of every row, hence its normaliser: a sum of its own over the row of P (four threads a row)
    // in Split precision, not the tile product's sum (through P rounded to a 16-bit operand on tensor
    // cores, or a float sum). Where the terms cancel (|q·n| << Σ|P|), that sum's rounding would reach
    // h amplified by the depth of the cancellation, and the stabiliser's gradient cancels against it.
    static_assert(MlstmChunkwiseTraits::kThreads == 4 * kTile, "four threads per row of a tile");
    {
      const int r = threadIdx.x / 4, lane = threadIdx.x % 4, t = rt + r;
      Split<float> qn{0.f, 0.f};
      if (r < rows) {
        for (int u = lane; u <= t; u += 4) qn = split_add(qn, Split<float>{P[r * kMaxChunk + u], 0.f});
        float q_n = 0.f;
        for (int d = lane; d < DQK; d += 4) q_n += static_cast<float>(q[t * DQK + d]) * carried.n[d];
        qn = split_add(qn, Split<float>{exp_(mlstm_chunk_log_carry(m_p, g.mx[t])) * q_n, 0.f});
      }
      for (int lanes = 1; lanes < 4; lanes *= 2)
        qn = split_add(qn, Split<float>{__shfl_xor_sync(~0u, qn.hi, lanes), __shfl_xor_sync(~0u, qn.lo, lanes)});
      if (r < rows && lane == 0) {
        den[r] = mlstm_denominator(qn.hi, mlstm_chunk_m(g.a[t], g.mx[t]), p.eps);
        if (!kDhDotH) p.qn_all[row0 + t] = qn.hi;
      }
      __syncthreads();
    }
    for (int j0 = 0; j0 < DV; j0 += kTile) {
      // G q C first, G applied to the float32 product (q is exact in a 16-bit operand), then P v.
      // P is split: the numerator must agree with the normaliser to about float32 precision, or the
      // gradients that cancel between them (S = 1) do not.
      acc.fill(0.f);
      tile_gemm<Adjacent::kDepth, Adjacent::kOuter, SplitOperand::kB>(
          acc, DQK, [&](int m, int d) { return m < rows ? static_cast<float>(q[(rt + m) * DQK + d]) : 0.f; },
          [&](int d, int n) { return j0 + n < DV ? carried.get(d, j0 + n) : 0.f; }, stage);
      acc.for_each([&](int r, int, float& x) {
        x = r < rows ? exp_(mlstm_chunk_log_carry(m_p, g.mx[rt + r])) * x : 0.f;
      });
      tile_gemm<Adjacent::kDepth, Adjacent::kOuter, SplitOperand::kA>(
          acc, keys, [&](int m, int u) { return P[m * kMaxChunk + u]; },
          [&](int u, int n) {
            return j0 + n < DV ? static_cast<float>(v[static_cast<int64_t>(u) * DV + j0 + n]) : 0.f;
          },
          stage);
      acc.for_each([&](int r, int n, float& num) {
        const int64_t at = (row0 + rt + r) * DV + j0 + n;
        const bool inside = r < rows && j0 + n < DV;
        if (kDhDotH) {
          num = inside ? static_cast<float>(p.dh[at]) * num / den[r] : 0.f;
        } else if (inside) {
          p.h[at] = static_cast<scalar_t>(num / den[r]);
        }
      });
      if (kDhDotH) add_row_partials(row_partial, kTile, 0, acc);
    }
    if (kDhDotH) {
      __syncthreads();
      sum_partials<ChunkTile<scalar_t>>(row_partial, kTile, rows, p.dh_dot_h + row0 + rt);
    }
  }
}

}  // namespace chunkwise

// fwd_outputs: h and q·n of every step.
template <typename scalar_t>
__global__ void mlstm_chunkwise_fwd_outputs_kernel(MlstmChunkwiseFwdParams<scalar_t> p) {
  chunkwise::outputs_pass<scalar_t, false>(p);
}

// The backward's dh·h of every step, for low-precision inputs (see outputs_pass).
template <typename scalar_t>
__global__ void mlstm_chunkwise_bwd_dh_dot_h_kernel(MlstmChunkwiseFwdParams<scalar_t> p) {
  chunkwise::outputs_pass<scalar_t, true>(p);
}

template <typename scalar_t>
__global__ void mlstm_chunkwise_bwd_states_kernel(MlstmChunkwiseBwdParams<scalar_t> p) {
  using namespace chunkwise;
  XLSTM_DYNAMIC_SHARED(float, smem);
  const ChunkGates g = chunk_gates_at(smem);
  float* stage = smem + kGateFloats;
  const Dims z = dims_of(p);
  const auto [DQK, DV, L, S, chunks] = z;
  const int d0 = blockIdx.x * kTile, j0 = blockIdx.y * kTile;
  const int64_t bh = blockIdx.z;

  ChunkTile<scalar_t> acc;
  load_tile(acc, state_ref(p.dC_T, p.dn_T, bh, DQK, DV), d0, j0);
  for (int c = chunks - 1; c >= 0; --c) {
    const int start = c * L, len = min_(L, S - start);
    const int64_t row0 = bh * S + start;
    store_tile(acc, state_ref(p.dC_ends, p.dn_ends, bh * chunks + c, DQK, DV), d0, j0);
    const float m_p = m_before_chunk(p, bh, c, z);
    scan_chunk_gates(p.i + row0, p.f + row0, len, m_p, g);
    const float decay = exp_(mlstm_chunk_log_carry(m_p, g.mx[len - 1]));
    const int t = threadIdx.x;
    if (t < len) {  // x and y: G/den and G·dqn
      const float G = exp_(mlstm_chunk_log_carry(m_p, g.mx[t]));
      const RowNormaliser nm = row_normaliser(p, row0 + t);
      g.x[t] = G / nm.den;
      g.y[t] = G * nm.dqn;
    }
    __syncthreads();
    acc.for_each([&](int, int, float& x) { x *= decay; });
    // dC'_start = decay dC'_end + Σ_t q_t (G_t dnum'_t)ᵀ with dnum' = [dh / den | dqn]
    const scalar_t *q = p.q + row0 * DQK, *dh = p.dh + row0 * DV;
    tile_gemm<Adjacent::kOuter, Adjacent::kOuter, SplitOperand::kB>(
        acc, len, [&](int m, int u) { return d0 + m < DQK ? static_cast<float>(q[u * DQK + d0 + m]) : 0.f; },
        [&](int u, int n) {
          const int j = j0 + n;
          return j < DV ? g.x[u] * static_cast<float>(dh[static_cast<int64_t>(u) * DV + j]) : (j == DV ? g.y[u] : 0.f);
        },
        stage);
  }
  store_tile(acc, state_ref(p.dC0, p.dn0, bh, DQK, DV), d0, j0);
}

template <typename scalar_t>
__global__ void mlstm_chunkwise_bwd_intra_kernel(MlstmChunkwiseBwdParams<scalar_t> p) {
  using namespace chunkwise;
  XLSTM_DYNAMIC_SHARED(float, smem);
  const Dims z = dims_of(p);
  const auto [DQK, DV, L, S, chunks] = z;
  const int c = blockIdx.x, t = threadIdx.x;
  const int lp = static_cast<int>(mlstm_chunkwise_bwd_intra_padded(L));
  const ChunkGates g = chunk_gates_at(smem);
  float* den = smem + kGateFloats;
  float* dqn = den + kMaxChunk;
  float* de_rows = dqn + kMaxChunk;    // Σ_u P∘dP
  float* de_cols = de_rows + kMaxChunk;  // Σ_t P∘dP
  float* dG = de_cols + kMaxChunk;       // q_t · (dnum'_t C'_pᵀ)
  float* kY = dG + kMaxChunk;            // s k_u · (dC'_end v'_u)
  float* P = kY + kMaxChunk;             // [lp][lp]
  float* dS = P + lp * lp;               // [lp][lp]: dP∘W
  float* row_partial = dS + lp * lp;     // [kSpread][kMaxChunk]
  float* col_partial = row_partial + kSpread * kMaxChunk;
  float* stage = col_partial + kSpread * kMaxChunk;

  const int64_t bh = blockIdx.y;
  const int start = c * L, len = min_(L, S - start);
  const int64_t row0 = bh * S + start;
  const scalar_t *q = p.q + row0 * DQK, *k = p.k + row0 * DQK, *v = p.v + row0 * DV, *dh = p.dh + row0 * DV;
  const float m_p = m_before_chunk(p, bh, c, z);
  for (int x = t; x < 2 * kSpread * kMaxChunk; x += blockDim.x) row_partial[x] = 0.f;  // both buffers
  if (t < len) {
    const RowNormaliser nm = row_normaliser(p, row0 + t);
    den[t] = nm.den;
    dqn[t] = nm.dqn;
    p.dden[row0 + t] = nm.dden;
  }
  scan_chunk_gates(p.i + row0, p.f + row0, len, m_p, g);
  const Split<float> mx_end = g.mx[len - 1];
  const StateRef carried = state_ref(p.C_starts, p.n_starts, bh * chunks + c, DQK, DV);
  const StateRef d_end = state_ref(p.dC_ends, p.dn_ends, bh * chunks + c, DQK, DV);
  // The gradient of the numerator is dnum' = [dh / den | dqn]. The products take dh itself and
  // apply 1 / den and the n column's term in float32 afterwards: dh is an input (exact in a 16-bit
  // operand), and where the normaliser is |q·n| the two terms cancel, which rounded operands would
  // leave as noise far larger than the gradient (S = 1 without a state, say).
  auto dh_at = [&](int u, int j) { return static_cast<float>(dh[static_cast<int64_t>(u) * DV + j]); };
  auto carry_weight = [&](int u) { return exp_(mlstm_chunk_log_carry(m_p, g.mx[u])); };
  auto end_weight = [&](int u) { return exp_(mlstm_chunk_log_weight(g.b[u], mx_end)); };

  // P = W∘(s q kᵀ) and dS = W∘dP, dP = dnum' v'ᵀ = (dh vᵀ) / den + dqn, over the causal tiles; row and
  // column sums of P∘dP.
  using Tile = ChunkTile<scalar_t>;
  Tile acc, acc2;
  for (int rt = 0; rt < len; rt += kTile) {
    const int rows = min_(kTile, len - rt);
    for (int ct = 0; ct <= rt; ct += kTile) {
      const int cols = min_(kTile, len - ct);
      acc.fill(0.f);
      tile_gemm<Adjacent::kDepth, Adjacent::kDepth>(
          acc, DQK, [&](int m, int d) { return m < rows ? static_cast<float>(q[(rt + m) * DQK + d]) : 0.f; },
          [&](int d, int n) { return n < cols ? static_cast<float>(k[(ct + n) * DQK + d]) : 0.f; }, stage);
      acc2.fill(0.f);
      tile_gemm<Adjacent::kDepth, Adjacent::kDepth>(
          acc2, DV, [&](int m, int j) { return m < rows ? dh_at(rt + m, j) : 0.f; },
          [&](int j, int n) { return n < cols ? static_cast<float>(v[static_cast<int64_t>(ct + n) * DV + j]) : 0.f; },
          stage);
      for (int e = 0; e < Tile::kElems; ++e) {
        const int tt = rt + Tile::row(e), u = ct + Tile::col(e);
        const bool valid = Tile::row(e) < rows && Tile::col(e) < cols;
        const float w = valid && u <= tt ? exp_(mlstm_chunk_log_weight(g.b[u], g.mx[tt])) : 0.f;
        const float Ptu = w * p.scale * acc.v[e], dPtu = valid ? acc2.v[e] / den[tt] + dqn[tt] : 0.f;
        if (valid) {
          P[tt * lp + u] = Ptu;
          dS[tt * lp + u] = w * dPtu;
        }
        acc2.v[e] = Ptu * dPtu;
      }
      add_row_partials(row_partial, kMaxChunk, rt, acc2);
      add_col_partials(col_partial, kMaxChunk, ct, acc2);
    }
  }
  __syncthreads();
  sum_partials<ChunkTile<scalar_t>>(row_partial, kMaxChunk, len, de_rows);
  sum_partials<ChunkTile<scalar_t>>(col_partial, kMaxChunk, len, de_cols);
  __syncthreads();

  // dq = s dS k + G X with X = dnum' C'_pᵀ = (dh C_pᵀ) / den + dqn n_pᵀ; X also gives dG_t = q_t·X_t.
  for (int rt = 0; rt < len; rt += kTile) {
    const int rows = min_(kTile, len - rt), keys = rt + rows;
    for (int dt = 0; dt < DQK; dt += kTile) {
      acc.fill(0.f);
      tile_gemm<Adjacent::kDepth, Adjacent::kOuter>(
          acc, keys, [&](int m, int u) { return m < rows ? dS[(rt + m) * lp + u] : 0.f; },
          [&](int u, int n) { return dt + n < DQK ? static_cast<float>(k[u * DQK + dt + n]) : 0.f; }, stage);
      acc2.fill(0.f);
      tile_gemm<Adjacent::kDepth, Adjacent::kDepth, SplitOperand::kB>(
          acc2, DV, [&](int m, int j) { return m < rows ? dh_at(rt + m, j) : 0.f; },
          [&](int j, int n) { return carried.get(dt + n, j); }, stage);
      for (int e = 0; e < Tile::kElems; ++e) {
        const int tt = rt + Tile::row(e), d = dt + Tile::col(e);
        const bool in = Tile::row(e) < rows && d < DQK;
        const float X = in ? acc2.v[e] / den[tt] + dqn[tt] * carried.n[d] : 0.f;
        if (in) p.dq[(row0 + tt) * DQK + d] = static_cast<scalar_t>(p.scale * acc.v[e] + carry_weight(tt) * X);
        acc2.v[e] = in ? X * static_cast<float>(q[tt * DQK + d]) : 0.f;
      }
      add_row_partials(row_partial, kMaxChunk, rt, acc2);
    }
  }
  __syncthreads();
  sum_partials<ChunkTile<scalar_t>>(row_partial, kMaxChunk, len, dG);
  __syncthreads();

  // Per key tile: dk = s (dSᵀ q + WE Y) with Y_u = dC'_end v'_u = dC_end v_u + dn_end, and
  // dv = Pᵀ dnum + WE s k dC_end = (P / den)ᵀ dh + WE s k dC_end.
  for (int ct = 0; ct < len; ct += kTile) {
    const int cols = min_(kTile, len - ct), depth = len - ct;  // queries t >= ct see these keys
    for (int dt = 0; dt < DQK; dt += kTile) {
      acc.fill(0.f);
      tile_gemm<Adjacent::kOuter, Adjacent::kOuter>(
          acc, depth, [&](int m, int x) { return m < cols ? dS[(ct + x) * lp + ct + m] : 0.f; },
          [&](int x, int n) { return dt + n < DQK ? static_cast<float>(q[(ct + x) * DQK + dt + n]) : 0.f; }, stage);
      acc2.fill(0.f);
      tile_gemm<Adjacent::kDepth, Adjacent::kDepth, SplitOperand::kB>(
          acc2, DV,
          [&](int m, int j) { return m < cols ? static_cast<float>(v[static_cast<int64_t>(ct + m) * DV + j]) : 0.f; },
          [&](int j, int n) { return d_end.get(dt + n, j); }, stage);
      for (int e = 0; e < Tile::kElems; ++e) {
        const int u = ct + Tile::row(e), d = dt + Tile::col(e);
        const bool in = Tile::row(e) < cols && d < DQK;
        const float Y = in ? acc2.v[e] + d_end.n[d] : 0.f;
        if (in) p.dk[(row0 + u) * DQK + d] = static_cast<scalar_t>(p.scale * (acc.v[e] + end_weight(u) * Y));
        acc2.v[e] = in ? Y * p.scale * static_cast<float>(k[u * DQK + d]) : 0.f;
      }
      add_row_partials(row_partial, kMaxChunk, ct, acc2);
    }
    for (int jt = 0; jt < DV; jt += kTile) {
      acc.fill(0.f);
      tile_gemm<Adjacent::kOuter, Adjacent::kOuter>(
          acc, depth, [&](int m, int x) { return m < cols ? P[(ct + x) * lp + ct + m] / den[ct + x] : 0.f; },
          [&](int x, int n) { return jt + n < DV ? dh_at(ct + x, jt + n) : 0.f; }, stage);
      tile_gemm<Adjacent::kDepth, Adjacent::kOuter, SplitOperand::kB>(
          acc, DQK,
          [&](int m, int d) {
            return m < cols ? p.scale * end_weight(ct + m) * static_cast<float>(k[(ct + m) * DQK + d]) : 0.f;
          },
          [&](int d, int n) { return jt + n < DV ? d_end.at(d, jt + n) : 0.f; }, stage);
      acc.for_each([&](int r, int n, float& x) {
        if (r < cols && jt + n < DV) p.dv_[(row0 + ct + r) * DV + jt + n] = static_cast<scalar_t>(x);
      });
    }
  }
  __syncthreads();
  sum_partials<ChunkTile<scalar_t>>(row_partial, kMaxChunk, len, kY);

  // Gate gradients with the stabiliser fixed. Log weights: intra E[t,u] = a_t - a_u + i_u, carry
  // a_t + m_p, chunk end A - a_u + i_u and A + m_p (A = a at the chunk end).
  float sums[3] = {0.f, 0.f, 0.f};  // Σ de_end, Σ de_carry, dGE = Σ dC'_end ∘ C'_p
  for (int x = t; x < DQK * (DV + 1); x += blockDim.x)
    sums[2] += d_end.at(x / (DV + 1), x % (DV + 1)) * carried.at(x / (DV + 1), x % (DV + 1));
  float de_end = 0.f, de_carry = 0.f;
  if (t < len) {
    de_end = end_weight(t) * kY[t];
    de_carry = carry_weight(t) * dG[t];
    sums[0] = de_end;
    sums[1] = de_carry;
  }
  block_sum(sums, row_partial);  // also the barrier before the scan buffer below is written
  const float de_end_carry = exp_(mlstm_chunk_log_carry(m_p, mx_end)) * sums[2];
  float* reversed_da = g.x;
  if (t < len) {
    float da = de_rows[t] - de_cols[t] + de_carry - de_end;
    if (t == len - 1) da += sums[0] + de_end_carry;
    reversed_da[len - 1 - t] = da;
    p.di[row0 + t] = de_cols[t] + de_end;
  }
  __syncthreads();
  block_inclusive_scan(reversed_da, len, [](float x, float y) { return x + y; });  // a_t = Σ_{u≤t} logσ(f_u)
  if (t < len) p.d_log_f[row0 + t] = reversed_da[len - 1 - t];
  if (c == 0 && t == 0) p.dm0_carry[bh] = sums[1] + de_end_carry;
}

}  // namespace xlstm
